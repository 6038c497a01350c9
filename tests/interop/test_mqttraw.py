"""Self-checks of the raw client's codec (no broker, no sockets): the other
tests trust these encoders to send exactly what their names say."""

from __future__ import annotations

import pytest

import mqttraw as m


@pytest.mark.parametrize("n,encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                                       (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"),
                                       (268_435_455, b"\xff\xff\xff\x7f")])
def test_varint_boundaries(n, encoded):
    assert m.varint(n) == encoded
    assert m._Reader(encoded).varint() == n


def test_publish_v5_round_trip_all_property_kinds():
    props = [("payload_format_indicator", 1), ("message_expiry_interval", 70000),
             ("topic_alias", 3), ("response_topic", "r/t"), ("correlation_data", b"\x00\xff"),
             ("user_property", ("k", "v")), ("user_property", ("k", "w")),
             ("content_type", "text/x")]
    raw = m.publish("a/b", b"pay", qos=2, retain=True, dup=True, packet_id=513,
                    properties=props, version=5)
    assert raw[0] == 0x3D
    body = raw[2:]
    assert raw[1] == len(body)
    p = m.decode(raw[0], body, 5)
    assert (p["topic"], p["packet_id"], p["payload"], p["qos"], p["dup"], p["retain"]) == \
        ("a/b", 513, b"pay", 2, True, True)
    assert p["properties"] == {
        "payload_format_indicator": 1, "message_expiry_interval": 70000, "topic_alias": 3,
        "response_topic": "r/t", "correlation_data": b"\x00\xff",
        "user_property": [("k", "v"), ("k", "w")], "content_type": "text/x"}


def test_connect_v311_layout():
    raw = m.connect("cid", version=4, clean=True, keepalive=60, username="u", password=b"p",
                    will={"topic": "w", "payload": b"x", "qos": 1, "retain": True})
    assert raw == (b"\x10" + bytes([len(raw) - 2]) + b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20
                   | 0x08 | 0x04 | 0x02]) + b"\x00\x3c" + b"\x00\x03cid" + b"\x00\x01w"
                   + b"\x00\x01x" + b"\x00\x01u" + b"\x00\x01p")


def test_connect_v31_and_v5_headers():
    assert m.connect("c", version=3)[2:10] == b"\x00\x06MQIsdp"
    v5 = m.connect("c", version=5, properties={"session_expiry_interval": 10})
    assert v5[2:9] == b"\x00\x04MQTT\x05" and v5[12:18] == b"\x05\x11\x00\x00\x00\x0a"


def test_ack_reason_code_omitted_means_success():
    assert m.decode(0x40, b"\x00\x07", 5)["reason_code"] == 0
    assert m.decode(0x40, b"\x00\x07\x10\x00", 5)["reason_code"] == 0x10
    assert m.puback(7, version=5) == b"\x40\x02\x00\x07"
    assert m.pubrel(7, 0x92, version=5) == b"\x62\x03\x00\x07\x92"


def test_decoder_rejects_what_a_server_must_not_send():
    with pytest.raises(m.DecodeError):
        m.decode(0x20, b"\x00\x00\x02\x7f\x00", 5)           # unknown property id
    with pytest.raises(m.DecodeError):
        m.decode(0x40, b"\x00\x01\x00\x00\x99", 4)           # trailing bytes
    dup = m.decode(0x20, b"\x00\x00\x06\x21\x00\x01\x21\x00\x02", 5)
    assert dup["properties"]["_duplicate"] == ["receive_maximum"]
