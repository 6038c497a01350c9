"""MQTT over WebSockets (`protocol websockets`, plain and over TLS) as
browser-style and Python clients use it.

Owns: MQTT.js (npm `mqtt`, driven by js/mqttjs_client.js) over ws:// and
wss:// with messages crossing to plain-TCP clients (3.1, 3.1.1, 5.0, large
messages), paho-mqtt's websocket transport with a path, client certificates
as user names and certificates re-read on SIGHUP for wss listeners, the
upgrade answer (subprotocols `mqtt` and `mqttv3.1`, any path, MQTT packets
split across or packed into frames, ping/pong, close) seen from a raw
socket, bad upgrade requests and forbidden frames that must not hurt the
broker, stalled upgrades, `websockets_origin`, the close handshake (a client's
close frame echoed, a close frame before the broker closes, one log line per
end) and `http_dir` (static files over plain HTTP on the same listener).
Called by: pytest, once per broker kind.

MQTT.js must be installed in tests/interop/js (`npm ci --no-audit
--no-fund` there; tests/run-all does it). Missing node or MQTT.js fails
under CI=true and skips otherwise. Certificates come from certs.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import mqttraw
from certs import pki, start_listeners  # noqa: F401 - pki is a fixture
from conftest import missing, require_tool
from pahoclient import PROTOCOLS, Paho
from test_differential import password_file
from test_tls import _connected_user, context

JS_DIR = Path(__file__).resolve().parent / "js"
WAIT = 5.0
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_listener(port, *options):
    return [f"listener {port} 127.0.0.1", "protocol websockets", *options]


def wss_listener(port, *options):
    return ws_listener(port, "certfile {dir}/server.crt", "keyfile {dir}/server.key", *options)


_SHARED: dict = {}


@pytest.fixture
def ws_broker(start_session_broker, broker_kind, pki):
    """One broker per kind: the fixture's plain TCP listener, `ws` and `wss`."""
    if broker_kind not in _SHARED:
        _SHARED[broker_kind] = start_listeners(
            start_session_broker, broker_kind, ["ws", "wss"],
            lambda p: [*ws_listener(p["ws"]), *wss_listener(p["wss"])], pki.files())
    b, eps = _SHARED[broker_kind]
    assert b.alive(), f"shared websocket broker died:\n{b.log()}"
    return b, eps


# --------------------------------------------------------------------------
# MQTT.js
# --------------------------------------------------------------------------


def require_mqttjs() -> str:
    node = require_tool("node")
    if not (JS_DIR / "node_modules" / "mqtt" / "package.json").is_file():
        missing("MQTT.js (run `npm install --no-audit --no-fund` in tests/interop/js)")
    return node


class MqttJs:
    """One MQTT.js client in a node process (js/mqttjs_client.js): JSON
    commands in, JSON events out; every wait is bounded."""

    def __init__(self, url, client_id, protocol_version=4, ca=None, headers=None,
                 topic_alias_maximum=None):
        opts = {"url": url, "clientId": client_id, "protocolVersion": protocol_version}
        if topic_alias_maximum:
            opts["topicAliasMaximum"] = topic_alias_maximum
        if ca is not None:
            opts["ca"] = str(ca)
        if headers:
            opts["headers"] = headers
        self.proc = subprocess.Popen(
            [require_mqttjs(), str(JS_DIR / "mqttjs_client.js"), json.dumps(opts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=JS_DIR)
        self.events: "queue.Queue[dict]" = queue.Queue()
        self.messages: "queue.Queue[dict]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "junk", "line": line}
            (self.messages if ev["ev"] == "message" else self.events).put(ev)
        self.events.put({"ev": "eof"})

    def wait(self, kind, timeout=WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"MQTT.js: no {kind} within {timeout}s") from None
            if ev["ev"] == kind:
                return ev
            if ev["ev"] in ("error", "close", "eof", "junk"):
                raise AssertionError(f"MQTT.js: {ev} while waiting for {kind}; "
                                     f"stderr: {self._stderr()}")

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()

    def _send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def connected(self) -> dict:
        ev = self.wait("connect")
        assert ev["reasonCode"] == 0, ev
        return ev

    def subscribe(self, topic, qos=0) -> list:
        self._send(op="subscribe", topic=topic, qos=qos)
        return self.wait("suback")["granted"]

    def publish(self, topic, payload, qos=0, retain=False):
        self._send(op="publish", topic=topic, payload=payload, qos=qos, retain=retain)
        self.wait("published")

    def get(self, timeout=WAIT) -> dict:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"MQTT.js: no message within {timeout}s") from None

    def close(self):
        if self.proc.poll() is None:
            try:
                self._send(op="end")
                self.proc.wait(timeout=WAIT)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait(timeout=WAIT)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


# --------------------------------------------------------------------------
# paho-mqtt over websockets
# --------------------------------------------------------------------------


def paho_ws(ep, client_id, protocol="5", path="/mqtt", ca=None) -> Paho:
    """A Paho (pahoclient) whose paho client uses transport="websockets"."""
    p = Paho(ep, client_id, protocol)
    old = p.c
    kw = {} if protocol == "5" else {"clean_session": True}
    p.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                      protocol=PROTOCOLS[protocol], transport="websockets", **kw)
    for cb in ("on_connect", "on_disconnect", "on_subscribe", "on_unsubscribe", "on_message"):
        setattr(p.c, cb, getattr(old, cb))
    p.c.ws_set_options(path=path)
    if ca is not None:
        p.c.tls_set(ca_certs=str(ca))
    return p


# --------------------------------------------------------------------------
# A raw WebSocket client (RFC 6455), for what real clients never send
# --------------------------------------------------------------------------


def upgrade_request(path="/", key="auto", version="13", protocol="mqtt", extra=()) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class RawWs:
    """One TCP connection to a websocket listener. Bounded reads only."""

    def __init__(self, ep, timeout=WAIT):
        self.sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        self.buf = b""
        self.stream = b""   # MQTT bytes from binary frames
        self.version = 4

    def close(self):
        self.sock.close()

    def _fill(self, deadline) -> bool:
        """Read more bytes; False on EOF/reset. Raises AssertionError at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError from None
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def response(self, timeout=WAIT):
        """The server's answer to what was sent: ("http", status, headers) for an
        HTTP head, ("closed", None, raw bytes) if it closed without one,
        ("silent", None, raw bytes) if it sent no head and kept the socket open."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            try:
                if not self._fill(deadline):
                    return "closed", None, self.buf
            except TimeoutError:
                return "silent", None, self.buf
        if not self.buf.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
            return "junk", None, self.buf
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return "http", int(lines[0].split()[1]), headers

    def upgrade(self, path="/", protocol="mqtt", extra=()):
        key = new_key()
        self.sock.sendall(upgrade_request(path, key, "13", protocol, extra))
        kind, status, headers = self.response()
        assert (kind, status) == ("http", 101), (kind, status, headers)
        assert headers.get("upgrade", "").lower() == "websocket", headers
        assert headers.get("sec-websocket-accept") == accept_for(key), headers
        return headers

    def send_frame(self, payload: bytes, opcode=0x2, fin=True):
        mask = os.urandom(4)
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def recv_frame(self, timeout=WAIT):
        """(opcode, payload) of the next frame; None on close."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames must not be masked"
                n, i = b1 & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, i = int.from_bytes(self.buf[2:4], "big"), 4
                elif n == 127 and len(self.buf) >= 10:
                    n, i = int.from_bytes(self.buf[2:10], "big"), 10
                if n < 126 and len(self.buf) >= i + n:
                    payload, self.buf = self.buf[i:i + n], self.buf[i + n:]
                    return b0 & 0x0F, payload
            try:
                if not self._fill(deadline):
                    return None
            except TimeoutError:
                raise AssertionError(f"no websocket frame within {timeout}s") from None

    def recv_mqtt(self, timeout=WAIT) -> dict:
        """The next MQTT packet from the binary frames (packets may span frames)."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stream
            if len(s) >= 2:
                length, mult, i = 0, 1, 1
                while i < len(s):
                    length += (s[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not s[i - 1] & 0x80:
                        break
                if not s[i - 1] & 0x80 and len(s) >= i + length:
                    self.stream = s[i + length:]
                    return mqttraw.decode(s[0], s[i:i + length], self.version)
            frame = self.recv_frame(max(0.01, deadline - time.monotonic()))
            assert frame is not None, "websocket closed while waiting for an MQTT packet"
            opcode, payload = frame
            assert opcode in (0x0, 0x2), f"unexpected websocket opcode {opcode}"
            self.stream += payload


def witness_pair(ws_broker, tag):
    """A websocket client subscribed to witness/<tag> before the bad requests."""
    _, eps = ws_broker
    w = paho_ws(eps["ws"], f"ws-witness-{tag}", "5")
    w.connect()
    assert w.subscribe(f"witness/{tag}", 1) == [1]
    return w


def assert_ws_still_serving(ws_broker, witness, tag):
    b, eps = ws_broker
    assert b.alive(), f"broker died:\n{b.log()}"
    p = paho_ws(eps["ws"], f"ws-after-{tag}", "3.1.1", path="/")
    try:
        p.connect()
        p.publish(f"witness/{tag}", b"alive", qos=1)
    finally:
        p.close()
    m = witness.get()
    assert (m.topic, m.payload) == (f"witness/{tag}", b"alive")


# --------------------------------------------------------------------------
# 7. MQTT.js over ws:// and wss://, messages crossing to TCP clients
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_mqttjs_round_trip_with_tcp_client(ws_broker, pki, scheme, version):
    b, eps = ws_broker
    base = f"ws/js/{scheme}/{version}"
    js = MqttJs(f"{scheme}://127.0.0.1:{eps[scheme].port}/", f"js-{scheme}-{version}",
                version, ca=pki.ca.cert if scheme == "wss" else None)
    tcp = Paho(b, f"tcp-{scheme}-{version}", "5" if version == 5 else "3.1.1")
    try:
        js.connected()
        tcp.connect()
        assert js.subscribe(f"{base}/in", 2) == [2]
        for qos in (0, 1, 2):
            tcp.publish(f"{base}/in", f"tcp-q{qos}".encode(), qos=qos)
        got = sorted((m["payload"], m["qos"]) for m in (js.get(), js.get(), js.get()))
        assert got == [("tcp-q0", 0), ("tcp-q1", 1), ("tcp-q2", 2)]
        assert tcp.subscribe(f"{base}/out", 2) == [2]
        for qos in (0, 1, 2):
            js.publish(f"{base}/out", f"js-q{qos}", qos=qos)
        got = sorted((m.payload, m.qos) for m in (tcp.get(), tcp.get(), tcp.get()))
        assert got == [(b"js-q0", 0), (b"js-q1", 1), (b"js-q2", 2)]
        # retained from the websocket, read over TCP
        js.publish(f"{base}/ret", "kept", qos=1, retain=True)
        assert tcp.subscribe(f"{base}/ret", 1) == [1]
        m = tcp.get()
        assert (m.payload, m.retain) == (b"kept", True)
        tcp.publish(f"{base}/ret", b"", qos=1, retain=True)
    finally:
        js.close()
        tcp.close()


def test_mqttjs_mqtt31_uses_subprotocol_mqttv31(ws_broker):
    """MQTT.js speaks MQTT 3.1 (MQIsdp) with subprotocol `mqttv3.1`."""
    b, eps = ws_broker
    js = MqttJs(f"ws://127.0.0.1:{eps['ws'].port}/mqtt", "js-v31", 3)
    try:
        js.connected()
        assert js.subscribe("ws/js31", 1) == [1]
        with mqttraw.RawClient(b.host, b.port) as raw:
            assert raw.connect("raw-for-js31")["reason_code"] == 0
            raw.publish("ws/js31", b"to-3.1", qos=1, packet_id=1)
            raw.expect("PUBACK", packet_id=1)
        m = js.get()
        assert (m["topic"], m["payload"], m["qos"]) == ("ws/js31", "to-3.1", 1)
    finally:
        js.close()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_large_messages_cross_websockets(ws_broker, pki, scheme):
    """128 KiB + 1 byte: frames with 64-bit lengths (or many frames) both ways."""
    b, eps = ws_broker
    payload = ("0123456789abcdef" * 8192) + "!"
    topic = f"ws/big/{scheme}"
    ca = pki.ca.cert if scheme == "wss" else None
    js = MqttJs(f"{scheme}://127.0.0.1:{eps[scheme].port}/", f"js-big-{scheme}", 5, ca=ca)
    pw = paho_ws(eps[scheme], f"paho-big-{scheme}", "3.1.1", "/mqtt", ca)
    tcp = Paho(b, f"tcp-big-{scheme}", "5")
    try:
        js.connected()
        pw.connect()
        tcp.connect()
        assert js.subscribe(f"{topic}/to-ws", 1) == [1]
        assert pw.subscribe(f"{topic}/to-ws", 1) == [1]
        assert tcp.subscribe(f"{topic}/to-tcp", 1) == [1]
        tcp.publish(f"{topic}/to-ws", payload.encode(), qos=1)
        assert js.get(timeout=15)["payload"] == payload
        assert pw.get(timeout=15).payload == payload.encode()
        js.publish(f"{topic}/to-tcp", payload, qos=1)
        pw.publish(f"{topic}/to-tcp", payload.encode()[::-1], qos=1)
        got = sorted(m.payload for m in (tcp.get(timeout=15), tcp.get(timeout=15)))
        assert got == sorted([payload.encode(), payload.encode()[::-1]])
    finally:
        js.close()
        pw.close()
        tcp.close()


# --------------------------------------------------------------------------
# 8. paho-mqtt transport="websockets"
# --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_paho_websockets_with_path(ws_broker, pki, scheme, protocol):
    b, eps = ws_broker
    topic = f"ws/paho/{scheme}/{protocol}"
    ca = pki.ca.cert if scheme == "wss" else None
    p = paho_ws(eps[scheme], f"paho-{scheme}-{protocol}", protocol, "/mqtt", ca)
    try:
        p.connect()
        assert p.subscribe(topic, 2) == [2]
        with mqttraw.RawClient(b.host, b.port) as raw:
            assert raw.connect(f"raw-{scheme}-{protocol}")["reason_code"] == 0
            raw.subscribe(1, [(topic + "/back", 1)])
            raw.publish(topic, b"from-tcp", qos=1, packet_id=2)
            raw.expect("PUBACK", packet_id=2)
            m = p.get()
            assert (m.topic, m.payload, m.qos) == (topic, b"from-tcp", 1)
            p.publish(topic + "/back", b"from-ws", qos=2)
            got = raw.expect("PUBLISH")
            assert (got["topic"], got["payload"], got["qos"]) == (topic + "/back", b"from-ws", 1)
    finally:
        p.close()


def test_wss_client_certificate_as_username(start_broker, broker_kind, pki):
    """require_certificate + use_identity_as_username on a websockets listener:
    the CN is the user name the ACL sees; no certificate, no upgrade."""
    b, eps = start_listeners(
        start_broker, broker_kind, ["wss"],
        lambda p: ["password_file {dir}/passwd", "acl_file {dir}/acl",
                   *wss_listener(p["wss"], "cafile {dir}/ca.crt", "require_certificate true",
                                 "use_identity_as_username true")],
        {**pki.files(), "passwd": password_file({"alice": "s3cret"}),
         "acl": "user device-17\ntopic readwrite wsid/device-17/#\n"},
        anonymous=False)
    ep = eps["wss"]
    d17 = paho_ws(ep, "wss-id-17", "5", "/mqtt")
    d18 = paho_ws(ep, "wss-id-18", "3.1.1", "/mqtt")
    d17.c.tls_set(ca_certs=str(pki.ca.cert), certfile=str(pki.device.cert),
                  keyfile=str(pki.device.key))
    d18.c.tls_set(ca_certs=str(pki.ca.cert), certfile=str(pki.device_other.cert),
                  keyfile=str(pki.device_other.key))
    try:
        d17.c.username_pw_set("alice", "wrong")
        d17.connect()
        d18.connect()
        d17.subscribe("wsid/#", 1)
        d18.publish("wsid/device-17/forged", b"no", qos=1)  # no ACL entry for device-18
        d17.publish("wsid/device-17/mine", b"17", qos=1)
        assert [(m.topic, m.payload) for m in d17.get_all()] == [("wsid/device-17/mine", b"17")]
        assert _connected_user(b, "wss-id-17") == "device-17"
    finally:
        d17.close()
        d18.close()
    nocert = paho_ws(ep, "wss-no-cert", "5", "/mqtt", pki.ca.cert)
    with pytest.raises(OSError):  # ssl.SSLError: certificate required
        nocert.connect()
    nocert.close()
    assert b.alive()


def handshake_error(ep, ctx):
    """None if a TLS handshake with `ctx` succeeds, else the error."""
    with socket.create_connection((ep.host, ep.port), timeout=WAIT) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost").close()
            return None
        except (ssl.SSLError, OSError) as e:
            return e


def test_sighup_reloads_wss_certificate(start_broker, broker_kind, pki):
    b, eps = start_listeners(start_broker, broker_kind, ["wss"],
                             lambda p: wss_listener(p["wss"]), pki.files())
    ep = eps["wss"]
    before = paho_ws(ep, "wss-before-reload", "5", "/mqtt", pki.ca.cert)
    try:
        before.connect()
        assert before.subscribe("wssreload/#", 1) == [1]
        for name, text in pki.server2.files("server").items():
            tmp = b.dir / (name + ".new")
            tmp.write_text(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, b.dir / name)
        os.kill(b.pid, signal.SIGHUP)
        trusts_new, trusts_old = context(pki.ca2.cert), context(pki.ca.cert)
        deadline = time.monotonic() + WAIT
        while handshake_error(ep, trusts_new) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert handshake_error(ep, trusts_new) is None, b.log()
        assert isinstance(handshake_error(ep, trusts_old), ssl.SSLCertVerificationError)
        after = paho_ws(ep, "wss-after", "3.1.1", "/mqtt", pki.ca2.cert)
        try:
            after.connect()
            after.publish("wssreload/new", b"from-new", qos=1)
        finally:
            after.close()
        m = before.get()
        assert (m.topic, m.payload) == ("wssreload/new", b"from-new")
        assert b.alive()
    finally:
        before.close()


# --------------------------------------------------------------------------
# 9. The upgrade, seen raw; bad requests; websockets_origin
# --------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol,version", [("mqtt", 4), ("mqtt", 5), ("mqttv3.1", 3)])
def test_upgrade_any_path_and_frame_boundaries(ws_broker, subprotocol, version):
    _, eps = ws_broker
    ws = RawWs(eps["ws"])
    try:
        headers = ws.upgrade(path="/some/deep/path?x=1", protocol=subprotocol)
        assert headers.get("sec-websocket-protocol") == subprotocol, headers
        ws.version = version
        connect = mqttraw.connect(f"raw-ws-{subprotocol}-{version}", version=version)
        # one CONNECT split across two frames...
        ws.send_frame(connect[:5])
        ws.send_frame(connect[5:])
        p = ws.recv_mqtt()
        assert p["type"] == "CONNACK" and p["reason_code"] == 0, p
        # ...then SUBSCRIBE, PUBLISH and PINGREQ packed into one frame
        topic = f"ws/raw/{version}"
        ws.send_frame(mqttraw.subscribe(1, [(topic, 0)], version=version)
                      + mqttraw.publish(topic, b"loop", version=version)
                      + mqttraw.pingreq())
        got = [ws.recv_mqtt()["type"] for _ in range(3)]
        assert sorted(got) == ["PINGRESP", "PUBLISH", "SUBACK"], got
        # a WebSocket ping is answered with a pong carrying the same data
        ws.send_frame(b"hi", opcode=0x9)
        assert ws.recv_frame() == (0xA, b"hi")
        # and a close frame is answered with a close frame
        ws.send_frame((1000).to_bytes(2, "big"), opcode=0x8)
        frame = ws.recv_frame()
        assert frame is None or frame[0] == 0x8, frame
    finally:
        ws.close()


BAD_REQUESTS = {
    "missing-key": upgrade_request(key=None),
    # 13 is RFC 6455; libwebsockets also takes the drafts' 8 (hybi-08), so use one nobody knows
    "wrong-version": upgrade_request(key=new_key(), version="99"),
    "not-an-upgrade": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "plain-mqtt": mqttraw.connect("plain-to-ws"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_upgrade_is_refused_and_broker_keeps_serving(ws_broker, broker_kind, case):
    witness = witness_pair(ws_broker, case)
    _, eps = ws_broker
    try:
        ws = RawWs(eps["ws"])
        try:
            ws.sock.sendall(BAD_REQUESTS[case])
            kind, status, detail = ws.response()
            if case == "wrong-version" and broker_kind == "mosquitto":
                # Deviation: RFC 6455 4.2.2 says a server that does not understand
                # the version MUST abort the handshake with an HTTP error and a
                # Sec-WebSocket-Version header; Mosquitto 2.0.11 (its bundled
                # libwebsockets) answers 101 to any version. Culex is held to the RFC.
                assert (kind, status) == ("http", 101), \
                    f"Mosquitto now refuses version 99 ({kind}, {status}): update this expectation"
            else:
                # an HTTP error, or a close without any answer: never a 101, never MQTT
                assert (kind == "http" and 400 <= status < 500) or (kind, detail) == ("closed", b""), \
                    (kind, status, detail)
            if case == "wrong-version" and broker_kind != "mosquitto":
                # RFC 6455 4.4: "it MUST respond with a |Sec-WebSocket-Version|
                # header field ... containing all versions it is willing to use"
                assert kind == "http" and detail.get("sec-websocket-version") == "13", \
                    (kind, status, detail)
        finally:
            ws.close()
        assert_ws_still_serving(ws_broker, witness, case)
    finally:
        witness.close()


def _masked(payload: bytes, first: int) -> bytes:
    mask = os.urandom(4)
    return (bytes([first, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


_CONNECT = mqttraw.connect("bad-frame")
BAD_FRAMES = {
    # RFC 6455 5.1: "The server MUST close the connection upon receiving a frame that is not masked"
    "unmasked": bytes([0x82, len(_CONNECT)]) + _CONNECT,
    # MQTT 5.0 6.0 [MQTT-6.0.0-1]: packets travel in binary frames; "If any other type
    # of data frame is received the recipient MUST close the Network Connection"
    "text": _masked(_CONNECT, 0x81),
    # RFC 6455 5.2: a reserved bit set without an extension -> fail the connection
    "rsv1": _masked(_CONNECT, 0xC2),
    # RFC 6455 5.2: an unknown opcode -> fail the connection
    "opcode-3": _masked(_CONNECT, 0x83),
    # RFC 6455 5.4: a continuation frame with no fragmented message begun
    "orphan-continuation": _masked(_CONNECT, 0x80),
}
# Mosquitto 2.0.11 (its libwebsockets) takes these as MQTT and answers CONNACK.
MOSQUITTO_TAKES = {"unmasked", "text"}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frame_fails_the_websocket(ws_broker, broker_kind, case):
    """A frame RFC 6455 / MQTT forbid, carrying a CONNECT: no CONNACK; the
    server closes (a Close frame first is allowed); others are still served."""
    witness = witness_pair(ws_broker, f"frame-{case}")
    _, eps = ws_broker
    try:
        ws = RawWs(eps["ws"])
        try:
            ws.upgrade()
            ws.sock.sendall(BAD_FRAMES[case])
            frame = ws.recv_frame(timeout=3)
        finally:
            ws.close()
        if broker_kind == "mosquitto" and case in MOSQUITTO_TAKES:
            assert frame is not None and frame[0] == 0x2, \
                f"Mosquitto now refuses the {case} frame ({frame}): update MOSQUITTO_TAKES"
        else:
            # EOF, or a Close frame (whose status, if any, is an error: 1002/1003/1007)
            assert frame is None or frame[0] == 0x8, (case, frame)
            if frame is not None and len(frame[1]) >= 2:
                assert int.from_bytes(frame[1][:2], "big") in (1002, 1003, 1007), frame
        assert_ws_still_serving(ws_broker, witness, f"frame-{case}")
    finally:
        witness.close()


def test_stalled_upgrades_do_not_hold_up_others(ws_broker):
    """Connections that send nothing or half an upgrade request must not stop
    new websocket clients nor connected ones."""
    witness = witness_pair(ws_broker, "stalled")
    _, eps = ws_broker
    stalled = []
    try:
        for i in range(6):
            sock = socket.create_connection((eps["ws"].host, eps["ws"].port), timeout=WAIT)
            if i % 2:
                sock.sendall(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            stalled.append(sock)
        for i in range(3):
            ws = RawWs(eps["ws"])
            try:
                ws.upgrade()
                ws.send_frame(mqttraw.connect(f"past-stalled-{i}"))
                assert ws.recv_mqtt()["type"] == "CONNACK"
            finally:
                ws.close()
        assert_ws_still_serving(ws_broker, witness, "stalled")
    finally:
        for sock in stalled:
            sock.close()
        witness.close()


def test_websockets_origin(start_broker, broker_kind):
    if broker_kind == "mosquitto":
        pytest.skip("Mosquitto 2.0.11 has no websockets_origin (added in 2.1): "
                    "it stops with 'Unknown configuration variable'")
    b, eps = start_listeners(
        start_broker, broker_kind, ["ws"],
        lambda p: ws_listener(p["ws"], "websockets_origin https://app.example"))
    ep = eps["ws"]
    for origin in ("https://evil.example", None):
        ws = RawWs(ep)
        try:
            extra = [f"Origin: {origin}"] if origin else []
            ws.sock.sendall(upgrade_request(key=new_key(), extra=extra))
            kind, status, _ = ws.response()
            assert (kind, status) == ("http", 403), (origin, kind, status)
        finally:
            ws.close()
    ws = RawWs(ep)
    try:
        ws.upgrade(extra=["Origin: https://app.example"])
        ws.send_frame(mqttraw.connect("good-origin"))
        assert ws.recv_mqtt()["type"] == "CONNACK"
    finally:
        ws.close()
    assert b.alive()


def test_websockets_origin_with_mqttjs(start_broker, broker_kind):
    if broker_kind == "mosquitto":
        pytest.skip("Mosquitto 2.0.11 has no websockets_origin (added in 2.1)")
    require_mqttjs()
    b, eps = start_listeners(
        start_broker, broker_kind, ["ws"],
        lambda p: ws_listener(p["ws"], "websockets_origin https://app.example"))
    ep = eps["ws"]
    # a browser-like client sends its page's origin
    good = MqttJs(f"ws://127.0.0.1:{ep.port}/mqtt", "js-good-origin",
                  headers={"Origin": "https://app.example"})
    bad = MqttJs(f"ws://127.0.0.1:{ep.port}/mqtt", "js-bad-origin",
                 headers={"Origin": "https://evil.example"})
    try:
        good.connected()
        # MQTT.js reports the refused upgrade (a 403, as the raw check shows) as a
        # close before any CONNACK; it swallows the error itself
        with pytest.raises(AssertionError, match="'close'"):
            bad.wait("connect")
    finally:
        good.close()
        bad.close()
    assert b.alive()


# --------------------------------------------------------------------------
# 10. Closing: the close handshake, and one log line per connection
# --------------------------------------------------------------------------


def _ws_client(ep, client_id, version=4, **kw) -> RawWs:
    ws = RawWs(ep)
    ws.upgrade()
    ws.version = version
    ws.send_frame(mqttraw.connect(client_id, version=version, **kw))
    p = ws.recv_mqtt()
    assert p["type"] == "CONNACK" and p["reason_code"] == 0, p
    return ws


def _end_lines(b, client_id) -> list[str]:
    """The broker's log lines that end `client_id`'s connection."""
    return [line for line in b.log().splitlines()
            if f"Client {client_id} " in line
            and (" disconnected" in line or " closed its connection" in line)]


def _close_frames_then_eof(ws, timeout=WAIT) -> list:
    """Every frame the server sends until it closes the socket."""
    frames = []
    while True:
        frame = ws.recv_frame(timeout=timeout)
        if frame is None:
            return frames
        frames.append(frame)


CLIENT_CLOSES = {
    "no-status": b"",
    "1000": (1000).to_bytes(2, "big"),
    "4000-with-reason": (4000).to_bytes(2, "big") + b"bye",
}


@pytest.mark.parametrize("case", sorted(CLIENT_CLOSES))
def test_client_close_frame_is_echoed_and_logged_once(ws_broker, case):
    """RFC 6455 5.5.1: a close frame is answered with a close frame; both brokers echo the
    status and reason (an empty close frame, "no status", is what browsers report as 1005).
    The connection's end is logged once, as any connection the client closed."""
    b, eps = ws_broker
    client_id = f"ws-client-close-{case}"
    ws = _ws_client(eps["ws"], client_id)
    try:
        ws.send_frame(CLIENT_CLOSES[case], opcode=0x8)
        frames = _close_frames_then_eof(ws)
    finally:
        ws.close()
    assert frames == [(0x8, CLIENT_CLOSES[case])], frames
    end = f"Client {client_id} closed its connection."
    assert b.wait_log(end), b.log()
    assert _end_lines(b, client_id) == [line for line in b.log().splitlines()
                                       if line.endswith(end)], b.log()
    assert len(_end_lines(b, client_id)) == 1, _end_lines(b, client_id)


def test_disconnect_and_close_frame_in_one_write_is_a_clean_disconnect(ws_broker):
    """MQTT.js `end()` sends DISCONNECT and a close frame back to back: the DISCONNECT
    still counts (no will, "disconnected." logged once), whatever the close frame does."""
    b, eps = ws_broker
    client_id = "ws-disconnect-then-close"
    topic = "ws/close/will"
    with mqttraw.RawClient(b.host, b.port) as watcher:
        assert watcher.connect("ws-will-watcher")["reason_code"] == 0
        watcher.subscribe(1, [(topic, 0)])
        ws = _ws_client(eps["ws"], client_id, will={"topic": topic, "payload": b"will"})
        try:
            disconnect = mqttraw.disconnect()
            mask = os.urandom(4)
            close = bytes([0x88, 0x80]) + mask  # masked, empty close frame
            frame = bytes([0x82, 0x80 | len(disconnect)]) + mask + bytes(
                x ^ mask[i % 4] for i, x in enumerate(disconnect))
            ws.sock.sendall(frame + close)
            frames = _close_frames_then_eof(ws)
        finally:
            ws.close()
        assert all(opcode == 0x8 for opcode, _ in frames), frames
        assert b.wait_log(f"Client {client_id} disconnected."), b.log()
        # The will would have been sent before the marker published now.
        watcher.publish(topic, b"marker")
        got = watcher.expect("PUBLISH")
        assert got["payload"] == b"marker", got
    assert _end_lines(b, client_id) == [
        line for line in b.log().splitlines() if line.endswith(f"Client {client_id} disconnected.")
    ], b.log()
    assert len(_end_lines(b, client_id)) == 1, _end_lines(b, client_id)


def test_bad_frame_after_connect_ends_the_client_with_one_log_line(ws_broker):
    """A frame RFC 6455 forbids (an unknown opcode) from a connected client: the broker
    sends a close frame with 1002 (protocol error) and closes once the client answered (or
    at once); the end is logged once."""
    b, eps = ws_broker
    client_id = "ws-bad-frame-after-connect"
    ws = _ws_client(eps["ws"], client_id)
    try:
        ws.sock.sendall(_masked(mqttraw.pingreq(), 0x83))
        opcode, payload = ws.recv_frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1002), payload
        try:
            ws.send_frame(payload[:2], opcode=0x8)  # the client's side of the handshake
        except OSError:
            pass  # the broker did not wait for it
        assert _close_frames_then_eof(ws) == []
    finally:
        ws.close()
    deadline = time.monotonic() + WAIT
    while not _end_lines(b, client_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    # A second line for the same end would follow the first at once; a client connected
    # and logged later shows that none did.
    _ws_client(eps["ws"], client_id + "-after").close()
    assert b.wait_log(f"as {client_id}-after "), b.log()
    assert len(_end_lines(b, client_id)) == 1, _end_lines(b, client_id)


def _broker_closes(case, b, ep, client_id):
    """Makes the broker close `client_id`'s WebSocket for `case`; returns the old client."""
    version = 5
    ws = _ws_client(ep, client_id, version)
    if case == "disconnect":
        ws.send_frame(mqttraw.disconnect(version=version))
    elif case == "protocol-error":
        ws.send_frame(mqttraw.connect("second-connect", version=version))
    elif case == "takeover":
        _ws_client(ep, client_id, version).close()
    elif case == "shutdown":
        b.proc.send_signal(signal.SIGTERM)
    return ws


@pytest.mark.parametrize("case", ["disconnect", "protocol-error", "takeover", "shutdown"])
def test_broker_close_sends_a_close_frame_first(start_broker, broker_kind, case):
    """When the broker ends a WebSocket connection (after a DISCONNECT, on a protocol error,
    a takeover or shutdown), Culex sends a close frame (1000) before closing the socket, as
    RFC 6455 7.1.2 describes, so browsers report a clean close instead of 1006."""
    b, eps = start_listeners(start_broker, broker_kind, ["ws"], lambda p: ws_listener(p["ws"]),
                             {})
    ws = _broker_closes(case, b, eps["ws"], f"ws-broker-close-{case}")
    try:
        frames = _close_frames_then_eof(ws)
    finally:
        ws.close()
    closes = [payload for opcode, payload in frames if opcode == 0x8]
    if broker_kind == "mosquitto":
        # Deviation: Mosquitto 2.0.11 closes the socket without a close frame (its clients
        # see 1006, "abnormal closure"); RFC 6455 7.1.2 asks for the closing handshake.
        assert closes == [], f"Mosquitto now sends a close frame ({closes}): update this test"
    else:
        assert closes == [(1000).to_bytes(2, "big")], frames
        assert frames[-1][0] == 0x8, "nothing after the close frame"


# --------------------------------------------------------------------------
# 11. http_dir: static files over plain HTTP on the websockets listener
# --------------------------------------------------------------------------

BIG = bytes(range(256)) * 1024 + b"end"  # 256 KiB + 3: several reads and writes
WWW = {
    "www/index.html": "<h1>culex test page</h1>\n",
    "www/sub/style.css": "body { color: black }\n",
    "www/big.bin": BIG,
}


def _http_get(ep, path, tls_ca=None):
    """(status, headers, body) of one GET; the connection must end after it."""
    import http.client
    if tls_ca is None:
        conn = http.client.HTTPConnection(ep.host, ep.port, timeout=WAIT)
    else:
        conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=WAIT,
                                           context=context(tls_ca))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_http_dir_serves_files_beside_mqtt(start_broker, broker_kind, pki, scheme):
    """`http_dir` on a websockets listener: files come back over plain HTTP GET (`/` is
    index.html, a directory without its slash redirects), a missing file is 404, `..` never
    leaves the directory (the config file next to it stays out of reach, however the dots
    are written), a symbolic link out of it is refused (403), and MQTT over WebSocket keeps
    working on the same listener."""
    build = ws_listener if scheme == "ws" else wss_listener
    b, eps = start_listeners(start_broker, broker_kind, [scheme],
                             lambda p: build(p[scheme], "http_dir {dir}/www"),
                             {**pki.files(), **WWW})
    (b.dir / "www" / "escape.conf").symlink_to(b.dir / "mosquitto.conf")
    ep, ca = eps[scheme], (pki.ca.cert if scheme == "wss" else None)
    got = {path: _http_get(ep, path, ca) for path in [
        "/", "/index.html", "/index.html?v=2", "/sub/style.css", "/big.bin", "/missing.html",
        "/../mosquitto.conf", "/sub/../../mosquitto.conf", "/%2e%2e/mosquitto.conf",
        "/escape.conf", "/sub"]}
    status = {path: answer[0] for path, answer in got.items()}
    assert status == {
        "/": 200, "/index.html": 200, "/index.html?v=2": 200, "/sub/style.css": 200,
        "/big.bin": 200, "/missing.html": 404, "/../mosquitto.conf": 404,
        "/sub/../../mosquitto.conf": 404, "/%2e%2e/mosquitto.conf": 404,
        "/escape.conf": 403, "/sub": 302}, status
    for path in ("/", "/index.html", "/index.html?v=2"):
        assert got[path][2] == WWW["www/index.html"].encode(), got[path]
    assert got["/sub/style.css"][2] == WWW["www/sub/style.css"].encode()
    assert got["/big.bin"][2] == BIG
    assert got["/sub"][1].get("location") == "/sub/", got["/sub"]
    assert all(b"listener" not in body for _, _, body in got.values())
    if broker_kind == "culex":
        # Mosquitto 2.0.11 sends no Content-Type; browsers need one for module scripts.
        assert got["/"][1].get("content-type") == "text/html; charset=utf-8", got["/"]
        assert got["/sub/style.css"][1].get("content-type") == "text/css; charset=utf-8"
    # MQTT over WebSocket on the same listener, with a plain TCP client on the other side.
    p = paho_ws(ep, f"http-dir-{scheme}", "5", "/mqtt", ca)
    try:
        p.connect()
        assert p.subscribe("httpdir/t", 1) == [1]
        with mqttraw.RawClient(b.host, b.port) as raw:
            assert raw.connect(f"http-dir-tcp-{scheme}")["reason_code"] == 0
            raw.publish("httpdir/t", b"beside files", qos=1, packet_id=1)
            raw.expect("PUBACK", packet_id=1)
        m = p.get()
        assert (m.topic, m.payload) == ("httpdir/t", b"beside files")
    finally:
        p.close()


def test_http_dir_that_does_not_exist_stops_start_up(broker_kind):
    """Both brokers refuse to start with an `http_dir` that is not there, naming it."""
    import tempfile
    from conftest import broker_binary, free_port
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {free_port()} 127.0.0.1\nprotocol websockets\n"
                        f"http_dir {tmp}/nowhere\n")
        run = subprocess.run([broker_binary(broker_kind), "-c", str(conf)], capture_output=True,
                             text=True, timeout=10)
    assert run.returncode != 0
    assert f'Unable to open http dir "{tmp}/nowhere"' in run.stdout + run.stderr, run
