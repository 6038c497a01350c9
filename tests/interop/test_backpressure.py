"""Backpressure and slow consumers: a client that stops reading must not stall anyone else.

Owns: the user-visible side of Culex's outbound backpressure (`runtime/flush.rs`). A shard
whose consumers cannot take what it produces stops reading its clients for a while instead
of reading messages only to drop them; a consumer whose socket stays full is then treated
as a slow consumer (its QoS 0 messages are dropped past the soft maximum) so that it cannot
hold the others back. These tests check the second half from the outside, on both brokers:
with a subscriber that never reads, a publisher's QoS 1 stream still reaches a reading
subscriber completely and in order, and the broker keeps serving.

The same holds for QoS 1/2 queues (`shard/deliver.rs`, Culex only): a connected subscriber
whose queue grows past a high mark holds the publishers of its shard back until it has
acknowledged its way down, so a publisher faster than its subscriber is slowed instead of
its messages being dropped at `max_queued_messages` (Mosquitto drops them).
Called by: pytest.
"""

from __future__ import annotations

import socket
import threading
import time

import mqttraw as m
from pahoclient import Paho

MESSAGES = 3000
PAYLOAD = 4096
DEADLINE_S = 90


def stuck_subscriber(broker, filter_):
    """A raw client with a tiny receive buffer that subscribes, then never reads again."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((broker.host, broker.port))
    s.sendall(m.connect("stuck", version=4) + m.subscribe(1, [(filter_, 0)], version=4))
    got = b""
    while len(got) < 9:  # CONNACK (4) + SUBACK (5)
        chunk = s.recv(9 - len(got))
        assert chunk, "broker closed the stuck subscriber before SUBACK"
        got += chunk
    assert got[0] == 0x20 and got[3] == 0 and got[4] == 0x90, got
    return s


def config(kind):
    lines = ["max_queued_messages 100000"]
    if kind == "culex":
        lines.append("threads 2")
    return lines


def test_a_subscriber_that_never_reads_does_not_stall_the_others(start_broker, broker_kind):
    b = start_broker(broker_kind, config(broker_kind))
    stuck = stuck_subscriber(b, "bp/#")
    live = Paho(b, "live", protocol="3.1.1")
    publisher = Paho(b, "publisher", protocol="3.1.1")
    try:
        live.connect()
        assert live.subscribe("bp/x", qos=1) == [1]
        publisher.connect()
        infos = []
        payload = bytearray(PAYLOAD)
        for i in range(MESSAGES):
            payload[:8] = i.to_bytes(8, "big")
            infos.append(publisher.c.publish("bp/x", bytes(payload), qos=1))
        deadline = time.monotonic() + DEADLINE_S
        seen = []
        while len(seen) < MESSAGES:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(seen)} of {MESSAGES} reached the reading subscriber"
            msg = live.get(timeout=left)
            seen.append(int.from_bytes(msg.payload[:8], "big"))
        assert seen == list(range(MESSAGES)), "complete and in order"
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published()
        # The broker still serves new clients while the stuck one holds its buffers full.
        probe = m.RawClient(b.host, b.port)
        assert probe.connect("probe")["reason_code"] == 0
        probe.close()
        assert b.alive()
    finally:
        live.close()
        publisher.close()
        stuck.close()


def test_a_stuck_subscriber_does_not_stall_publishers_on_other_topics(start_broker, broker_kind):
    """QoS 0 traffic past a client that stopped reading: the other topic's subscriber gets
    every message while the stuck one's own messages pile up (and are dropped past the
    soft maximum)."""
    b = start_broker(broker_kind, config(broker_kind))
    stuck = stuck_subscriber(b, "flood/#")
    live = Paho(b, "live-other", protocol="3.1.1")
    flood = m.RawClient(b.host, b.port, label="flood")
    quiet = Paho(b, "quiet-publisher", protocol="3.1.1")
    stop = threading.Event()

    def flooding():
        chunk = b"".join(m.publish("flood/a", bytes(PAYLOAD)) for _ in range(64))
        while not stop.is_set() and flood.try_send(chunk):
            pass

    try:
        assert flood.connect("flood")["reason_code"] == 0
        live.connect()
        assert live.subscribe("other/t", qos=1) == [1]
        quiet.connect()
        flooder = threading.Thread(target=flooding, daemon=True)
        flooder.start()
        time.sleep(1.0)  # let the stuck subscriber's buffers fill
        for i in range(200):
            quiet.publish("other/t", str(i).encode(), qos=1)
        got = [int(live.get(timeout=DEADLINE_S).payload) for _ in range(200)]
        assert got == list(range(200))
        assert b.alive()
    finally:
        stop.set()
        flood.close()
        live.close()
        quiet.close()
        stuck.close()


QUEUED_MESSAGES = 5000


def test_a_slow_qos1_subscriber_slows_its_publisher_instead_of_losing_messages(start_broker):
    """Default `max_queued_messages` (1000): a raw publisher writes 5000 QoS 1 messages at
    once, the subscriber acknowledges at its own (slower) pace. Every message arrives, in
    order, and every publish is acknowledged; nothing is dropped at the queue limit."""
    b = start_broker("culex", ["threads 2"])
    sub = m.RawClient(b.host, b.port, label="slow-sub")
    publisher = m.RawClient(b.host, b.port, label="fast-pub")
    publisher.sock.settimeout(DEADLINE_S)
    pubacks = []

    def collect_pubacks():
        deadline = time.monotonic() + DEADLINE_S
        while len(pubacks) < QUEUED_MESSAGES and time.monotonic() < deadline:
            p = publisher.recv_packet(timeout=1.0)
            if p is not None and p["type"] == "PUBACK":
                pubacks.append(p["packet_id"])

    def blast():
        publisher.send(b"".join(
            m.publish("bp/q", i.to_bytes(8, "big"), qos=1, packet_id=1 + i % 65535)
            for i in range(QUEUED_MESSAGES)))

    try:
        assert sub.connect("slow-sub")["reason_code"] == 0
        assert sub.subscribe(1, [("bp/q", 1)])["reason_codes"] == [1]
        assert publisher.connect("fast-pub")["reason_code"] == 0
        acks = threading.Thread(target=collect_pubacks, daemon=True)
        acks.start()
        sender = threading.Thread(target=blast, daemon=True)
        sender.start()
        seen = []
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < QUEUED_MESSAGES:
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(seen)} of {QUEUED_MESSAGES} arrived"
            p = sub.recv_packet(timeout=min(left, 5.0))
            assert p is not None, f"delivery stopped after {len(seen)} messages, last {seen[-3:]}, gaps {[(a, b) for a, b in zip(seen, seen[1:]) if b != a + 1][:5]}, pubacks {len(pubacks)}"
            if p["type"] != "PUBLISH":
                continue
            seen.append(int.from_bytes(p["payload"], "big"))
            sub.send(m.puback(p["packet_id"]))
            if len(seen) % 50 == 0:
                time.sleep(0.002)  # a consumer slower than the publisher
        assert seen == list(range(QUEUED_MESSAGES)), "complete and in order"
        sender.join(DEADLINE_S)
        acks.join(DEADLINE_S)
        assert len(pubacks) == QUEUED_MESSAGES
        assert b.alive()
    finally:
        sub.close()
        publisher.close()
