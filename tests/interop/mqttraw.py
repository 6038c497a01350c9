"""A small raw MQTT client for black-box broker tests.

Owns: byte-level encoders for every packet a client sends (MQTT 3.1, 3.1.1 and 5.0),
a decoder for everything a server sends (into plain dicts), and `RawClient`, a
blocking socket wrapper with bounded waits (`recv_packet`, `expect`,
`expect_nothing`, `expect_closed`).

Called by: the interop tests (test_differential.py, test_malformed.py, ...).

It is deliberately independent of paho-mqtt so that tests can send *any* bytes,
including invalid ones: every encoder returns `bytes`, and `RawClient.send()`
takes bytes, so a test can patch a valid packet before sending it.

Decoded packets are dicts such as
    {"type": "CONNACK", "flags": 0, "session_present": False,
     "reason_code": 0, "properties": {"receive_maximum": 20}}
Keys starting with "_" (e.g. "_raw") are diagnostics, not behaviour.
"""

from __future__ import annotations

import select
import socket
import struct
import time

# --------------------------------------------------------------------------
# Packet types
# --------------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15

TYPE_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
    6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
    11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}
TYPE_CODES = {v: k for k, v in TYPE_NAMES.items()}

# MQTT 5 properties: id -> (name, wire type)
PROPERTIES = {
    0x01: ("payload_format_indicator", "byte"),
    0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "utf8"),
    0x08: ("response_topic", "utf8"),
    0x09: ("correlation_data", "binary"),
    0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"),
    0x12: ("assigned_client_identifier", "utf8"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("authentication_method", "utf8"),
    0x16: ("authentication_data", "binary"),
    0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"),
    0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "utf8"),
    0x1C: ("server_reference", "utf8"),
    0x1F: ("reason_string", "utf8"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}
PROPERTY_IDS = {name: pid for pid, (name, _t) in PROPERTIES.items()}
# Properties that may legally appear more than once in one packet.
REPEATABLE = {"user_property", "subscription_identifier"}

# Common MQTT 5 reason codes (for readable assertions).
RC = {
    "success": 0x00, "granted_qos1": 0x01, "granted_qos2": 0x02,
    "disconnect_with_will": 0x04, "no_matching_subscribers": 0x10,
    "no_subscription_existed": 0x11, "unspecified": 0x80, "malformed": 0x81,
    "protocol_error": 0x82, "implementation_specific": 0x83,
    "unsupported_protocol_version": 0x84, "client_id_not_valid": 0x85,
    "bad_username_password": 0x86, "not_authorized": 0x87,
    "server_unavailable": 0x88, "server_busy": 0x89, "banned": 0x8A,
    "server_shutting_down": 0x8B, "bad_auth_method": 0x8C,
    "keep_alive_timeout": 0x8D, "session_taken_over": 0x8E,
    "topic_filter_invalid": 0x8F, "topic_name_invalid": 0x90,
    "packet_id_in_use": 0x91, "packet_id_not_found": 0x92,
    "receive_maximum_exceeded": 0x93, "topic_alias_invalid": 0x94,
    "packet_too_large": 0x95, "message_rate_too_high": 0x96,
    "quota_exceeded": 0x97, "administrative_action": 0x98,
    "payload_format_invalid": 0x99, "retain_not_supported": 0x9A,
    "qos_not_supported": 0x9B, "use_another_server": 0x9C,
    "server_moved": 0x9D, "shared_subscriptions_not_supported": 0x9E,
    "connection_rate_exceeded": 0x9F, "maximum_connect_time": 0xA0,
    "subscription_ids_not_supported": 0xA1,
    "wildcard_subscriptions_not_supported": 0xA2,
}

# --------------------------------------------------------------------------
# Primitive encoders
# --------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """Variable byte integer (1..4 bytes)."""
    if n < 0 or n > 268_435_455:
        raise ValueError("varint out of range")
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def u32(n: int) -> bytes:
    return struct.pack("!I", n)


def binary(b: bytes) -> bytes:
    """Two-byte length prefixed binary data."""
    return u16(len(b)) + b


def utf8(s) -> bytes:
    """Two-byte length prefixed string. `bytes` are sent as-is (for invalid UTF-8)."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return binary(s)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    """Fixed header + body."""
    return bytes([(ptype << 4) | (flags & 0x0F)]) + varint(len(body)) + body


def encode_properties(props) -> bytes:
    """Properties block (length varint + properties).

    `props` is None, a dict {name: value} or a list of (name, value) pairs (a
    list can repeat a property, which is how a test sends duplicates). For
    user_property in a dict, the value is a list of (key, value) pairs. A
    name may also be a raw int property id.
    """
    if props is None:
        return varint(0)
    items = []
    seq = props.items() if isinstance(props, dict) else props
    for name, value in seq:
        if name == "user_property" and isinstance(props, dict):
            items.extend(("user_property", kv) for kv in value)
        elif name == "subscription_identifier" and isinstance(value, list):
            items.extend(("subscription_identifier", v) for v in value)
        else:
            items.append((name, value))
    body = bytearray()
    for name, value in items:
        pid = name if isinstance(name, int) else PROPERTY_IDS[name]
        kind = PROPERTIES[pid][1] if pid in PROPERTIES else "raw"
        body += varint(pid)
        if kind == "byte":
            body.append(value)
        elif kind == "u16":
            body += u16(value)
        elif kind == "u32":
            body += u32(value)
        elif kind == "varint":
            body += varint(value)
        elif kind == "utf8":
            body += utf8(value)
        elif kind == "binary":
            body += binary(value)
        elif kind == "pair":
            body += utf8(value[0]) + utf8(value[1])
        else:  # unknown id: value is raw bytes
            body += value
    return varint(len(body)) + bytes(body)


# --------------------------------------------------------------------------
# Client packet encoders
# --------------------------------------------------------------------------

PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}


def connect(client_id="", version=4, clean=True, keepalive=60, username=None,
            password=None, will=None, properties=None, protocol_name=None,
            protocol_level=None, flags=None, reserved_flags=0) -> bytes:
    """CONNECT. version 3 = MQTT 3.1 (MQIsdp), 4 = 3.1.1, 5 = 5.0.

    will = {"topic", "payload", "qos", "retain", "properties"(v5)}.
    `flags` overrides the computed connect-flags byte entirely.
    """
    name = PROTOCOL_NAMES[version] if protocol_name is None else protocol_name
    level = version if protocol_level is None else protocol_level
    f = 0
    if clean:
        f |= 0x02
    payload = utf8(client_id)
    if will is not None:
        f |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == 5:
            payload += encode_properties(will.get("properties"))
        payload += utf8(will["topic"]) + binary(_b(will.get("payload", b"")))
    if username is not None:
        f |= 0x80
        payload += utf8(username)
    if password is not None:
        f |= 0x40
        payload += binary(_b(password))
    f |= reserved_flags & 0x01
    if flags is not None:
        f = flags
    var = utf8(name) + bytes([level, f]) + u16(keepalive)
    if version == 5:
        var += encode_properties(properties)
    return packet(CONNECT, 0, var + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None,
            properties=None, version=4, flags=None) -> bytes:
    f = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    if flags is not None:
        f = flags
    body = utf8(topic)
    if qos > 0 or packet_id is not None:
        body += u16(1 if packet_id is None else packet_id)
    if version == 5:
        body += encode_properties(properties)
    return packet(PUBLISH, f, body + _b(payload))


def _ack(ptype, flags, packet_id, reason_code, properties, version):
    body = u16(packet_id)
    if version == 5 and (reason_code or properties):
        body += bytes([reason_code])
        if properties:
            body += encode_properties(properties)
    return packet(ptype, flags, body)


def puback(packet_id, reason_code=0, properties=None, version=4):
    return _ack(PUBACK, 0, packet_id, reason_code, properties, version)


def pubrec(packet_id, reason_code=0, properties=None, version=4):
    return _ack(PUBREC, 0, packet_id, reason_code, properties, version)


def pubrel(packet_id, reason_code=0, properties=None, version=4):
    return _ack(PUBREL, 2, packet_id, reason_code, properties, version)


def pubcomp(packet_id, reason_code=0, properties=None, version=4):
    return _ack(PUBCOMP, 0, packet_id, reason_code, properties, version)


def subscribe(packet_id, filters, version=4, properties=None, flags=2) -> bytes:
    """filters: list of (topic_filter, options). For 3.x options is the QoS;
    for 5.0 it is either an int (the raw options byte) or a dict with keys
    qos, no_local, retain_as_published, retain_handling."""
    body = u16(packet_id)
    if version == 5:
        body += encode_properties(properties)
    for topic, opts in filters:
        if isinstance(opts, dict):
            opts = (opts.get("qos", 0)
                    | (0x04 if opts.get("no_local") else 0)
                    | (0x08 if opts.get("retain_as_published") else 0)
                    | (opts.get("retain_handling", 0) << 4))
        body += utf8(topic) + bytes([opts])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe(packet_id, topics, version=4, properties=None, flags=2) -> bytes:
    body = u16(packet_id)
    if version == 5:
        body += encode_properties(properties)
    for t in topics:
        body += utf8(t)
    return packet(UNSUBSCRIBE, flags, body)


def pingreq(flags=0) -> bytes:
    return packet(PINGREQ, flags, b"")


def disconnect(reason_code=0, properties=None, version=4, flags=0) -> bytes:
    if version == 5 and (reason_code or properties):
        body = bytes([reason_code])
        if properties:
            body += encode_properties(properties)
        return packet(DISCONNECT, flags, body)
    return packet(DISCONNECT, flags, b"")


def auth(reason_code=0x18, properties=None, flags=0) -> bytes:
    return packet(AUTH, flags, bytes([reason_code]) + encode_properties(properties))


def _b(x) -> bytes:
    return x.encode("utf-8") if isinstance(x, str) else bytes(x)


# --------------------------------------------------------------------------
# Decoder (server -> client packets)
# --------------------------------------------------------------------------


class DecodeError(Exception):
    """The server sent bytes that are not a valid MQTT packet."""


class _Reader:
    def __init__(self, data: bytes):
        self.d = data
        self.i = 0

    def left(self) -> int:
        return len(self.d) - self.i

    def take(self, n: int) -> bytes:
        if self.i + n > len(self.d):
            raise DecodeError("truncated")
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("!I", self.take(4))[0]

    def varint(self) -> int:
        mult, value = 1, 0
        for _ in range(4):
            b = self.byte()
            value += (b & 0x7F) * mult
            if not b & 0x80:
                return value
            mult *= 128
        raise DecodeError("varint longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def utf8(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError("server sent invalid UTF-8") from e


def decode_properties(r: _Reader) -> dict:
    length = r.varint()
    sub = _Reader(r.take(length))
    props: dict = {}
    while sub.left():
        pid = sub.varint()
        if pid not in PROPERTIES:
            raise DecodeError(f"unknown property id {pid:#x}")
        name, kind = PROPERTIES[pid]
        value = {
            "byte": sub.byte, "u16": sub.u16, "u32": sub.u32, "varint": sub.varint,
            "utf8": sub.utf8, "binary": sub.binary,
            "pair": lambda: (sub.utf8(), sub.utf8()),
        }[kind]()
        if name in REPEATABLE:
            props.setdefault(name, []).append(value)
        else:
            if name in props:
                props.setdefault("_duplicate", []).append(name)
            props[name] = value
    return props


def decode(first: int, body: bytes, version: int) -> dict:
    """Decode one server->client packet (fixed header byte + body)."""
    ptype, flags = first >> 4, first & 0x0F
    r = _Reader(body)
    p = {"type": TYPE_NAMES.get(ptype, f"TYPE{ptype}"), "flags": flags}
    v5 = version == 5
    if ptype == CONNACK:
        ack_flags = r.byte()
        p["session_present"] = bool(ack_flags & 1)
        p["reason_code"] = r.byte()
        if v5 and r.left():
            p["properties"] = decode_properties(r)
    elif ptype == PUBLISH:
        p["dup"] = bool(flags & 8)
        p["qos"] = (flags >> 1) & 3
        p["retain"] = bool(flags & 1)
        p["topic"] = r.utf8()
        if p["qos"]:
            p["packet_id"] = r.u16()
        if v5:
            p["properties"] = decode_properties(r)
        p["payload"] = r.take(r.left())
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p["packet_id"] = r.u16()
        p["reason_code"] = r.byte() if (v5 and r.left()) else 0
        if v5 and r.left():
            p["properties"] = decode_properties(r)
    elif ptype == SUBACK:
        p["packet_id"] = r.u16()
        if v5:
            p["properties"] = decode_properties(r)
        p["reason_codes"] = list(r.take(r.left()))
    elif ptype == UNSUBACK:
        p["packet_id"] = r.u16()
        if v5:
            p["properties"] = decode_properties(r)
            p["reason_codes"] = list(r.take(r.left()))
    elif ptype == PINGRESP:
        pass
    elif ptype == DISCONNECT:
        p["reason_code"] = r.byte() if r.left() else 0
        if r.left():
            p["properties"] = decode_properties(r)
    elif ptype == AUTH:
        p["reason_code"] = r.byte() if r.left() else 0
        if r.left():
            p["properties"] = decode_properties(r)
    else:
        raise DecodeError(f"server sent packet type {ptype}")
    if r.left():
        raise DecodeError(f"{p['type']}: {r.left()} trailing bytes")
    if v5 and "properties" not in p and ptype in (CONNACK, PUBACK, PUBREC, PUBREL,
                                                  PUBCOMP, DISCONNECT, AUTH):
        p["properties"] = {}
    p["_raw"] = bytes([first]) + varint(len(body)) + body
    return p


# --------------------------------------------------------------------------
# Socket client
# --------------------------------------------------------------------------


class Closed(Exception):
    """The server closed the connection."""


class RawClient:
    """One TCP connection speaking raw MQTT. All waits are bounded.

    `version` selects how server packets are decoded; `connect_packet()`
    sets it from the CONNECT it sends. `on_packet` (optional) is called with
    every decoded packet (used by the differential transcript recorder).
    """

    def __init__(self, host, port, version=4, timeout=5.0, on_packet=None, label=""):
        self.version = version
        self.label = label
        self.on_packet = on_packet
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    # -- sending ---------------------------------------------------------
    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.closed = True
            raise Closed(str(e)) from e

    def try_send(self, data: bytes) -> bool:
        """Send, returning False instead of raising if the server has gone."""
        try:
            self.send(data)
            return True
        except (Closed, OSError):
            return False

    def connect(self, client_id="", version=None, **kw) -> dict:
        """Send CONNECT and return the CONNACK (any reason code)."""
        if version is not None:
            self.version = version
        self.send(connect(client_id, version=self.version, **kw))
        return self.expect("CONNACK")

    def publish(self, topic, payload=b"", **kw):
        self.send(publish(topic, payload, version=self.version, **kw))

    def subscribe(self, packet_id, filters, **kw) -> dict:
        self.send(subscribe(packet_id, filters, version=self.version, **kw))
        return self.expect("SUBACK")

    def unsubscribe(self, packet_id, topics, **kw) -> dict:
        self.send(unsubscribe(packet_id, topics, version=self.version, **kw))
        return self.expect("UNSUBACK")

    def disconnect(self, reason_code=0, properties=None, linger=2.0):
        """Send DISCONNECT and wait (up to `linger` s) for the server to close.

        Waiting makes the disconnect ordered before whatever the test does
        next: a message published right after must find the session offline
        (queued), not still connected (sent, then redelivered with DUP).
        Bytes arriving meanwhile are dropped unparsed, so they are not
        recorded in transcripts."""
        if self.try_send(disconnect(reason_code, properties, version=self.version)):
            deadline = time.monotonic() + linger
            while (remaining := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([self.sock], [], [], remaining)
                if not ready:
                    break
                try:
                    if not self.sock.recv(65536):
                        break
                except OSError:
                    break
        self.close()

    # -- receiving -------------------------------------------------------
    def _parse_one(self):
        """Return one packet from the buffer or None if incomplete."""
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            i += 1
            if not b & 0x80:
                break
            mult *= 128
            if i > 4:
                raise DecodeError("server sent a remaining length over 4 bytes")
        if len(self.buf) < i + length:
            return None
        first, body = self.buf[0], self.buf[i:i + length]
        self.buf = self.buf[i + length:]
        p = decode(first, body, self.version)
        if self.on_packet:
            self.on_packet(self, p)
        return p

    def recv_packet(self, timeout=5.0):
        """Next packet, or None after `timeout` seconds. Raises Closed on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._parse_one()
            if p is not None:
                return p
            if self.closed:
                raise Closed("connection closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                self.closed = True
                p = self._parse_one()
                if p is not None:
                    return p
                raise Closed("connection closed")
            self.buf += data

    def expect(self, ptype: str, timeout=5.0, **fields) -> dict:
        """The next packet must be of `ptype` (and match `fields`)."""
        try:
            p = self.recv_packet(timeout)
        except Closed:
            raise AssertionError(f"[{self.label}] expected {ptype}, connection closed")
        if p is None:
            raise AssertionError(f"[{self.label}] expected {ptype}, nothing in {timeout}s")
        if p["type"] != ptype:
            raise AssertionError(f"[{self.label}] expected {ptype}, got {show(p)}")
        for k, v in fields.items():
            if p.get(k) != v:
                raise AssertionError(f"[{self.label}] {ptype}.{k}: expected {v!r}, got {show(p)}")
        return p

    def expect_nothing(self, duration=0.4) -> None:
        """No packet and no close for `duration` seconds."""
        try:
            p = self.recv_packet(duration)
        except Closed:
            raise AssertionError(f"[{self.label}] expected nothing, connection closed")
        if p is not None:
            raise AssertionError(f"[{self.label}] expected nothing, got {show(p)}")

    def expect_closed(self, timeout=5.0):
        """The server must close the connection within `timeout`.

        Returns the DISCONNECT packet if one arrived before the close, else
        None. Any other packet before the close fails the assertion."""
        disc = None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"[{self.label}] connection still open after {timeout}s")
            try:
                p = self.recv_packet(remaining)
            except Closed:
                return disc
            if p is None:
                raise AssertionError(f"[{self.label}] connection still open after {timeout}s")
            if p["type"] == "DISCONNECT" and disc is None:
                disc = p
            else:
                raise AssertionError(f"[{self.label}] expected close, got {show(p)}")

    def wait_closed(self, timeout):
        """Like expect_closed but returns ("closed", disconnect_or_None, packets)
        or ("open", None, packets) instead of asserting: for recording."""
        packets = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "open", None, packets
            try:
                p = self.recv_packet(remaining)
            except Closed:
                disc = next((q for q in packets if q["type"] == "DISCONNECT"), None)
                return "closed", disc, packets
            except DecodeError as e:
                packets.append({"type": "UNDECODABLE", "error": str(e)})
                continue
            if p is None:
                return "open", None, packets
            packets.append(p)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def show(p) -> str:
    """Compact one-line rendering of a decoded packet (no raw bytes)."""
    if p is None:
        return "None"
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in p.items() if not k.startswith("_")) + "}"
