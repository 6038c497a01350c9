"""TLS listeners as Mosquitto users configure and use them.

Owns: `listener` + `certfile`/`keyfile`/`cafile`/`capath`/`crlfile`/
`require_certificate`/`use_identity_as_username`/`use_subject_as_username`/
`tls_version`/`ciphers`/`ciphers_tls1.3` seen through real clients
(mosquitto_pub/sub, paho-mqtt, CPython's ssl module, `openssl s_client`):
round trips at every QoS and retained, large messages, client certificates
(and their CN or subject) as user names checked by an ACL, refusals (wrong
CA, expired or revoked or foreign client certificate, expired server
certificate, plain MQTT on a TLS port and the reverse, stalled handshakes)
that leave the broker serving, the minimum TLS version, cipher selection,
and certificates re-read on SIGHUP (a bad one keeps the old).
Called by: pytest, once per broker kind (culex, mosquitto).

Certificates are generated per session by certs.py with the openssl CLI
(required: missing fails under CI=true). Server certificates name
localhost and 127.0.0.1, and every client verifies them (no --insecure).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import mqttraw
from certs import Endpoint, pki, start_listeners  # noqa: F401 - pki is a fixture
from conftest import broker_binary, free_port, require_tool
from pahoclient import Paho
from test_differential import password_file
from test_mosquitto_clients import Sub

TOOL_TIMEOUT = 15
WAIT = 5.0


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


def tls_args(ca=None, cert=None):
    """mosquitto_pub/sub arguments: --cafile, and --cert/--key of a Cert."""
    args = []
    if ca is not None:
        args += ["--cafile", str(ca)]
    if cert is not None:
        args += ["--cert", str(cert.cert), "--key", str(cert.key)]
    return args


def pub(ep, *args, check=True):
    r = subprocess.run([require_tool("mosquitto_pub"), "-h", ep.host, "-p", str(ep.port), *args],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    if check:
        assert r.returncode == 0, f"mosquitto_pub {args}: rc={r.returncode} {r.stderr}"
    return r


def sub_once(ep, *args):
    r = subprocess.run([require_tool("mosquitto_sub"), "-h", ep.host, "-p", str(ep.port), *args],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    return r.returncode, r.stdout.splitlines(), r.stderr


def paho_tls(ep, client_id, protocol="5", ca=None, cert=None) -> Paho:
    """A Paho (pahoclient) on `ep` with TLS: trusts `ca`, presents `cert`."""
    p = Paho(ep, client_id, protocol)
    p.c.tls_set(ca_certs=str(ca), certfile=cert and str(cert.cert), keyfile=cert and str(cert.key))
    return p


def context(ca=None, cert=None, min_version=None, max_version=None, ciphers=None):
    """A CPython (OpenSSL) client context that verifies the server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        ctx.load_verify_locations(str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def mqtt_over_tls(ep, ctx, client_id, version=4, timeout=WAIT):
    """Handshake, send CONNECT, read the reply. Returns one of
    ("handshake", error)          the TLS handshake failed (client or server refused);
    ("closed", error_or_None)     the handshake passed but the server closed or sent an
                                  alert instead of a CONNACK (TLS 1.3 client-cert refusal);
    ("connack", (rc, tls_version, cipher_name))."""
    raw = socket.create_connection((ep.host, ep.port), timeout=timeout)
    try:
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        except (ssl.SSLError, OSError) as e:
            return "handshake", e
        try:
            s.sendall(mqttraw.connect(client_id, version=version))
            data = b""
            deadline = time.monotonic() + timeout
            while len(data) < 2 or len(data) < 2 + data[1]:
                assert time.monotonic() < deadline, "no CONNACK and no close within the timeout"
                chunk = s.recv(256)
                if not chunk:
                    return "closed", None
                data += chunk
        except (ssl.SSLError, OSError) as e:
            return "closed", e
        assert data[0] == 0x20, f"expected CONNACK, got {data!r}"
        rc = data[3]
        outcome = ("connack", (rc, s.version(), s.cipher()[0]))
        s.close()
        return outcome
    finally:
        raw.close()


def s_client(ep, *args):
    """`openssl s_client` handshake (stdin closed right after). Returns (rc, output)."""
    r = subprocess.run([require_tool("openssl"), "s_client", "-connect", f"{ep.host}:{ep.port}",
                        "-servername", "localhost", "-verify_return_error", "-brief", *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    return r.returncode, r.stdout + r.stderr


def tls_listener(port, certname="server", *options):
    return [f"listener {port} 127.0.0.1", f"certfile {{dir}}/{certname}.crt",
            f"keyfile {{dir}}/{certname}.key", *options]


# --------------------------------------------------------------------------
# One TLS broker per kind for the tests that need no special configuration:
# plain listener (the fixture's), `tls` (server cert from ca1), `mtls`
# (require_certificate, cafile ca1), `expired` (an expired server cert).
# --------------------------------------------------------------------------

_SHARED: dict = {}


@pytest.fixture
def tls_broker(start_session_broker, broker_kind, pki):
    if broker_kind not in _SHARED:
        _SHARED[broker_kind] = start_listeners(
            start_session_broker, broker_kind, ["tls", "mtls", "expired"],
            lambda p: [*tls_listener(p["tls"]),
                       *tls_listener(p["mtls"], "server", "cafile {dir}/ca.crt",
                                     "require_certificate true"),
                       *tls_listener(p["expired"], "server-expired")],
            pki.files())
    b, eps = _SHARED[broker_kind]
    assert b.alive(), f"shared TLS broker died:\n{b.log()}"
    return b, eps


@pytest.fixture
def witness(tls_broker, pki):
    """A TLS client connected before the test's bad clients, subscribed to witness/#."""
    _, eps = tls_broker
    w = paho_tls(eps["tls"], f"witness-{time.monotonic_ns()}", "5", ca=pki.ca.cert)
    w.connect()
    assert w.subscribe("witness/#", 1) == [1]
    yield w
    w.close()


def assert_still_serving(tls_broker, witness, pki, tag):
    """The broker is alive, a new TLS client can publish, and the witness
    (connected before) receives it."""
    b, eps = tls_broker
    assert b.alive(), f"broker died:\n{b.log()}"
    pub(eps["tls"], *tls_args(pki.ca.cert), "-t", f"witness/{tag}", "-m", tag, "-q", "1")
    m = witness.get()
    assert (m.topic, m.payload) == (f"witness/{tag}", tag.encode())


# --------------------------------------------------------------------------
# 1. mosquitto_pub / mosquitto_sub with --cafile
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_cli_pub_sub_over_tls(tls_broker, pki, version, qos):
    _, eps = tls_broker
    topic = f"tls/cli/{version}/{qos}"
    s = Sub(eps["tls"], *tls_args(pki.ca.cert), "-t", topic, "-q", qos, "-V", version,
            "-C", "2", "-W", "10", "-F", "%t|%p|%r|%q")
    pub(eps["tls"], *tls_args(pki.ca.cert), "-t", topic, "-m", "one", "-q", qos, "-V", version)
    pub(eps["tls"], *tls_args(pki.ca.cert), "-t", topic, "-m", "two", "-q", qos, "-V", version)
    rc, msgs = s.finish()
    assert (rc, msgs) == (0, [f"{topic}|one|0|{qos}", f"{topic}|two|0|{qos}"])


def test_cli_retained_over_tls(tls_broker, pki):
    b, eps = tls_broker
    pub(eps["tls"], *tls_args(pki.ca.cert), "-t", "tls/ret", "-m", "kept", "-r", "-q", "1")
    # read back over TLS and over the plain listener of the same broker
    rc, out, err = sub_once(eps["tls"], *tls_args(pki.ca.cert), "-t", "tls/ret", "-C", "1",
                            "-W", "5", "-F", "%t|%p|%r")
    assert (rc, out) == (0, ["tls/ret|kept|1"]), err
    rc, out, err = sub_once(b, "-t", "tls/ret", "-C", "1", "-W", "5", "-F", "%t|%p|%r")
    assert (rc, out) == (0, ["tls/ret|kept|1"]), err
    pub(eps["tls"], *tls_args(pki.ca.cert), "-t", "tls/ret", "-r", "-n")
    rc, out, err = sub_once(eps["tls"], *tls_args(pki.ca.cert), "-t", "tls/ret", "-W", "1")
    assert rc == 27 and out == [], err


# --------------------------------------------------------------------------
# 2. Client certificates
# --------------------------------------------------------------------------


def test_cli_client_certificate_required(tls_broker, pki):
    _, eps = tls_broker
    s = Sub(eps["mtls"], *tls_args(pki.ca.cert, pki.client), "-t", "tls/mtls", "-q", "1",
            "-C", "1", "-W", "10", "-F", "%t|%p")
    pub(eps["mtls"], *tls_args(pki.ca.cert, pki.client), "-t", "tls/mtls", "-m", "signed", "-q", "1")
    assert s.finish() == (0, ["tls/mtls|signed"])
    # the same client without a certificate is refused by require_certificate
    r = pub(eps["mtls"], *tls_args(pki.ca.cert), "-t", "tls/mtls", "-m", "x", check=False)
    assert r.returncode != 0


def _connected_user(b, client_id, timeout=WAIT) -> str:
    """The user name in `New client connected from … as <id> (…, u'<user>').`"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in b.log().splitlines():
            if f" as {client_id} (" in line and "New client connected" in line:
                assert ", u'" in line, f"no user name in: {line}"
                return line.split(", u'", 1)[1].rsplit("').", 1)[0]
        time.sleep(0.05)
    raise AssertionError(f"no connect line for {client_id}:\n{b.log()}")


def _cert_username_broker(start_broker, kind, pki, option, acl):
    """Only certificate holders get in (require_certificate); user names come
    from the certificate (`option`); `acl` grants per user name; the password
    file knows only alice, so a password check would refuse everyone else."""
    return start_listeners(
        start_broker, kind, ["mtls"],
        lambda p: ["password_file {dir}/passwd", "acl_file {dir}/acl",
                   *tls_listener(p["mtls"], "server", "cafile {dir}/ca.crt",
                                 "require_certificate true", f"{option} true")],
        {**pki.files(), "passwd": password_file({"alice": "s3cret"}), "acl": acl},
        anonymous=False)


def test_use_identity_as_username(start_broker, broker_kind, pki):
    b, eps = _cert_username_broker(
        start_broker, broker_kind, pki, "use_identity_as_username",
        "user device-17\ntopic readwrite ids/device-17/#\n"
        "user device-18\ntopic readwrite ids/device-18/#\n")
    ep = eps["mtls"]
    d17 = paho_tls(ep, "id-17", "5", pki.ca.cert, pki.device)
    d18 = paho_tls(ep, "id-18", "3.1.1", pki.ca.cert, pki.device_other)
    try:
        # The password is ignored: alice's name with a wrong one, and a name
        # the password file does not know, both get in as the certificate's CN.
        d17.c.username_pw_set("alice", "wrong")
        d18.c.username_pw_set("mallory", "whatever")
        d17.connect()
        d18.connect()
        d17.subscribe("ids/#", 1)
        d18.subscribe("ids/#", 1)
        d18.publish("ids/device-17/forged", b"no", qos=1)   # write denied to device-18
        d18.publish("ids/device-18/mine", b"18", qos=1)     # read denied to device-17
        d17.publish("ids/device-17/mine", b"17", qos=1)
        got17 = [(m.topic, m.payload) for m in d17.get_all()]
        got18 = [(m.topic, m.payload) for m in d18.get_all()]
        assert got17 == [("ids/device-17/mine", b"17")]
        assert got18 == [("ids/device-18/mine", b"18")]
        # and the log line a Mosquitto admin greps shows the name in use
        assert _connected_user(b, "id-17") == "device-17"
        assert _connected_user(b, "id-18") == "device-18"
    finally:
        d17.close()
        d18.close()
    # without a certificate there is no way in, whatever the password
    r = pub(ep, *tls_args(pki.ca.cert), "-u", "alice", "-P", "s3cret", "-t", "ids/x", "-m", "x",
            check=False)
    assert r.returncode != 0


def test_use_subject_as_username(start_broker, broker_kind, pki):
    subject = "CN=sensor-1,OU=Devices,O=CulexTest,C=DE"
    # what OpenSSL prints in RFC 2253 form, which is what Mosquitto uses
    assert pki.subject_client.subject() == subject
    b, eps = _cert_username_broker(
        start_broker, broker_kind, pki, "use_subject_as_username",
        f"user {subject}\ntopic readwrite subj/#\n")
    ep = eps["mtls"]
    sensor = paho_tls(ep, "subj-1", "5", pki.ca.cert, pki.subject_client)
    other = paho_tls(ep, "subj-2", "5", pki.ca.cert, pki.device)
    try:
        sensor.c.username_pw_set("alice", "wrong")
        sensor.connect()
        other.connect()
        sensor.subscribe("subj/#", 1)
        other.subscribe("subj/#", 1)
        other.publish("subj/forged", b"no", qos=1)
        sensor.publish("subj/mine", b"yes", qos=1)
        assert [(m.topic, m.payload) for m in sensor.get_all()] == [("subj/mine", b"yes")]
        other.no_message()
        assert _connected_user(b, "subj-1") == subject
        assert _connected_user(b, "subj-2") == "CN=device-17"
    finally:
        sensor.close()
        other.close()


def test_without_require_certificate_client_certificates_are_not_asked_for(
        start_broker, broker_kind, pki):
    """`cafile` without `require_certificate true`: Mosquitto does not ask
    for a client certificate at all (SSL_VERIFY_NONE), so a device that still
    carries an expired certificate, or one from another CA, connects exactly
    like one with none."""
    b, eps = start_listeners(
        start_broker, broker_kind, ["tls"],
        lambda p: tls_listener(p["tls"], "server", "cafile {dir}/ca.crt"), pki.files())
    for label, cert in (("none", None), ("ca1", pki.client), ("other-ca", pki.client_unknown),
                        ("expired", pki.client_expired)):
        kind, detail = mqtt_over_tls(eps["tls"], context(pki.ca.cert, cert), f"opt-{label}")
        assert kind == "connack" and detail[0] == 0, (label, kind, detail)
    assert b.alive()


@pytest.mark.parametrize("version,code", [(3, 4), (4, 4), (5, 0x86)])
def test_identity_as_username_without_certificate_is_refused(start_broker, broker_kind, pki,
                                                             version, code):
    """use_identity_as_username without require_certificate: a client with no
    certificate has no user name and is refused with Mosquitto's code (bad
    user name or password), whatever it sends as username/password."""
    b, eps = start_listeners(
        start_broker, broker_kind, ["tls"],
        lambda p: ["password_file {dir}/passwd",
                   *tls_listener(p["tls"], "server", "cafile {dir}/ca.crt",
                                 "use_identity_as_username true")],
        {**pki.files(), "passwd": password_file({"alice": "s3cret"})}, anonymous=False)
    kind, detail = mqtt_over_tls(eps["tls"], context(pki.ca.cert), "no-cert", version=version)
    assert kind == "connack" and detail[0] == code, (kind, detail)
    r = pub(eps["tls"], *tls_args(pki.ca.cert), "-u", "alice", "-P", "s3cret", "-t", "x",
            "-m", "y", "-V", {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}[version], check=False)
    assert r.returncode != 0
    assert b.alive()


def test_capath_hashed_directory(start_broker, broker_kind, pki):
    """`capath` with `openssl rehash` names: ca2's clients get in, ca1's do not."""
    capath = Path(tempfile.mkdtemp(prefix="interop-capath-"))
    try:
        os.chmod(capath, 0o755)  # Mosquitto reads it as user mosquitto
        (capath / f"{pki.ca2.subject_hash()}.0").write_text(pki.ca2.cert_pem)
        os.chmod(capath / f"{pki.ca2.subject_hash()}.0", 0o644)
        b, eps = start_listeners(
            start_broker, broker_kind, ["mtls"],
            lambda p: tls_listener(p["mtls"], "server", f"capath {capath}",
                                   "require_certificate true"),
            pki.files())
        kind, detail = mqtt_over_tls(eps["mtls"], context(pki.ca.cert, pki.client_unknown),
                                     "capath-ca2")
        assert kind == "connack" and detail[0] == 0, (kind, detail)
        kind, err = mqtt_over_tls(eps["mtls"], context(pki.ca.cert, pki.client), "capath-ca1")
        assert kind in ("handshake", "closed"), (kind, err)
        assert b.alive()
    finally:
        shutil.rmtree(capath, ignore_errors=True)


def test_crlfile_refuses_revoked_client_certificate(start_broker, broker_kind, pki):
    b, eps = start_listeners(
        start_broker, broker_kind, ["mtls", "nocrl"],
        lambda p: [*tls_listener(p["mtls"], "server", "cafile {dir}/ca.crt",
                                 "crlfile {dir}/crl.pem", "require_certificate true"),
                   *tls_listener(p["nocrl"], "server", "cafile {dir}/ca.crt",
                                 "require_certificate true")],
        pki.files())
    # the certificate itself is good: only the CRL keeps it out
    kind, detail = mqtt_over_tls(eps["nocrl"], context(pki.ca.cert, pki.client_revoked),
                                 "revoked-without-crl")
    assert kind == "connack" and detail[0] == 0, (kind, detail)
    kind, err = mqtt_over_tls(eps["mtls"], context(pki.ca.cert, pki.client_revoked), "revoked")
    assert kind in ("handshake", "closed"), (kind, err)
    r = pub(eps["mtls"], *tls_args(pki.ca.cert, pki.client_revoked), "-t", "crl/x", "-m", "x",
            check=False)
    assert r.returncode != 0
    kind, detail = mqtt_over_tls(eps["mtls"], context(pki.ca.cert, pki.client), "not-revoked")
    assert kind == "connack" and detail[0] == 0, (kind, detail)
    pub(eps["mtls"], *tls_args(pki.ca.cert, pki.client), "-t", "crl/x", "-m", "x")
    assert b.alive()


# --------------------------------------------------------------------------
# 3. paho-mqtt
# --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("listener", ["tls", "mtls"])
def test_paho_over_tls(tls_broker, pki, protocol, listener):
    _, eps = tls_broker
    cert = pki.client if listener == "mtls" else None
    topic = f"tls/paho/{listener}/{protocol}"
    s = paho_tls(eps[listener], f"ps-{listener}-{protocol}", protocol, pki.ca.cert, cert)
    p = paho_tls(eps[listener], f"pp-{listener}-{protocol}", protocol, pki.ca.cert, cert)
    try:
        s.connect()
        p.connect()
        assert s.c.socket().version() in ("TLSv1.2", "TLSv1.3")
        assert s.subscribe(topic, 2) == [2]
        for qos in (0, 1, 2):
            p.publish(topic, f"q{qos}".encode(), qos=qos)
        got = [(m.payload, m.qos) for m in (s.get(), s.get(), s.get())]
        assert got == [(b"q0", 0), (b"q1", 1), (b"q2", 2)]
        p.publish(topic + "/r", b"kept", qos=1, retain=True)
        assert s.subscribe(topic + "/r", 1) == [1]
        m = s.get()
        assert (m.topic, m.payload, m.retain) == (topic + "/r", b"kept", True)
        p.publish(topic + "/r", b"", qos=1, retain=True)
    finally:
        s.close()
        p.close()


def test_large_message_over_tls(tls_broker, pki):
    """1 MiB crosses many TLS records both ways, byte for byte."""
    b, eps = tls_broker
    payload = bytes(range(256)) * 4096
    s = paho_tls(eps["tls"], "big-sub", "5", pki.ca.cert)
    p = paho_tls(eps["mtls"], "big-pub", "3.1.1", pki.ca.cert, pki.client)
    try:
        s.connect()
        p.connect()
        assert s.subscribe("tls/big", 1) == [1]
        p.publish("tls/big", payload, qos=1)
        m = s.get(timeout=15)
        assert m.payload == payload
    finally:
        s.close()
        p.close()


# --------------------------------------------------------------------------
# 4. Clean failures; the broker keeps serving
# --------------------------------------------------------------------------


def test_client_refuses_server_from_unknown_ca(tls_broker, witness, pki):
    _, eps = tls_broker
    r = pub(eps["tls"], *tls_args(pki.ca2.cert), "-t", "witness/no", "-m", "x", check=False)
    assert r.returncode != 0
    p = paho_tls(eps["tls"], "wrong-ca", "5", pki.ca2.cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        p.connect()
    p.close()
    assert_still_serving(tls_broker, witness, pki, "wrong-ca")


def test_client_refuses_expired_server_certificate(tls_broker, witness, pki):
    _, eps = tls_broker
    kind, err = mqtt_over_tls(eps["expired"], context(pki.ca.cert), "exp-srv")
    assert kind == "handshake" and isinstance(err, ssl.SSLCertVerificationError), (kind, err)
    assert "expired" in str(err)
    r = pub(eps["expired"], *tls_args(pki.ca.cert), "-t", "witness/no", "-m", "x", check=False)
    assert r.returncode != 0
    assert_still_serving(tls_broker, witness, pki, "expired-server")


@pytest.mark.parametrize("which", ["unknown-ca", "expired", "none"])
def test_broker_refuses_bad_client_certificate(tls_broker, witness, pki, which):
    _, eps = tls_broker
    cert = {"unknown-ca": pki.client_unknown, "expired": pki.client_expired, "none": None}[which]
    kind, err = mqtt_over_tls(eps["mtls"], context(pki.ca.cert, cert), f"bad-{which}")
    assert kind in ("handshake", "closed"), (kind, err)
    r = pub(eps["mtls"], *tls_args(pki.ca.cert, cert), "-t", "witness/no", "-m", "x", check=False)
    assert r.returncode != 0
    # the good certificate still gets in
    kind, detail = mqtt_over_tls(eps["mtls"], context(pki.ca.cert, pki.client), f"good-{which}")
    assert kind == "connack" and detail[0] == 0, (kind, detail)
    assert_still_serving(tls_broker, witness, pki, f"client-{which}")


def test_plain_mqtt_to_tls_port_is_closed(tls_broker, witness, pki):
    _, eps = tls_broker
    with mqttraw.RawClient(eps["tls"].host, eps["tls"].port) as c:
        c.send(mqttraw.connect("plain-to-tls"))
        data = b""
        deadline = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < deadline, f"TLS port kept a plain client open: {data!r}"
            try:
                chunk = c.sock.recv(4096)
            except ConnectionResetError:
                break
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        # nothing, or a TLS alert record (content type 21): never a CONNACK
        assert data == b"" or data[0] == 0x15, data
    assert_still_serving(tls_broker, witness, pki, "plain-to-tls")


def test_tls_client_to_plain_port_fails(tls_broker, witness, pki):
    b, _ = tls_broker
    kind, err = mqtt_over_tls(Endpoint(b.host, b.port), context(pki.ca.cert), "tls-to-plain")
    assert kind == "handshake", (kind, err)
    r = pub(b, *tls_args(pki.ca.cert), "-t", "witness/no", "-m", "x", check=False)
    assert r.returncode != 0
    assert_still_serving(tls_broker, witness, pki, "tls-to-plain")


def test_stalled_handshakes_do_not_hold_up_others(tls_broker, witness, pki):
    """Connections that never finish their handshake (nothing sent, or half a
    ClientHello) must not stop new TLS clients nor connected ones."""
    _, eps = tls_broker
    stalled = []
    try:
        for i in range(6):
            sock = socket.create_connection((eps["tls"].host, eps["tls"].port), timeout=WAIT)
            if i % 2:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00")  # record + handshake header only
            stalled.append(sock)
        for i in range(3):
            kind, detail = mqtt_over_tls(eps["tls"], context(pki.ca.cert), f"past-stalled-{i}")
            assert kind == "connack" and detail[0] == 0, (kind, detail)
        assert_still_serving(tls_broker, witness, pki, "stalled")
    finally:
        for sock in stalled:
            sock.close()


# --------------------------------------------------------------------------
# 5. tls_version and ciphers
# --------------------------------------------------------------------------


def test_tls_version_is_a_minimum(start_broker, broker_kind, pki):
    b, eps = start_listeners(
        start_broker, broker_kind, ["v13", "v12", "default"],
        lambda p: [*tls_listener(p["v13"], "server", "tls_version tlsv1.3"),
                   *tls_listener(p["v12"], "server", "tls_version tlsv1.2"),
                   *tls_listener(p["default"])],
        pki.files())
    only12 = context(pki.ca.cert, max_version=ssl.TLSVersion.TLSv1_2)
    only13 = context(pki.ca.cert, min_version=ssl.TLSVersion.TLSv1_3)
    kind, err = mqtt_over_tls(eps["v13"], only12, "v12-to-v13")
    assert kind == "handshake", (kind, err)
    rc, out = s_client(eps["v13"], "-tls1_2", "-CAfile", str(pki.ca.cert))
    assert rc != 0, out
    kind, detail = mqtt_over_tls(eps["v13"], only13, "v13-to-v13")
    assert kind == "connack" and detail[:2] == (0, "TLSv1.3"), (kind, detail)
    # tlsv1.2 is a minimum too, and without tls_version both 1.2 and 1.3 are served
    for name in ("v12", "default"):
        kind, detail = mqtt_over_tls(eps[name], only12, f"v12-to-{name}")
        assert kind == "connack" and detail[:2] == (0, "TLSv1.2"), (name, kind, detail)
        kind, detail = mqtt_over_tls(eps[name], context(pki.ca.cert), f"any-to-{name}")
        assert kind == "connack" and detail[:2] == (0, "TLSv1.3"), (name, kind, detail)
    assert b.alive()


def test_ciphers_select_the_suites(start_broker, broker_kind, pki):
    b, eps = start_listeners(
        start_broker, broker_kind, ["c12", "c13"],
        lambda p: [*tls_listener(p["c12"], "server", "ciphers ECDHE-ECDSA-AES256-GCM-SHA384"),
                   *tls_listener(p["c13"], "server", "ciphers_tls1.3 TLS_AES_256_GCM_SHA384")],
        pki.files())
    v12 = ssl.TLSVersion.TLSv1_2
    kind, detail = mqtt_over_tls(
        eps["c12"], context(pki.ca.cert, max_version=v12, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384"),
        "c12-ok")
    assert kind == "connack" and detail == (0, "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    kind, err = mqtt_over_tls(
        eps["c12"], context(pki.ca.cert, max_version=v12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
        "c12-other")
    assert kind == "handshake", (kind, err)
    # mosquitto_pub with the configured suite
    pub(eps["c12"], *tls_args(pki.ca.cert), "--tls-version", "tlsv1.2",
        "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384", "-t", "tls/c12", "-m", "x")
    # TLS 1.3 suites (CPython cannot pick those; openssl s_client can)
    ca = ["-CAfile", str(pki.ca.cert), "-tls1_3"]
    rc, out = s_client(eps["c13"], *ca, "-ciphersuites", "TLS_AES_256_GCM_SHA384")
    assert rc == 0 and "TLS_AES_256_GCM_SHA384" in out, out
    rc, out = s_client(eps["c13"], *ca, "-ciphersuites", "TLS_AES_128_GCM_SHA256")
    assert rc != 0, out
    assert b.alive()


def test_openssl_cipher_keywords_are_honoured(start_broker, broker_kind, pki):
    """Mosquitto configurations often hold OpenSSL keyword lists, not suite names."""
    b, eps = start_listeners(
        start_broker, broker_kind, ["high", "gcm"],
        lambda p: [*tls_listener(p["high"], "server", "ciphers HIGH:!aNULL:!MD5"),
                   *tls_listener(p["gcm"], "server", "ciphers ECDHE+AESGCM:!AES256")],
        pki.files())
    v12 = ssl.TLSVersion.TLSv1_2
    kind, detail = mqtt_over_tls(eps["high"], context(pki.ca.cert, max_version=v12), "high")
    assert kind == "connack" and detail[0] == 0, (kind, detail)
    kind, detail = mqtt_over_tls(
        eps["gcm"], context(pki.ca.cert, max_version=v12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"),
        "gcm-ok")
    assert kind == "connack" and detail[2] == "ECDHE-ECDSA-AES128-GCM-SHA256", (kind, detail)
    for excluded in ("ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-GCM-SHA384"):
        kind, err = mqtt_over_tls(
            eps["gcm"], context(pki.ca.cert, max_version=v12, ciphers=excluded), "gcm-no")
        assert kind == "handshake", (excluded, kind, err)
    assert b.alive()


def _start_with_cipher(kind, pki, tmp_path, option, name):
    """Run the broker on a config whose line 4 is `option name`; (exit code, output, path)."""
    for f, text in pki.files().items():
        (tmp_path / f).write_text(text)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\ncertfile {tmp_path}/server.crt\n"
                    f"keyfile {tmp_path}/server.key\n{option} {name}\n")
    r = subprocess.run([broker_binary(kind), "-c", str(conf)], capture_output=True,
                       text=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr, conf


RUSTLS_LACKS = "Mosquitto's OpenSSL provides this suite, so the config starts there; " \
               "refusing it is Culex's (rustls) rule"


@pytest.mark.parametrize("option,name", [("ciphers", "DHE-RSA-AES256-GCM-SHA384"),
                                         ("ciphers", "AES128-SHA"),
                                         ("ciphers_tls1.3", "TLS_AES_128_CCM_SHA256")])
def test_cipher_rustls_cannot_provide_stops_startup(broker_kind, pki, tmp_path, option, name):
    if broker_kind == "mosquitto":
        pytest.skip(RUSTLS_LACKS)
    rc, out, _ = _start_with_cipher(broker_kind, pki, tmp_path, option, name)
    assert rc == 3, out
    assert option in out and name in out, out


def test_cipher_error_names_the_option_line(broker_kind, pki, tmp_path):
    """Like every bad config line: file and line of the option,
    here line 4, not the line of its `listener`."""
    if broker_kind == "mosquitto":
        pytest.skip(RUSTLS_LACKS)
    rc, out, conf = _start_with_cipher(broker_kind, pki, tmp_path, "ciphers", "AES128-SHA")
    assert rc == 3 and f"{conf}:4" in out, out


# --------------------------------------------------------------------------
# 6. Certificates re-read on SIGHUP
# --------------------------------------------------------------------------


def test_sighup_reloads_certificate(start_broker, broker_kind, pki):
    b, eps = start_listeners(start_broker, broker_kind, ["tls"],
                             lambda p: tls_listener(p["tls"]), pki.files())
    ep = eps["tls"]
    before = paho_tls(ep, "before-reload", "5", pki.ca.cert)
    try:
        before.connect()
        assert before.subscribe("reload/#", 1) == [1]
        for name, text in pki.server2.files("server").items():
            tmp = b.dir / (name + ".new")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, b.dir / name)
        os.kill(b.pid, signal.SIGHUP)
        trusts_new, trusts_old = context(pki.ca2.cert), context(pki.ca.cert)
        deadline = time.monotonic() + WAIT
        while True:
            kind, detail = mqtt_over_tls(ep, trusts_new, "after-reload")
            if kind == "connack" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert kind == "connack" and detail[0] == 0, (kind, detail, b.log())
        kind, err = mqtt_over_tls(ep, trusts_old, "old-ca")
        assert kind == "handshake" and isinstance(err, ssl.SSLCertVerificationError), (kind, err)
        # the client connected before the reload is still connected and served
        pub(ep, *tls_args(pki.ca2.cert), "-t", "reload/new", "-m", "from-new", "-q", "1")
        m = before.get()
        assert (m.topic, m.payload) == ("reload/new", b"from-new")
        before.publish("reload/own", b"still-here", qos=1)
        m = before.get()
        assert (m.topic, m.payload) == ("reload/own", b"still-here")
        assert b.alive()
    finally:
        before.close()


def test_sighup_with_unreadable_key_keeps_serving_the_old_certificate(start_broker, broker_kind,
                                                                     pki):
    b, eps = start_listeners(start_broker, broker_kind, ["tls"],
                             lambda p: tls_listener(p["tls"]), pki.files())
    ep = eps["tls"]
    before = paho_tls(ep, "before-bad-reload", "5", pki.ca.cert)
    try:
        before.connect()
        assert before.subscribe("badreload/#", 1) == [1]
        (b.dir / "server.key").write_text("not a key\n")
        os.kill(b.pid, signal.SIGHUP)
        assert b.wait_log("keyfile", timeout=WAIT), b.log()  # the error names the option
        assert b.alive()
        kind, detail = mqtt_over_tls(ep, context(pki.ca.cert), "after-bad-reload")
        assert kind == "connack" and detail[0] == 0, (kind, detail, b.log())
        pub(ep, *tls_args(pki.ca.cert), "-t", "badreload/x", "-m", "still", "-q", "1")
        m = before.get()
        assert (m.topic, m.payload) == ("badreload/x", b"still")
    finally:
        before.close()
