"""Malformed-input corpus: bad bytes must close only the offending connection.

Owns: CASES, a table of (name, protocol, bytes, expected outcome). For each
case a fresh broker is started, a well-behaved "witness" client connects and
subscribes, then a second client (optionally after a valid CONNECT) sends
the bad bytes. The test records what the server did to the bad client
(DISCONNECT + reason code, CONNACK + code, plain close, a reply, or nothing)
and asserts:
  - Culex (and any non-Mosquitto kind): the outcome is one the spec allows
    (`spec`, a list of acceptable outcomes) and, where Mosquitto's recorded
    outcome is one of them, exactly Mosquitto's (a drop-in answers with the
    same bytes where the spec leaves the choice);
  - Mosquitto: the outcome is the one recorded for Mosquitto 2.0.11 (`mosq`);
    when `mosq` is not among `spec`, the case names a deviation in
    deviations.MOSQUITTO_DEVIATIONS;
  - on every kind: the witness still gets a QoS 1 round trip afterwards and
    the broker process is still running.

Outcome notation: CLOSE (closed, nothing sent), DISC(rc) (DISCONNECT then
close), CONNACK(rc) (CONNACK then close), OPEN (nothing sent, still open
after the observation window), REPLY(type, rc) (a reply, still open).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import pytest

import mqttraw as m
from conftest import Broker
from deviations import MOSQUITTO_DEVIATIONS

# -- outcomes ---------------------------------------------------------------

CLOSE = ("closed", ())
OPEN = ("open", ())


def DISC(rc):
    return ("closed", (("DISCONNECT", rc),))


def CONNACK(rc):
    return ("closed", (("CONNACK", rc),))


def REPLY(ptype, rc=None):
    return ("open", ((ptype, rc),))


def show_outcome(o) -> str:
    status, pkts = o
    if not pkts:
        return "CLOSE" if status == "closed" else "OPEN"
    body = ", ".join(f"{t}({rc if not isinstance(rc, int) else hex(rc)})" for t, rc in pkts)
    return body + (" +close" if status == "closed" else " +open")


# -- case table -------------------------------------------------------------

V31, V311, V5 = 3, 4, 5
P = m.packet


@dataclass
class Case:
    name: str
    version: int
    data: bytes | list            # bytes or a list of chunks to send
    spec: list                    # acceptable outcomes per the spec
    mosq: tuple                   # outcome recorded on Mosquitto 2.0.11
    connect: bool = True          # send a valid CONNECT first
    conf: list = field(default_factory=list)
    half_close: bool = False      # shutdown(SHUT_WR) after sending
    window: float = 1.0           # how long to watch the bad client
    mosq_window: float | None = None
    ignore: tuple = ()            # reply types left out of the outcome
    deviation: str | None = None
    note: str = ""


def conn(version=V311, **kw) -> bytes:
    return m.connect(kw.pop("client_id", "bad"), version=version, **kw)


def pub5(topic, payload=b"x", **kw) -> bytes:
    return m.publish(topic, payload, version=5, **kw)


def raw_connect(version, flags, tail=b"", name="MQTT", props=b"\x00", client_id=b"bad",
                header_flags=0) -> bytes:
    """CONNECT with arbitrary connect-flags and payload tail (after client id)."""
    var = m.utf8(name) + bytes([version, flags]) + m.u16(30)
    if version == 5:
        var += props
    return P(m.CONNECT, header_flags, var + m.utf8(client_id) + tail)


def connect5_props(props_block: bytes) -> bytes:
    return raw_connect(5, 0x02, props=props_block)


def publish5_props(props_block: bytes, topic=b"t", qos=0) -> bytes:
    body = m.utf8(topic) + (m.u16(1) if qos else b"") + props_block + b"x"
    return P(m.PUBLISH, qos << 1, body)


def sub_raw(version, packet_id, payload: bytes, flags=2, props=b"\x00") -> bytes:
    return P(m.SUBSCRIBE, flags, m.u16(packet_id) + (props if version == 5 else b"") + payload)


def prop(pid, value: bytes) -> bytes:
    return bytes([pid]) + value


def props(*items) -> bytes:
    body = b"".join(items)
    return m.varint(len(body)) + body


# Mosquitto 2.0.11 closes v5 connections on protocol errors without sending
# a DISCONNECT; these cases share that deviation.
NO_DISC = "v5-error-without-disconnect"

CASES = [
    # ---- framing ---------------------------------------------------------
    Case("remaining_length_5_bytes", V311, b"\x30\xff\xff\xff\xff\x01", [CLOSE], CLOSE),
    Case("remaining_length_5_bytes_v5", V5, b"\x30\xff\xff\xff\xff\x01", [DISC(0x81)], CLOSE,
         deviation=NO_DISC),
    Case("truncated_publish_then_close", V311, m.publish("t/x", b"payload", qos=1)[:-4],
         [CLOSE], CLOSE, half_close=True),
    Case("truncated_connect_then_close", V311, conn()[:-3], [CLOSE], CLOSE, connect=False,
         half_close=True),
    Case("truncated_fixed_header_then_close_v5", V5, b"\x30\x80", [CLOSE], CLOSE, half_close=True),
    Case("reserved_packet_type_0", V311, b"\x00\x00", [CLOSE], CLOSE),
    Case("reserved_packet_type_0_v5", V5, b"\x00\x00", [DISC(0x81), DISC(0x82)], DISC(0x82)),
    Case("client_sends_connack", V311, b"\x20\x02\x00\x00", [CLOSE], CLOSE),
    Case("client_sends_connack_v5", V5, b"\x20\x03\x00\x00\x00", [DISC(0x82), CLOSE], CLOSE,
         note="a CONNACK from a client is closed silently, as Mosquitto closes it"),
    Case("client_sends_suback_v5", V5, b"\x90\x04\x00\x01\x00\x00", [DISC(0x81), DISC(0x82)],
         OPEN, deviation="server-packet-from-client-ignored"),
    Case("client_sends_pingresp", V311, b"\xd0\x00", [CLOSE], OPEN,
         deviation="server-packet-from-client-ignored"),
    Case("auth_packet_in_v311", V311, b"\xf0\x00", [CLOSE], CLOSE),
    Case("publish_before_connect", V311, m.publish("t/x", b"x"), [CLOSE], CLOSE, connect=False),
    Case("publish_before_connect_v5", V5, pub5("t/x"), [CLOSE], CLOSE, connect=False),
    Case("subscribe_before_connect", V311, m.subscribe(1, [("#", 0)]), [CLOSE], CLOSE,
         connect=False),
    Case("second_connect", V311, conn(client_id="again"), [CLOSE], CLOSE),
    Case("second_connect_v5", V5, conn(V5, client_id="again"), [DISC(0x82), CLOSE], CLOSE,
         note="5.0 4.13.1: SHOULD send DISCONNECT; Mosquitto closes silently and clients "
              "written against it expect that, so Culex does the same here"),

    # ---- CONNECT ---------------------------------------------------------
    Case("wrong_protocol_name", V311, conn(protocol_name="MQTX"), [CLOSE, CONNACK(1)], CLOSE,
         connect=False),
    Case("wrong_protocol_name_v5", V5, conn(V5, protocol_name="MQTX"), [CLOSE, CONNACK(0x84)],
         CLOSE, connect=False),
    Case("wrong_protocol_level", V311, conn(protocol_level=7), [CONNACK(1)], CONNACK(1),
         connect=False),
    Case("wrong_protocol_level_v5_body", V5, conn(V5, protocol_level=7),
         [CONNACK(1), CONNACK(0x84), CLOSE], CONNACK(1), connect=False),
    Case("mqisdp_name_with_level_4", V311, conn(protocol_name="MQIsdp"), [CONNACK(1), CLOSE],
         CONNACK(1), connect=False),
    Case("connect_reserved_flag", V311, raw_connect(4, 0x03), [CLOSE], CLOSE, connect=False),
    Case("connect_reserved_flag_v5", V5, raw_connect(5, 0x03), [CLOSE, CONNACK(0x81)], CLOSE,
         connect=False),
    Case("connect_reserved_flag_v31", V31, raw_connect(3, 0x03, name="MQIsdp"),
         [CLOSE, REPLY("CONNACK", 0)], REPLY("CONNACK", 0), connect=False,
         note="MQTT 3.1 calls bit 0 unused and does not require the server to check it"),
    Case("connect_fixed_header_flags", V311, conn()[:0] + bytes([0x11]) + conn()[1:], [CLOSE],
         CLOSE, connect=False),
    Case("will_qos_without_will_flag", V311, raw_connect(4, 0x02 | 0x08), [CLOSE], CLOSE,
         connect=False),
    Case("will_retain_without_will_flag_v5", V5, raw_connect(5, 0x02 | 0x20),
         [CLOSE, CONNACK(0x81)], CLOSE, connect=False),
    Case("will_qos_3", V311, raw_connect(4, 0x02 | 0x04 | 0x18, m.utf8("w") + m.utf8("x")),
         [CLOSE], CLOSE, connect=False),
    Case("will_flag_without_will_fields", V311, raw_connect(4, 0x02 | 0x04), [CLOSE], CLOSE,
         connect=False),
    Case("password_without_username", V311, raw_connect(4, 0x02 | 0x40, m.utf8("pw")), [CLOSE],
         CLOSE, connect=False),
    Case("password_without_username_v5_is_valid", V5, raw_connect(5, 0x02 | 0x40, m.utf8("pw")),
         [REPLY("CONNACK", 0)], REPLY("CONNACK", 0), connect=False,
         note="5.0 allows a password without a user name; the broker must not reject it"),
    Case("client_id_invalid_utf8", V311, conn(client_id=b"\xff\xfe"), [CLOSE], CLOSE,
         connect=False),
    Case("client_id_invalid_utf8_v5", V5, conn(V5, client_id=b"\xc3\x28"),
         [CLOSE, CONNACK(0x81), CONNACK(0x85)], CLOSE, connect=False),
    Case("client_id_nul", V311, conn(client_id="a\x00b"), [CLOSE], CLOSE, connect=False),
    Case("client_id_utf16_surrogate", V311, conn(client_id=b"a\xed\xa0\x80"), [CLOSE], CLOSE,
         connect=False),
    Case("username_invalid_utf8", V311, conn(username=b"\xff"), [CLOSE], CLOSE, connect=False),
    Case("username_nul_v5", V5, conn(V5, username="u\x00"), [CLOSE, CONNACK(0x81)], CLOSE,
         connect=False),
    Case("username_overlong_utf8", V311, conn(username=b"\xc0\x80"), [CLOSE], CLOSE,
         connect=False),
    Case("will_topic_wildcard", V311, conn(will={"topic": "w/#", "payload": b"x"}), [CLOSE],
         CLOSE, connect=False),
    Case("will_topic_invalid_utf8_v5", V5, conn(V5, will={"topic": b"w\xff", "payload": b"x"}),
         [CLOSE, CONNACK(0x81)], CLOSE, connect=False),
    Case("connect_duplicate_property_v5", V5,
         connect5_props(props(prop(0x11, m.u32(5)), prop(0x11, m.u32(6)))),
         [CLOSE, CONNACK(0x82)], CLOSE, connect=False),
    Case("connect_property_not_allowed_v5", V5, connect5_props(props(prop(0x23, m.u16(1)))),
         [CLOSE, CONNACK(0x81), CONNACK(0x82)], CLOSE, connect=False),
    Case("connect_receive_maximum_0_v5", V5, connect5_props(props(prop(0x21, m.u16(0)))),
         [CLOSE, CONNACK(0x82)], CLOSE, connect=False),
    Case("connect_maximum_packet_size_0_v5", V5, connect5_props(props(prop(0x27, m.u32(0)))),
         [CLOSE, CONNACK(0x82)], CLOSE, connect=False),
    Case("connect_unknown_property_v5", V5, connect5_props(props(prop(0x7F, b"\x00"))),
         [CLOSE, CONNACK(0x81)], CLOSE, connect=False),
    Case("connect_property_length_overrun_v5", V5, connect5_props(b"\x20\x11\x00\x00\x00\x05"),
         [CLOSE, CONNACK(0x81)], CLOSE, connect=False),
    Case("connect_unsupported_auth_method_v5", V5,
         conn(V5, properties={"authentication_method": "SCRAM-SHA-1"}),
         [CONNACK(0x8C), CLOSE], CONNACK(0x8C), connect=False),
    Case("connect_request_problem_information_2_v5", V5, connect5_props(props(prop(0x17, b"\x02"))),
         [CLOSE, CONNACK(0x82)], CLOSE, connect=False),

    # ---- PUBLISH ---------------------------------------------------------
    Case("publish_topic_plus", V311, m.publish("a/+/c", b"x"), [CLOSE], CLOSE),
    Case("publish_topic_hash_v5", V5, pub5("a/#"), [DISC(0x90), DISC(0x81), DISC(0x82)], DISC(0x82)),
    Case("publish_topic_wildcard_v31", V31, m.publish("a/#", b"x"), [CLOSE], CLOSE),
    Case("publish_empty_topic", V311, m.publish("", b"x"), [CLOSE], CLOSE),
    Case("publish_empty_topic_no_alias_v5", V5, pub5(""), [DISC(0x82), DISC(0x90)], DISC(0x82)),
    Case("publish_qos3", V311, m.publish("t", b"x", flags=0x06, packet_id=1), [CLOSE], CLOSE),
    Case("publish_qos3_v5", V5, pub5("t", flags=0x06, packet_id=1), [DISC(0x81)], DISC(0x81)),
    Case("publish_dup_with_qos0", V311, m.publish("witness/dup", b"x", dup=True), [CLOSE, OPEN], OPEN, note="3.3.1-2: DUP MUST be 0 for QoS 0; receivers may reject or ignore"),
    Case("publish_packet_id_0", V311, m.publish("t", b"x", qos=1, packet_id=0), [CLOSE], CLOSE),
    Case("publish_packet_id_0_v5", V5, pub5("t", qos=1, packet_id=0), [DISC(0x81), DISC(0x82)], DISC(0x82)),
    Case("publish_topic_invalid_utf8", V311, m.publish(b"t/\xff", b"x"), [CLOSE], CLOSE),
    Case("publish_topic_invalid_utf8_v5", V5, pub5(b"t/\xc3"), [DISC(0x81)], DISC(0x81)),
    Case("publish_topic_nul_v5", V5, pub5("t/\x00"), [DISC(0x81)], DISC(0x81)),
    Case("publish_topic_length_overrun", V311, P(m.PUBLISH, 0, b"\x00\x10t/x"), [CLOSE], CLOSE),
    Case("publish_subscription_identifier_v5", V5, publish5_props(props(prop(0x0B, b"\x05"))),
         [DISC(0x82)], OPEN, deviation="publish-subscription-id-accepted"),
    Case("publish_duplicate_property_v5", V5,
         publish5_props(props(prop(0x02, m.u32(5)), prop(0x02, m.u32(6)))), [DISC(0x82)], CLOSE,
         deviation=NO_DISC),
    Case("publish_property_not_allowed_v5", V5, publish5_props(props(prop(0x11, m.u32(5)))),
         [DISC(0x81), DISC(0x82)], DISC(0x81)),
    Case("publish_property_length_overrun_v5", V5, publish5_props(b"\x09\x02\x00"),
         [DISC(0x81)], DISC(0x81)),
    Case("topic_alias_0_v5", V5, pub5("t", properties={"topic_alias": 0}), [DISC(0x94), DISC(0x81), DISC(0x82)], DISC(0x81)),
    Case("topic_alias_above_maximum_v5", V5, pub5("t", properties={"topic_alias": 11}),
         [DISC(0x94)], DISC(0x94)),
    Case("topic_alias_unknown_v5", V5, pub5("", properties={"topic_alias": 5}),
         [DISC(0x82), DISC(0x94)], DISC(0x82)),
    Case("publish_oversize", V311, m.publish("t", b"x" * 200), [CLOSE], CLOSE,
         conf=["max_packet_size 100"]),
    Case("publish_oversize_v5", V5, pub5("t", b"x" * 200), [DISC(0x95)], DISC(0x95),
         conf=["max_packet_size 100"]),
    Case("publish_qos_above_maximum_v5", V5, pub5("t", qos=2, packet_id=1), [DISC(0x9B)], DISC(0x9B), conf=["max_qos 1"]),
    Case("publish_retain_unavailable_v5", V5, pub5("t", retain=True), [DISC(0x9A)], DISC(0x9A),
         conf=["retain_available false"]),
    Case("receive_maximum_exceeded_v5", V5,
         b"".join(pub5("t/q2", qos=2, packet_id=i) for i in range(1, 22)),
         [DISC(0x93)], OPEN, ignore=("PUBREC",), deviation="receive-maximum-not-enforced"),

    # ---- acknowledgements ------------------------------------------------
    Case("puback_reserved_flags", V311, P(m.PUBACK, 1, m.u16(1)), [CLOSE], OPEN,
         deviation="fixed-header-not-validated"),
    Case("pubrec_reserved_flags_v5", V5, P(m.PUBREC, 1, m.u16(1)), [DISC(0x81)],
         REPLY("PUBREL", 0), deviation="fixed-header-not-validated"),
    Case("pubrel_flags_0", V311, P(m.PUBREL, 0, m.u16(1)), [CLOSE], CLOSE),
    Case("pubrel_flags_0_v5", V5, P(m.PUBREL, 0, m.u16(1)), [DISC(0x81)], CLOSE,
         deviation=NO_DISC),
    Case("pubcomp_reserved_flags_v5", V5, P(m.PUBCOMP, 1, m.u16(1)), [DISC(0x81)], OPEN,
         deviation="fixed-header-not-validated"),
    Case("puback_packet_id_0", V311, m.puback(0), [CLOSE, OPEN], CLOSE),
    Case("puback_too_short", V311, b"\x40\x01\x00", [CLOSE], CLOSE),
    Case("pubrel_unknown_packet_id_v5", V5, m.pubrel(42, version=5), [REPLY("PUBCOMP", 0x92), REPLY("PUBCOMP", 0)], REPLY("PUBCOMP", 0),
         note="0x92 (packet identifier not found) is the informative answer; 0 is tolerated"),

    # ---- SUBSCRIBE / UNSUBSCRIBE ----------------------------------------
    Case("subscribe_flags_0", V311, m.subscribe(1, [("a", 0)], flags=0), [CLOSE], CLOSE),
    Case("subscribe_flags_0_v5", V5, m.subscribe(1, [("a", 0)], version=5, flags=0),
         [DISC(0x81)], DISC(0x81)),
    Case("subscribe_no_filters", V311, sub_raw(4, 1, b""), [CLOSE], CLOSE),
    Case("subscribe_no_filters_v5", V5, sub_raw(5, 1, b""), [DISC(0x82)], DISC(0x81),
         deviation="malformed-instead-of-protocol-error"),
    Case("subscribe_packet_id_0", V311, m.subscribe(0, [("a", 0)]), [CLOSE], CLOSE),
    Case("subscribe_packet_id_0_v5", V5, m.subscribe(0, [("a", 0)], version=5),
         [DISC(0x81), DISC(0x82)], DISC(0x81)),
    Case("subscribe_qos3", V311, m.subscribe(1, [("a", 3)]), [CLOSE], CLOSE),
    Case("subscribe_reserved_bits_v311", V311, m.subscribe(1, [("a", 0x04)]), [CLOSE], CLOSE),
    Case("subscribe_reserved_option_bits_v5", V5, m.subscribe(1, [("a", 0xC0)], version=5),
         [DISC(0x81)], DISC(0x81)),
    Case("subscribe_retain_handling_3_v5", V5, m.subscribe(1, [("a", 0x30)], version=5),
         [DISC(0x81), DISC(0x82)], DISC(0x81)),
    Case("subscribe_options_qos3_v5", V5, m.subscribe(1, [("a", 0x03)], version=5),
         [DISC(0x81)], DISC(0x81)),
    Case("subscribe_invalid_filter", V311, m.subscribe(1, [("a/#/b", 0)]),
         [CLOSE, REPLY("SUBACK", (0x80,))], CLOSE),
    Case("subscribe_invalid_filter_v5", V5, m.subscribe(1, [("a/b#", 0)], version=5),
         [REPLY("SUBACK", (0x8F,)), DISC(0x8F), DISC(0x81)], DISC(0x81)),
    Case("subscribe_empty_filter_v5", V5, m.subscribe(1, [("", 0)], version=5),
         [REPLY("SUBACK", (0x8F,)), DISC(0x81), DISC(0x82)], DISC(0x81)),
    Case("subscribe_subscription_id_0_v5", V5,
         sub_raw(5, 1, m.utf8("a") + b"\x00", props=props(prop(0x0B, b"\x00"))),
         [DISC(0x82)], DISC(0x81), deviation="malformed-instead-of-protocol-error"),
    Case("subscribe_shared_no_local_v5", V5,
         m.subscribe(1, [("$share/g/a", {"no_local": True})], version=5), [DISC(0x82)],
         REPLY("SUBACK", (0,)), deviation="shared-no-local-accepted"),
    Case("subscribe_filter_invalid_utf8_v5", V5, sub_raw(5, 1, m.utf8(b"a\xff") + b"\x00"),
         [DISC(0x81)], DISC(0x81)),
    Case("unsubscribe_flags_0", V311, m.unsubscribe(1, ["a"], flags=0), [CLOSE], CLOSE),
    Case("unsubscribe_no_filters_v5", V5, P(m.UNSUBSCRIBE, 2, m.u16(1) + b"\x00"), [DISC(0x82)],
         DISC(0x81), deviation="malformed-instead-of-protocol-error"),
    Case("unsubscribe_packet_id_0", V311, m.unsubscribe(0, ["a"]), [CLOSE], CLOSE),

    # ---- PINGREQ / DISCONNECT / AUTH ------------------------------------
    Case("pingreq_reserved_flags", V311, m.pingreq(flags=1), [CLOSE], REPLY("PINGRESP"),
         deviation="fixed-header-not-validated"),
    Case("pingreq_with_body_v5", V5, b"\xc0\x01\x00", [DISC(0x81)], REPLY("PINGRESP"),
         deviation="fixed-header-not-validated"),
    Case("disconnect_reserved_flags", V311, m.disconnect(flags=1), [CLOSE], CLOSE),
    Case("disconnect_session_expiry_from_zero_v5", V5,
         m.disconnect(0, {"session_expiry_interval": 60}, version=5), [DISC(0x82), CLOSE], DISC(0x82)),
    Case("auth_without_auth_method_v5", V5, m.auth(0x18), [DISC(0x82)], CLOSE, deviation=NO_DISC),
    Case("auth_reserved_flags_v5", V5, m.auth(0x18, flags=1), [DISC(0x81), DISC(0x82)], CLOSE,
         deviation=NO_DISC),

    # ---- slow loris --------------------------------------------------------
    Case("slow_loris_partial_connect", V311, conn()[:6], [CLOSE], OPEN, connect=False,
         window=30.0, mosq_window=3.0, deviation="no-connect-timeout",
         note="a CONNECT that never completes must not hold the socket forever"),
]

CASE_IDS = [c.name for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS), "duplicate case names"


# -- observation ---------------------------------------------------------------


def summarise(p: dict):
    t = p["type"]
    if t == "SUBACK" or (t == "UNSUBACK" and "reason_codes" in p):
        return (t, tuple(p["reason_codes"]))
    if "reason_code" in p:
        return (t, p["reason_code"])
    return (t, None)


def observe(broker: Broker, case: Case, window: float) -> tuple:
    """Send the case's bytes and return its outcome (see module doc)."""
    bad = m.RawClient(broker.host, broker.port, version=case.version, label="bad")
    try:
        if case.connect:
            ack = bad.connect("bad-client", version=case.version)
            assert ack["reason_code"] == 0, m.show(ack)
        chunks = case.data if isinstance(case.data, list) else [case.data]
        for chunk in chunks:
            if not bad.try_send(chunk):
                break
        if case.half_close:
            try:
                bad.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        status, _disc, packets = bad.wait_closed(window)
        pkts = tuple(summarise(p) for p in packets if p["type"] not in case.ignore)
        return (status, pkts)
    finally:
        bad.close()


def witness_round_trip(broker: Broker, w: m.RawClient, n: int):
    w.publish("witness/check", f"alive {n}".encode(), qos=1, packet_id=100 + n)
    got = {}
    for _ in range(4):
        p = w.recv_packet(5)
        assert p is not None, "witness got no reply: the broker stopped serving others"
        got[p["type"]] = p
        if "PUBACK" in got and "PUBLISH" in got:
            break
    assert got["PUBLISH"]["payload"] == f"alive {n}".encode()
    w.send(m.puback(got["PUBLISH"]["packet_id"]))


def witness(broker: Broker) -> m.RawClient:
    w = m.RawClient(broker.host, broker.port, 4, label="witness")
    assert w.connect("witness")["reason_code"] == 0
    assert w.subscribe(1, [("witness/#", 1)])["reason_codes"] == [1]
    return w


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_malformed(case, broker_kind, start_broker):
    broker = start_broker(broker_kind, case.conf)
    w = witness(broker)
    witness_round_trip(broker, w, 1)
    is_mosq = broker_kind == "mosquitto"
    window = case.mosq_window if (is_mosq and case.mosq_window) else case.window
    outcome = observe(broker, case, window)
    # whatever the bad client caused (e.g. a DUP QoS 0 publish to witness/),
    # the witness must keep working
    for _ in range(3):
        p = w.recv_packet(0.2)
        if p is None:
            break
        if p["type"] == "PUBLISH" and p["qos"]:
            w.send(m.puback(p["packet_id"]))
    witness_round_trip(broker, w, 2)
    assert broker.alive(), f"{broker_kind} died:\n{broker.log()[-2000:]}"
    if is_mosq:
        assert outcome == case.mosq, (
            f"Mosquitto 2.0.11 was recorded as {show_outcome(case.mosq)}, now "
            f"{show_outcome(outcome)}")
    else:
        if case.mosq in case.spec:
            assert outcome == case.mosq, (
                f"{case.name}: got {show_outcome(outcome)}; Mosquitto 2.0.11 answers "
                f"{show_outcome(case.mosq)}, which the spec allows: a drop-in answers the same")
        assert outcome in case.spec, (
            f"{case.name}: got {show_outcome(outcome)}, spec allows "
            f"{[show_outcome(o) for o in case.spec]}")
    w.disconnect()


def test_corpus_and_deviation_list_agree():
    """A case whose Mosquitto outcome is outside the spec names a deviation;
    a case that names one really deviates; malformed deviations are used."""
    assert len(CASES) >= 60
    used = set()
    for c in CASES:
        deviates = c.mosq not in c.spec
        if deviates:
            assert c.deviation in MOSQUITTO_DEVIATIONS, f"{c.name}: deviates but names no deviation"
            used.add(c.deviation)
        else:
            assert c.deviation is None, f"{c.name}: names {c.deviation} but does not deviate"
    for key, dev in MOSQUITTO_DEVIATIONS.items():
        if dev.mosquitto == "malformed-corpus":
            assert key in used, f"{key} is listed but no case uses it"
