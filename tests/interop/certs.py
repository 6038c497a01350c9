"""Throw-away test certificates made with the `openssl` CLI, and brokers with
extra (TLS / WebSocket) listeners, for test_tls.py and test_websockets.py.

Owns: `Pki` (a directory of CAs generated for one test session), `Ca.issue`
(server and client certificates, including expired ones backdated with
`openssl ca -startdate/-enddate`), the session fixture `pki`, and
`start_listeners` (a broker of one kind with listeners on fresh ports beside
the fixture's plain one). Nothing here is committed key material: every key
is generated at test time into pytest's temp directory (CONTRIBUTING.md).

Keys are EC P-256 (fast to generate, ECDSA suites in rustls and OpenSSL).
Server certificates carry SAN DNS:localhost and IP:127.0.0.1, so clients
verify the host name as a real deployment would.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PortInUse, free_port, port_accepts, require_tool

OPENSSL_TIMEOUT = 30


def openssl(*args, cwd=None) -> str:
    r = subprocess.run([require_tool("openssl"), *map(str, args)], capture_output=True,
                       text=True, timeout=OPENSSL_TIMEOUT, cwd=cwd)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r.stdout


@dataclass
class Cert:
    """A certificate and its key, as files (for clients) and PEM text (for
    a broker's temp dir, via `files`)."""
    name: str
    cert: Path
    key: Path

    @property
    def cert_pem(self) -> str:
        return self.cert.read_text()

    @property
    def key_pem(self) -> str:
        return self.key.read_text()

    def files(self, stem: str) -> dict:
        """{stem}.crt and {stem}.key for start_broker(extra_files=...)."""
        return {f"{stem}.crt": self.cert_pem, f"{stem}.key": self.key_pem}

    def subject(self) -> str:
        """The subject as OpenSSL prints it in RFC 2253 form (`CN=..,O=..`)."""
        out = openssl("x509", "-in", self.cert, "-noout", "-subject", "-nameopt", "RFC2253")
        return out.strip().removeprefix("subject=")


_EXT = {
    "server": ("basicConstraints=critical,CA:FALSE\n"
               "keyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=serverAuth\n"
               "subjectAltName=DNS:localhost,IP:127.0.0.1\n"),
    "client": ("basicConstraints=critical,CA:FALSE\n"
               "keyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=clientAuth\n"),
}

_CA_CNF = """[ ca ]
default_ca = test_ca
[ test_ca ]
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
crlnumber = {dir}/crlnumber
default_md = sha256
default_crl_days = 30
crl_extensions = crl_ext
policy = anything
unique_subject = no
[ crl_ext ]
authorityKeyIdentifier = keyid:always
[ anything ]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
"""


class Ca:
    """A self-signed CA in its own directory."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.dir = root / name
        (self.dir / "issued").mkdir(parents=True)
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.crt"
        _genkey(self.key)
        openssl("req", "-x509", "-new", "-key", self.key, "-subj", f"/O=Culex tests/CN={name}",
                "-days", "3650", "-sha256",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", self.cert)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text(secrets.token_hex(8) + "\n")
        (self.dir / "crlnumber").write_text("01\n")
        (self.dir / "ca.cnf").write_text(_CA_CNF.format(dir=self.dir))

    @property
    def cert_pem(self) -> str:
        return self.cert.read_text()

    def issue(self, name: str, usage: str, subject: str | None = None,
              expired: bool = False, revocable: bool = False) -> Cert:
        """A `usage` ("server" or "client") certificate signed by this CA.
        `subject` is OpenSSL's `/C=../O=../CN=..` form (default `/CN=name`).
        `expired`: valid 2020-01-01 .. 2020-01-02 only. `revocable`: issued
        through `openssl ca` so that `revoke` can list it in the CRL."""
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        ext.write_text("[ v3 ]\n" + _EXT[usage])
        _genkey(key)
        openssl("req", "-new", "-key", key, "-subj", subject or f"/CN={name}", "-out", csr)
        if expired or revocable:
            dates = (["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]
                     if expired else ["-days", "825"])
            openssl("ca", "-batch", "-config", self.dir / "ca.cnf", "-cert", self.cert,
                    "-keyfile", self.key, "-in", csr, "-out", cert, "-notext", "-preserveDN",
                    *dates, "-extfile", ext, "-extensions", "v3")
        else:
            openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                    "-set_serial", "0x" + secrets.token_hex(8), "-days", "825", "-sha256",
                    "-extfile", ext, "-extensions", "v3", "-out", cert)
        return Cert(name, cert, key)

    def revoke(self, cert: Cert):
        openssl("ca", "-batch", "-config", self.dir / "ca.cnf", "-cert", self.cert,
                "-keyfile", self.key, "-revoke", cert.cert)

    def crl(self) -> str:
        """A fresh CRL (PEM) listing every certificate revoked so far."""
        path = self.dir / "crl.pem"
        openssl("ca", "-batch", "-config", self.dir / "ca.cnf", "-cert", self.cert,
                "-keyfile", self.key, "-gencrl", "-out", path)
        return path.read_text()

    def subject_hash(self) -> str:
        """The name `openssl rehash` gives this CA in a capath directory, minus `.0`."""
        return openssl("x509", "-in", self.cert, "-noout", "-hash").strip()


def _genkey(path: Path):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


class Pki:
    """Every CA and certificate the TLS/WebSocket tests use, made once per session.

    - `ca` issues `server`, `server_expired`, `client` (CN=client-1),
      `client_expired`, `client_revoked` (listed in `crl`), `device`
      (CN=device-17), `device_other` (CN=device-18), `subject_client`
      (/C=DE/O=CulexTest/OU=Devices/CN=sensor-1);
    - `ca2` (a different CA) issues `server2` (the SIGHUP replacement) and
      `client_unknown` (a client certificate the broker's CA never signed).
    """

    def __init__(self, root: Path):
        self.root = root
        self.ca = Ca(root, "ca1")
        self.ca2 = Ca(root, "ca2")
        self.server = self.ca.issue("server", "server")
        self.server_expired = self.ca.issue("server-expired", "server", expired=True)
        self.client = self.ca.issue("client-1", "client")
        self.client_expired = self.ca.issue("client-expired", "client", expired=True)
        self.client_revoked = self.ca.issue("client-revoked", "client", revocable=True)
        self.ca.revoke(self.client_revoked)
        self.crl = self.ca.crl()
        self.device = self.ca.issue("device-17", "client")
        self.device_other = self.ca.issue("device-18", "client")
        self.subject_client = self.ca.issue("sensor-1", "client",
                                            subject="/C=DE/O=CulexTest/OU=Devices/CN=sensor-1")
        self.server2 = self.ca2.issue("server2", "server")
        self.client_unknown = self.ca2.issue("client-unknown", "client")

    def files(self) -> dict:
        """The files a broker's temp dir gets: ca.crt, ca2.crt, crl.pem (ca's),
        server.crt/key, server-expired.crt/key, server2.crt/key."""
        return {"ca.crt": self.ca.cert_pem, "ca2.crt": self.ca2.cert_pem, "crl.pem": self.crl,
                **self.server.files("server"), **self.server_expired.files("server-expired"),
                **self.server2.files("server2")}


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


# --------------------------------------------------------------------------
# Brokers with extra listeners
# --------------------------------------------------------------------------

LISTEN_TIMEOUT = 10.0


@dataclass
class Endpoint:
    """host/port of one listener, shaped like a Broker for helpers that only
    read `.host` and `.port` (mosquitto_sub wrappers, Paho)."""
    host: str
    port: int


def start_listeners(start, kind, names, build, extra_files=None, **kw):
    """Start a broker of `kind` with `start` (start_broker or
    start_session_broker). `names` are the extra listeners wanted; `build`
    gets {name: port} and returns the config lines (which must write a
    `listener PORT 127.0.0.1` line for each). The fixture's plain listener
    stays (it is what the fixture waits for, and a plain-TCP peer for the
    tests). Returns (broker, {name: Endpoint}); every listener accepts."""
    for attempt in range(3):
        ports = {}
        while len(ports) < len(names):
            p = free_port()
            if p not in ports.values():
                ports[names[len(ports)]] = p
        try:
            b = start(kind, build(ports), extra_files, **kw)
        except PortInUse:
            if attempt == 2:
                raise
            continue
        deadline = time.monotonic() + LISTEN_TIMEOUT
        for name, port in ports.items():
            while not port_accepts(b.host, port):
                assert b.alive(), f"{kind} exited:\n{b.log()}"
                assert time.monotonic() < deadline, \
                    f"{kind}: listener {name} ({port}) not accepting:\n{b.log()}"
                time.sleep(0.05)
        return b, {name: Endpoint(b.host, port) for name, port in ports.items()}
    raise AssertionError("unreachable")
