"""How a connection the broker ends reaches a client that is still sending.

Owns: the close of a connection by the broker (a protocol violation, a
takeover, a refused CONNECT; over TCP, TLS and WebSockets) while its client
keeps writing without reading, as a publisher that pipelines does. The
client must be able to finish its writes (no broken pipe, no reset) and then
read the DISCONNECT (or CONNACK) with the reason code, the transport's close
(TLS close_notify, WebSocket close frame) and an orderly end of stream. Run
per broker kind; where Mosquitto 2.0.11 does otherwise, its observed
behaviour is asserted and named (deviations.py).

Called by: pytest.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import time


import mqttraw as m
from certs import pki, start_listeners  # noqa: F401 - pki is a fixture
from deviations import MOSQUITTO_DEVIATIONS
from test_tls import context, tls_listener
from test_websockets import RawWs, ws_listener

# After the event that ends the connection the client goes on publishing: EXTRA
# QoS 0 messages of EXTRA_SIZE bytes, one every PACE_S, before it reads anything.
# The pace stands for a client's own work between publishes; it makes the
# writes span well past the moment the broker closes (about 0.2 s in all), so
# a broker that drops the connection while bytes still arrive is caught every
# time, not only when the timing happens to race. 100 KiB in all, well within
# what a broker may reasonably absorb while closing.
EXTRA = 100
EXTRA_SIZE = 1024
PACE_S = 0.002


def paced_publishes(sock: socket.socket, version: int, count=EXTRA, wrap=bytes) -> str | None:
    """Sends `count` QoS 0 publishes one by one (each passed through `wrap`, e.g.
    into a WebSocket frame); the error name of the first failed write, or None
    when all were written."""
    packet = wrap(m.publish("closing/extra", b"x" * EXTRA_SIZE, version=version))
    for _ in range(count):
        try:
            sock.sendall(packet)
        except ssl.SSLError as e:
            return type(e).__name__
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e))
        time.sleep(PACE_S)
    return None


def read_to_end(client: m.RawClient, timeout=5.0):
    """Reads every packet until the stream ends: (packets, end) where end is
    "eof" (orderly), "reset", or "open" (still open after `timeout`)."""
    packets = []
    deadline = time.monotonic() + timeout
    while True:
        p = client._parse_one()
        if p is not None:
            packets.append(p)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            return packets, "open"
        ready, _, _ = select.select([client.sock], [], [], left)
        if not ready:
            return packets, "open"
        try:
            data = client.sock.recv(65536)
        except ConnectionResetError:
            return packets, "reset"
        except ssl.SSLError as e:
            # An end of stream without TLS close_notify is SSLEOFError.
            return packets, type(e).__name__
        if not data:
            return packets, "eof"
        client.buf += data


def outcome(client: m.RawClient, send_error, timeout=5.0):
    """What the client saw: (write error, the last packet's type and reason code,
    how the stream ended), and the packets themselves."""
    packets, end = read_to_end(client, timeout)
    last = packets[-1] if packets else None
    last_seen = None if last is None else (last["type"], last.get("reason_code"))
    return (send_error, last_seen, end), packets


SAME = object()


def expect_told_then_ended(kind, seen, told, mosquitto_told=SAME):
    """Culex: every write went through, the client then read `told` (the last
    packet: type and reason code) and an orderly end of stream. Mosquitto
    (deviation close-resets-sending-client) closes at once: a write fails,
    although on Linux the packet it sent before is still there to read."""
    error, last, end = seen
    dev = MOSQUITTO_DEVIATIONS["close-resets-sending-client"]
    if kind == "mosquitto":
        assert error in dev.mosquitto.values, (
            f"close-resets-sending-client: Mosquitto no longer behaves as recorded "
            f"({dev.mosquitto!r}); got {error!r}. Update deviations.py.")
        assert (last, end) == (told if mosquitto_told is SAME else mosquitto_told, "eof"), seen
    else:
        assert seen == (None, told, "eof"), seen


def test_receive_maximum_exceeded_while_sending(start_broker, broker_kind):
    """Receive Maximum + 1 unreleased QoS 2 publishes sent one by one, then more
    publishes, then the client reads: DISCONNECT 0x93 must be there to read."""
    b = start_broker(broker_kind)
    c = m.RawClient(b.host, b.port, version=5, label="rm")
    ack = c.connect("close-rm")
    limit = ack["properties"].get("receive_maximum", 65535)
    assert limit == 20
    for i in range(1, limit + 2):
        c.sock.sendall(m.publish("closing/q2", b"x", qos=2, packet_id=i, version=5))
    error = paced_publishes(c.sock, 5)
    # Mosquitto keeps this connection open: a second tells that as well as five.
    seen, packets = outcome(c, error, 1.0 if broker_kind == "mosquitto" else 5.0)
    if broker_kind == "mosquitto":
        # Mosquitto refuses the publish beyond the Receive Maximum with PUBREC 0x97
        # and keeps the connection open (deviation receive-maximum-not-enforced):
        # there is no close to observe.
        assert seen == (None, ("PUBREC", 0x97), "open"), seen
        assert [p["packet_id"] for p in packets] == list(range(1, limit + 2))
        return
    expect_told_then_ended(broker_kind, seen, ("DISCONNECT", 0x93))
    assert [p["type"] for p in packets[:-1]] == ["PUBREC"] * limit


def test_packet_too_large_while_sending(start_broker, broker_kind):
    """An oversize PUBLISH, then more publishes, then the client reads: the
    DISCONNECT 0x95 must be there to read and the stream must end in order."""
    b = start_broker(broker_kind, ["max_packet_size 2000"])
    c = m.RawClient(b.host, b.port, version=5, label="big")
    ack = c.connect("close-big")
    assert ack["properties"].get("maximum_packet_size") == 2000
    c.sock.sendall(m.publish("closing/big", b"x" * 4000, version=5))
    error = paced_publishes(c.sock, 5)
    seen, _ = outcome(c, error)
    expect_told_then_ended(broker_kind, seen, ("DISCONNECT", 0x95))


def test_takeover_while_old_client_sends(start_broker, broker_kind):
    """The old connection of a client id is taken over while it publishes
    without reading: it must still read DISCONNECT 0x8E after its writes."""
    b = start_broker(broker_kind)
    old = m.RawClient(b.host, b.port, version=5, label="old")
    old.connect("close-take")
    assert paced_publishes(old.sock, 5, count=5) is None
    new = m.RawClient(b.host, b.port, version=5, label="new")
    assert new.connect("close-take")["reason_code"] == 0
    error = paced_publishes(old.sock, 5)
    seen, _ = outcome(old, error)
    # Mosquitto sends no DISCONNECT on a takeover (deviation takeover-disconnect).
    expect_told_then_ended(broker_kind, seen, ("DISCONNECT", 0x8E), mosquitto_told=None)
    new.publish("closing/after", b"x", qos=1, packet_id=1)
    assert new.expect("PUBACK")["packet_id"] == 1


def test_refused_connect_while_sending(start_broker, broker_kind):
    """A client may send packets right after CONNECT without waiting for the
    CONNACK ([5.0] 3.1.4): refused, it must still read the CONNACK 0x87."""
    b = start_broker(broker_kind, anonymous=False)
    c = m.RawClient(b.host, b.port, version=5, label="refused")
    c.sock.sendall(m.connect("close-refused", version=5))
    error = paced_publishes(c.sock, 5)
    seen, _ = outcome(c, error)
    expect_told_then_ended(broker_kind, seen, ("CONNACK", 0x87))


# The same close over TLS and over WebSockets: the transport's own closing bytes
# (TLS close_notify, a WebSocket close frame) must come after the DISCONNECT,
# then the end of stream.


class TlsRawClient(m.RawClient):
    """A RawClient over TLS (CPython's ssl, verifying the test CA)."""

    def __init__(self, ep, ca, version=5, label="tls"):
        self.version, self.label, self.on_packet = version, label, None
        self.buf, self.closed = b"", False
        raw = socket.create_connection((ep.host, ep.port), timeout=5)
        self.sock = context(ca).wrap_socket(raw, server_hostname="localhost")


def test_packet_too_large_while_sending_over_tls(start_broker, broker_kind, pki):
    b, eps = start_listeners(start_broker, broker_kind, ["tls"],
                             lambda p: [*tls_listener(p["tls"]), "max_packet_size 2000"],
                             pki.files())
    with TlsRawClient(eps["tls"], pki.ca.cert) as c:
        assert c.connect("close-tls")["reason_code"] == 0
        c.sock.sendall(m.publish("closing/big", b"x" * 4000, version=5))
        error = paced_publishes(c.sock, 5)
        # "eof" here is a TLS close_notify, then the end of stream.
        seen, _ = outcome(c, error)
    expect_told_then_ended(broker_kind, seen, ("DISCONNECT", 0x95))


def ws_frame(payload: bytes) -> bytes:
    """A masked binary WebSocket frame (client to server)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126
                            else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_protocol_error_while_sending_over_websockets(start_broker, broker_kind):
    """A topic alias above the maximum (DISCONNECT 0x94 on both brokers), then more
    publishes, then the client reads: the DISCONNECT, a close frame, the end."""
    b, eps = start_listeners(start_broker, broker_kind, ["ws"],
                             lambda p: ws_listener(p["ws"]), {})
    ws = RawWs(eps["ws"])
    try:
        ws.upgrade()
        ws.version = 5
        ws.send_frame(m.connect("close-ws", version=5))
        assert ws.recv_mqtt()["reason_code"] == 0
        ws.send_frame(m.publish("closing/alias", b"x", version=5,
                                properties={"topic_alias": 11}))
        error = paced_publishes(ws.sock, 5, wrap=ws_frame)
        frames, end = [], "open"
        deadline = time.monotonic() + 5
        while end == "open" and time.monotonic() < deadline:
            try:
                frame = ws.recv_frame(deadline - time.monotonic())
            except AssertionError:
                break
            if frame is None:
                end = "eof"
            else:
                frames.append(frame)
    finally:
        ws.close()
    opcodes = [opcode for opcode, _ in frames]
    mqtt = b"".join(payload for opcode, payload in frames if opcode in (0x0, 0x2))
    told = None
    if mqtt:
        p = m.decode(mqtt[0], mqtt[2:2 + mqtt[1]], 5)
        told = (p["type"], p.get("reason_code"))
    if broker_kind == "mosquitto":
        # Closes at once, without a close frame (test_websockets.py records that).
        assert told == ("DISCONNECT", 0x94) and end == "eof", (told, end, opcodes)
        dev = MOSQUITTO_DEVIATIONS["close-resets-sending-client"]
        assert error in dev.mosquitto.values, error
    else:
        assert (error, told, opcodes[-1:], end) == (None, ("DISCONNECT", 0x94), [0x8], "eof")
