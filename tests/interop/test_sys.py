"""$SYS topics as Mosquitto publishes them (ecosystem.md section 2.1).

Owns: the monitoring contract that exporters depend on: exact topic names
(including `$SYS/broker/retained messages/count` with its space), payload
formats (decimal counters, "N seconds", two-decimal load averages,
"<name> version <semver>"), retained on first receipt, live updates every
`sys_interval` with retain 0, and values that follow what clients do.
Called by: pytest, once per broker kind (sys_interval 1).
"""

from __future__ import annotations

import re
import time

import pytest

import mqttraw as m

LOADS = [f"$SYS/broker/load/{what}/{w}"
         for what in ("bytes/received", "bytes/sent", "connections", "messages/received",
                      "messages/sent", "publish/dropped", "publish/received", "publish/sent",
                      "sockets")
         for w in ("1min", "5min", "15min")]

COUNTERS = [
    "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent",
    "$SYS/broker/clients/active", "$SYS/broker/clients/connected",
    "$SYS/broker/clients/disconnected", "$SYS/broker/clients/expired",
    "$SYS/broker/clients/inactive", "$SYS/broker/clients/maximum", "$SYS/broker/clients/total",
    "$SYS/broker/heap/current", "$SYS/broker/heap/maximum",
    "$SYS/broker/messages/received", "$SYS/broker/messages/sent", "$SYS/broker/messages/stored",
    "$SYS/broker/publish/bytes/received", "$SYS/broker/publish/bytes/sent",
    "$SYS/broker/publish/messages/dropped", "$SYS/broker/publish/messages/received",
    "$SYS/broker/publish/messages/sent", "$SYS/broker/retained messages/count",
    "$SYS/broker/shared_subscriptions/count", "$SYS/broker/store/messages/bytes",
    "$SYS/broker/store/messages/count", "$SYS/broker/subscriptions/count",
]
# Exactly the set Debian's Mosquitto 2.0.11 publishes with sys_interval 1.
ALL_TOPICS = set(LOADS) | set(COUNTERS) | {"$SYS/broker/uptime", "$SYS/broker/version"}


def collect(c: m.RawClient, seconds: float) -> dict:
    """topic -> list of (retain, payload) in arrival order."""
    seen: dict = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        p = c.recv_packet(max(0.01, deadline - time.monotonic()))
        if p and p["type"] == "PUBLISH":
            seen.setdefault(p["topic"], []).append((p["retain"], p["payload"].decode()))
    return seen


@pytest.fixture
def sys_broker(start_broker, broker_kind):
    b = start_broker(broker_kind, ["sys_interval 1"])
    # one client connected before the subscriber, so that values such as
    # clients/maximum have been published (retained) by the time we look
    warm = m.RawClient(b.host, b.port, 4)
    warm.connect("warm-up")
    warm.subscribe(1, [("$SYS/broker/clients/maximum", 0)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        p = warm.recv_packet(deadline - time.monotonic())
        if p and p["type"] == "PUBLISH" and p["payload"] == b"1":
            break
    else:
        raise AssertionError("$SYS/broker/clients/maximum never reported the first client")
    warm.unsubscribe(2, ["$SYS/broker/clients/maximum"])
    yield b
    warm.close()


def test_sys_topic_names_formats_and_retain(sys_broker, broker_kind):
    c = m.RawClient(sys_broker.host, sys_broker.port, 4)
    c.connect("sys-reader")
    assert c.subscribe(1, [("$SYS/#", 0)])["reason_codes"] == [0]
    seen = collect(c, 2.5)
    assert set(seen) == ALL_TOPICS, (
        f"missing: {sorted(ALL_TOPICS - set(seen))}; unexpected: {sorted(set(seen) - ALL_TOPICS)}")
    for topic, values in seen.items():
        assert values[0][0] is True, f"{topic}: first receipt must be retained"
        for _retain, payload in values:
            if topic == "$SYS/broker/version":
                if broker_kind == "mosquitto":
                    assert payload == "mosquitto version 2.0.11"
                else:
                    assert re.fullmatch(r"[a-z][a-z0-9_-]* version \d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?",
                                        payload), payload
            elif topic == "$SYS/broker/uptime":
                assert re.fullmatch(r"\d+ seconds", payload), payload
            elif topic in LOADS:
                assert re.fullmatch(r"\d+\.\d\d", payload), (topic, payload)
            else:
                assert re.fullmatch(r"\d+", payload), (topic, payload)
    # live updates come every interval, not retained, and uptime grows
    ups = seen["$SYS/broker/uptime"]
    assert len(ups) >= 2 and all(r is False for r, _ in ups[1:])
    secs = [int(p.split()[0]) for _, p in ups]
    assert secs == sorted(secs) and secs[-1] > secs[0]
    assert len(seen["$SYS/broker/version"]) == 1, "version is published once"


def settle(c: m.RawClient, values: dict, ticks=2, timeout=6.0) -> dict:
    """Read $SYS updates into `values` until `ticks` live uptime updates
    have arrived: after that, the values reflect everything done before."""
    deadline = time.monotonic() + timeout
    while ticks and time.monotonic() < deadline:
        p = c.recv_packet(max(0.01, deadline - time.monotonic()))
        if p and p["type"] == "PUBLISH":
            values[p["topic"]] = p["payload"].decode()
            if p["topic"] == "$SYS/broker/uptime" and not p["retain"]:
                ticks -= 1
    assert ticks == 0, "no $SYS/broker/uptime updates every sys_interval"
    return dict(values)


def test_sys_values_follow_clients(sys_broker):
    c = m.RawClient(sys_broker.host, sys_broker.port, 4)
    c.connect("sys-watch")
    watched = ["$SYS/broker/clients/connected", "$SYS/broker/subscriptions/count",
               "$SYS/broker/retained messages/count", "$SYS/broker/uptime"]
    c.subscribe(1, [(t, 0) for t in watched])
    values: dict = {}
    base = settle(c, values)
    assert base["$SYS/broker/clients/connected"] == "2"   # warm-up + sys-watch
    extra = []
    for i in range(3):
        e = m.RawClient(sys_broker.host, sys_broker.port, 4)
        e.connect(f"extra-{i}")
        e.subscribe(1, [(f"sysv/{i}", 0)])
        extra.append(e)
    extra[0].publish("sysv/retained", b"r", qos=1, packet_id=1, retain=True)
    extra[0].expect("PUBACK")
    later = settle(c, values)
    assert later["$SYS/broker/clients/connected"] == "5"
    assert int(later["$SYS/broker/subscriptions/count"]) == \
        int(base["$SYS/broker/subscriptions/count"]) + 3
    assert int(later["$SYS/broker/retained messages/count"]) == \
        int(base["$SYS/broker/retained messages/count"]) + 1
    for e in extra:
        e.close()


def test_sys_not_writable_by_clients(sys_broker):
    c = m.RawClient(sys_broker.host, sys_broker.port, 4)
    c.connect("sys-writer")
    c.subscribe(1, [("$SYS/broker/version", 0)])
    first = c.expect("PUBLISH")
    c.publish("$SYS/broker/version", b"hacked", retain=True)
    c.expect_nothing(0.5)
    r = m.RawClient(sys_broker.host, sys_broker.port, 4)
    r.connect("sys-reader2")
    r.subscribe(1, [("$SYS/broker/version", 0)])
    assert r.expect("PUBLISH")["payload"] == first["payload"]


def test_messages_sent_counts_packets_of_every_type(sys_broker):
    """`$SYS/broker/messages/sent` counts every packet the broker sends (Mosquitto's
    `g_msgs_sent`), not only PUBLISH: 20 PINGRESPs move it by at least 20 while
    `publish/messages/sent` only moves by the $SYS publishes themselves."""
    c = m.RawClient(sys_broker.host, sys_broker.port, 4)
    c.connect("sys-sent")
    c.subscribe(1, [("$SYS/broker/messages/sent", 0), ("$SYS/broker/uptime", 0)])
    values: dict = {}
    before = int(settle(c, values)["$SYS/broker/messages/sent"])
    pinger = m.RawClient(sys_broker.host, sys_broker.port, 4)
    pinger.connect("pinger")
    for _ in range(20):
        pinger.send(m.pingreq())
        pinger.expect("PINGRESP")
    after = int(settle(c, values)["$SYS/broker/messages/sent"])
    # 20 PINGRESPs + 1 CONNACK, plus the $SYS publishes to `c` meanwhile.
    assert after - before >= 21, (before, after)
    pinger.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_version_is_published_at_start_before_any_client_subscribes(
        start_broker, broker_kind, threads):
    """`$SYS/broker/version` is published once, at start: a client that subscribes at once
    gets it as a retained message, never live (a 5.0 client asking for no retained
    messages gets nothing, and its SUBACK is the first thing it sees)."""
    b = start_broker(broker_kind, [f"threads {threads}"] if broker_kind == "culex" else [])
    c = m.RawClient(b.host, b.port, 5)
    c.connect("sys-early")
    assert c.subscribe(1, [("$SYS/broker/version", {"qos": 0, "retain_handling": 2})])[
        "reason_codes"] == [0]
    c.expect_nothing(0.6)  # past Culex's first 250 ms tick
    c.subscribe(2, [("$SYS/broker/version", {"qos": 0, "retain_handling": 0})])
    got = c.expect("PUBLISH")
    assert got["retain"] is True and got["payload"].decode().split(" version ")[0] in (
        "mosquitto", "culex")


STORE = ["$SYS/broker/store/messages/count", "$SYS/broker/store/messages/bytes",
         "$SYS/broker/messages/stored", "$SYS/broker/retained messages/count",
         "$SYS/broker/uptime"]
# Far larger than all the $SYS payloads together (a few hundred bytes, also retained and
# also in the store), so the workload's bytes stand out.
RETAINED_PAYLOAD = 10_000
QUEUED_PAYLOAD = 2_000
SYS_BYTES_MAX = 4096


def store_figures(values: dict) -> tuple[int, int, int]:
    """(messages held, their payload bytes, retained count) from $SYS values."""
    count = int(values["$SYS/broker/store/messages/count"])
    assert values["$SYS/broker/messages/stored"] == values["$SYS/broker/store/messages/count"]
    return (count, int(values["$SYS/broker/store/messages/bytes"]),
            int(values["$SYS/broker/retained messages/count"]))


def test_store_figures_hold_retained_and_queued_messages(sys_broker):
    """`store/messages/count` and `store/messages/bytes` are Mosquitto's message store:
    every message held (retained ones, the retained $SYS values among them, and those
    queued for an offline session), with its payload bytes."""
    b = sys_broker
    offline = m.RawClient(b.host, b.port, 4)
    offline.connect("store-offline", clean=False)
    assert offline.subscribe(1, [("store/q/#", 1)])["reason_codes"] == [1]
    offline.disconnect()
    watch = m.RawClient(b.host, b.port, 4)
    watch.connect("store-watch")
    watch.subscribe(1, [(t, 0) for t in STORE])
    values: dict = {}
    count, size, retained = store_figures(settle(watch, values))
    assert count == retained, "nothing queued yet: the store holds the retained messages"
    assert 0 < size <= SYS_BYTES_MAX, size

    pub = m.RawClient(b.host, b.port, 4)
    pub.connect("store-pub")
    for i in range(3):
        pub.publish(f"store/r/{i}", bytes([65 + i]) * RETAINED_PAYLOAD, qos=1,
                    packet_id=i + 1, retain=True)
        pub.expect("PUBACK")
    for i in range(5):
        pub.publish("store/q/x", bytes([97 + i]) * QUEUED_PAYLOAD, qos=1, packet_id=10 + i)
        pub.expect("PUBACK")
    pub.disconnect()
    workload = 3 * RETAINED_PAYLOAD + 5 * QUEUED_PAYLOAD
    count, size, retained_now = store_figures(settle(watch, values))
    assert retained_now == retained + 3
    assert count == retained_now + 5, "5 messages queued for the offline session"
    assert workload <= size <= workload + SYS_BYTES_MAX, (size, workload)

    # The session takes its messages: they leave the store, the retained ones stay.
    back = m.RawClient(b.host, b.port, 4)
    assert back.connect("store-offline", clean=False)["session_present"]
    for _ in range(5):
        p = back.expect("PUBLISH")
        back.send(m.puback(p["packet_id"]))
    count, size, retained_now = store_figures(settle(watch, values))
    assert count == retained_now == retained + 3
    assert 3 * RETAINED_PAYLOAD <= size <= 3 * RETAINED_PAYLOAD + SYS_BYTES_MAX, size
