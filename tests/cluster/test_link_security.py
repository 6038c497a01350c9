"""Securing the cluster link (Culex options, off by default): a shared cluster secret
(`cluster_secret_file`) and mutual TLS (`cluster_tls_certfile`, `cluster_tls_keyfile`,
`cluster_tls_cafile`).

A cluster whose nodes share them works end to end (the seed's procedure, a dynamic-security
change through a follower in force on every node); a node with another secret or none, or
without a certificate the cluster's CA signed, is refused by the others and never joins,
and the logs on both sides say why; a TLS caller without a certificate the CA signed gets
nothing from a member; files that cannot be used stop start-up naming the config file and
line. Certificates and keys are made with openssl for each test in its
temporary directory (nothing is committed).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

import cluster as c
from conftest import broker_binary, require_tool

SECRET = "the plant's cluster secret, 32+ bytes"
OTHER_SECRET = "another cluster's secret, not ours"
REFUSAL_TIMEOUT = 15.0


def openssl(*args):
    r = subprocess.run([require_tool("openssl"), *map(str, args)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"openssl {args}: {r.stderr}"


class Ca:
    """A throw-away CA issuing node certificates (server and client use, SAN = the node's
    address) into `root`."""

    def __init__(self, root: Path, name: str):
        self.root = root
        self.name = name
        self.key = root / f"{name}.key"
        self.cert = root / f"{name}.crt"
        _genkey(self.key)
        openssl("req", "-x509", "-new", "-key", self.key, "-subj", f"/CN={name}",
                "-days", "30", "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign", "-out", self.cert)

    def node(self, i: int) -> tuple[Path, Path]:
        stem = self.root / f"{self.name}-node{i}"
        key, csr, cert, ext = (stem.with_suffix(s) for s in (".key", ".csr", ".crt", ".ext"))
        _genkey(key)
        openssl("req", "-new", "-key", key, "-subj", f"/CN=node{i}", "-out", csr)
        ext.write_text("basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n"
                       f"subjectAltName=IP:{c.host(i)}\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                "-set_serial", "0x" + secrets.token_hex(8), "-days", "30", "-sha256",
                "-extfile", ext, "-out", cert)
        return cert, key

    def lines(self, i: int) -> list[str]:
        cert, key = self.node(i)
        return [f"cluster_tls_certfile {cert}", f"cluster_tls_keyfile {key}",
                f"cluster_tls_cafile {self.cert}"]


def _genkey(path: Path):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def secret_lines(root: Path, text: str) -> list[str]:
    path = root / f"secret-{secrets.token_hex(4)}"
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return [f"cluster_secret_file {path}"]


class Clusters:
    """Makes three-node clusters with per-node lines, started; keeps them for the logs
    and the clean-up."""

    def __init__(self):
        self.made: list[c.Cluster] = []

    def __call__(self, node_lines: dict[int, list[str]]) -> c.Cluster:
        cl = c.Cluster(3, node_extra=node_lines)
        self.made.append(cl)
        cl.start()
        return cl

    def logs(self) -> str:
        return "\n".join(cl.logs() for cl in self.made)

    def cleanup(self):
        for cl in self.made:
            cl.cleanup()


@pytest.fixture
def make_cluster():
    clusters = Clusters()
    try:
        yield clusters
    finally:
        clusters.cleanup()


def change_through_a_follower(cl: c.Cluster, leader: c.Node, nodes, username: str):
    """createClient through a follower's admin listener; in force on every node of
    `nodes`."""
    follower = next(n for n in nodes if n is not leader)
    admin = follower.dynsec_admin()
    try:
        (entry,) = admin.request({"command": "createClient", "username": username,
                                  "password": f"pw-{username}"})
    finally:
        admin.close()
    assert "error" not in entry, entry
    for node in nodes:
        c.wait_until(f"node {node.i} let {username} in",
                     lambda node=node: c.connack_when_open(node, username,
                                                           f"pw-{username}") == 0, 10)


def create_with(cl: c.Cluster, outsider: c.Node):
    """The seed's procedure on every node, `outsider` included; returns the leader the two
    others agree on."""
    insiders = [n for n in cl.nodes if n is not outsider]
    first = insiders[0]
    first.ha_ok("createCluster", clustername=cl.name, nodes=cl.entries(cl.nodes, first),
                syncmode="dynsec")
    for node in cl.nodes[1:]:
        node.ha_ok("joinCluster", clustername=cl.name, nodes=cl.entries(cl.nodes, node))
    return cl.wait_leader(insiders)


def assert_never_joined(cl: c.Cluster, leader: c.Node, outsider: c.Node):
    data = outsider.get_node()
    assert "leader" not in data and data["appliedIndex"] < 1, data
    (entry,) = [n for n in leader.ha_ok("getCluster")["nodes"] if n["nodeid"] == outsider.id]
    assert not entry["online"], entry


def logged(node: c.Node, *parts: str) -> bool:
    return any(all(p in line for p in parts) for line in node.log().splitlines())


def test_a_cluster_with_a_secret_works_end_to_end(make_cluster, tmp_path):
    lines = secret_lines(tmp_path, SECRET)
    cl = make_cluster({i: lines for i in (1, 2, 3)})
    leader = cl.create(sync="dynsec")
    change_through_a_follower(cl, leader, cl.nodes, "alice")
    nodes = leader.ha_ok("getCluster")["nodes"]
    assert [n["online"] for n in nodes] == [True, True, True], nodes
    for node in cl.nodes:
        assert "HA: the cluster link uses the cluster secret." in node.log()
        assert "cluster secret, 32+" not in node.log()


@pytest.mark.parametrize("outsider_has", ["another secret", "no secret", "the only secret"])
def test_a_node_with_a_wrong_secret_or_none_is_refused(make_cluster, tmp_path, outsider_has):
    ours = secret_lines(tmp_path, SECRET)
    theirs = {"another secret": secret_lines(tmp_path, OTHER_SECRET), "no secret": [],
              "the only secret": ours}[outsider_has]
    if outsider_has == "the only secret":
        ours = []
    cl = make_cluster({1: ours, 2: ours, 3: theirs})
    outsider = cl.node(3)
    leader = create_with(cl, outsider)
    # The leader's link to node 3 is refused; each side's log says why, naming the other.
    l, h = leader.id, leader.host
    expected = {
        "another secret": (("link to node 3 at 127.0.0.3:", "it did not prove the cluster "
                            "secret (its cluster_secret_file differs)"),
                           (f"link from {h} (node {l}) closed in the handshake: it did not "
                            "accept this node's proof of the cluster secret",)),
        "no secret": (("node 3 at 127.0.0.3:", f"refused this node's link: node {l} uses a "
                       "cluster secret and node 3 has none"),
                      (f"refused a link from {h} (node {l}): node {l} uses a cluster secret "
                       "and node 3 has none",)),
        "the only secret": (("node 3 at 127.0.0.3:", f"refused this node's link: node {l} "
                             "sent no proof of the cluster secret, which node 3 requires"),
                            (f"refused a link from {h} (node {l}): node {l} sent no proof of "
                             "the cluster secret",)),
    }[outsider_has]
    insiders = [n for n in cl.nodes if n is not outsider]
    c.wait_until("the leader logged why", lambda: logged(leader, *expected[0]),
                 REFUSAL_TIMEOUT)
    c.wait_until("node 3 logged why", lambda: logged(outsider, *expected[1]), REFUSAL_TIMEOUT)
    assert_never_joined(cl, leader, outsider)
    # The two that share a secret (or none) still commit.
    change_through_a_follower(cl, leader, insiders, "bob")
    assert_never_joined(cl, leader, outsider)


def test_a_cluster_with_mutual_tls_and_a_secret_works_end_to_end(make_cluster, tmp_path):
    ca = Ca(tmp_path, "plant-ca")
    secret = secret_lines(tmp_path, SECRET)
    cl = make_cluster({i: ca.lines(i) + secret for i in (1, 2, 3)})
    leader = cl.create(sync="dynsec")
    change_through_a_follower(cl, leader, cl.nodes, "carol")
    for node in cl.nodes:
        assert "HA: the cluster link uses mutual TLS and the cluster secret." in node.log()


@pytest.mark.parametrize("outsider_has", ["another CA", "no TLS"])
def test_a_node_without_a_valid_certificate_is_refused(make_cluster, tmp_path, outsider_has):
    ca = Ca(tmp_path, "plant-ca")
    theirs = Ca(tmp_path, "other-ca").lines(3) if outsider_has == "another CA" else []
    cl = make_cluster({1: ca.lines(1), 2: ca.lines(2), 3: theirs})
    outsider = cl.node(3)
    leader = create_with(cl, outsider)
    l, h = leader.id, leader.host
    expected = {
        # Node 3's certificate is not the CA's (and it does not trust the cluster's).
        "another CA": (("link to node 3 at 127.0.0.3:", "TLS: invalid peer certificate: "
                        "UnknownIssuer"),
                       (f"refused a link from {h}: TLS:",)),
        "no TLS": (("link to node 3 at 127.0.0.3:", "does that node use TLS on the link?"),
                   (f"refused a link from {h}: it uses TLS on the link and this node does "
                    "not",)),
    }[outsider_has]
    insiders = [n for n in cl.nodes if n is not outsider]
    c.wait_until("the leader logged why", lambda: logged(leader, *expected[0]),
                 REFUSAL_TIMEOUT)
    c.wait_until("node 3 logged why", lambda: logged(outsider, *expected[1]), REFUSAL_TIMEOUT)
    assert_never_joined(cl, leader, outsider)
    # TLS alone: the two nodes with the CA's certificates commit.
    change_through_a_follower(cl, leader, insiders, "dave")
    for node in insiders:
        assert "HA: the cluster link uses mutual TLS." in node.log()


def start_failure(tmp_path: Path, lines: list[str]) -> tuple[int, str, Path]:
    conf = tmp_path / f"node-{secrets.token_hex(4)}.conf"
    port = c.shared_ports(1, 1)[0]
    conf.write_text("\n".join(["enable_control_api true", f"listener {port} 127.0.0.1",
                               *lines]) + "\n")
    r = subprocess.run([broker_binary("culex"), "-c", str(conf)], capture_output=True,
                       text=True, timeout=20, env={**os.environ, "CEDALO_HA_DATA_DIR":
                                                   str(tmp_path / "ha")})
    return r.returncode, r.stdout + r.stderr, conf


def test_bad_link_files_stop_start_up_naming_file_and_line(tmp_path):
    ca, other = Ca(tmp_path, "plant-ca"), Ca(tmp_path, "other-ca")
    cert, key = ca.node(1)
    _, other_key = ca.node(2)
    stranger, _ = other.node(1)
    short = tmp_path / "short"
    short.write_text("hunter2\n")
    tls = lambda cert, key, cafile: [f"cluster_tls_certfile {cert}",
                                     f"cluster_tls_keyfile {key}",
                                     f"cluster_tls_cafile {cafile}"]
    cases = [
        (["cluster_secret_file /nonexistent/secret"], 3,
         "cluster_secret_file /nonexistent/secret: No such file or directory"),
        ([f"cluster_secret_file {short}"], 3,
         f"cluster_secret_file {short}: the secret must be at least 16 bytes long"),
        (tls(cert, other_key, ca.cert), 4, f"cluster_tls_keyfile {other_key}: "),
        (tls(stranger, key, ca.cert), 3, f"cluster_tls_certfile {stranger}: not accepted "
                                         "by the CA"),
        (tls(cert, key, tmp_path / "nope.crt"), 5, "cluster_tls_cafile "),
    ]
    for lines, line, text in cases:
        code, output, conf = start_failure(tmp_path, lines)
        assert code == 3, output
        assert f"Error: {conf}:{line}: {text}" in output, output
    # The three TLS options go together.
    code, output, conf = start_failure(tmp_path, tls(cert, key, ca.cert)[:2])
    assert code == 3, output
    assert "must all be set to use TLS on the cluster link" in output, output
    assert f"Error found at {conf}:3." in output, output


def tls_caller(node: c.Node, ca: Path, cert: tuple[Path, Path] | None) -> bytes:
    """Opens a TLS connection to `node`'s cluster port as a client trusting `ca`, with
    `cert` (certificate, key) or none, sends a plain Hello-sized probe and returns what
    came back before the node closed (b"" when it closed at once)."""
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(certfile=str(cert[0]), keyfile=str(cert[1]))
    raw = socket.create_connection((node.host, node.cluster_port), timeout=5)
    got = b""
    try:
        with ctx.wrap_socket(raw, server_hostname=node.host) as tls:
            tls.sendall(b"\0" * 64)
            while chunk := tls.recv(4096):
                got += chunk
    except (ssl.SSLError, ConnectionError, socket.timeout):
        pass
    return got


@pytest.mark.parametrize("caller_has", ["no certificate", "another CA's certificate"])
def test_a_tls_caller_without_a_valid_client_certificate_is_refused(make_cluster, tmp_path,
                                                                   caller_has):
    """Someone who trusts the cluster's CA (so the node's certificate checks out) but has
    no certificate the CA signed gets nothing from a member, which logs why."""
    ca = Ca(tmp_path, "plant-ca")
    cl = make_cluster({i: ca.lines(i) for i in (1, 2, 3)})
    leader = cl.create(sync="dynsec")
    target = next(n for n in cl.nodes if n is not leader)
    cert = Ca(tmp_path, "other-ca").node(1) if caller_has == "another CA's certificate" \
        else None
    why = {"no certificate": "peer sent no certificates",
           "another CA's certificate": "invalid peer certificate: UnknownIssuer"}[caller_has]
    assert tls_caller(target, ca.cert, cert) == b""
    c.wait_until(f"node {target.i} logged the refusal",
                 lambda: logged(target, "refused a link from 127.0.0.1: TLS:", why),
                 REFUSAL_TIMEOUT)
    # The cluster goes on.
    change_through_a_follower(cl, leader, cl.nodes, "erin")
