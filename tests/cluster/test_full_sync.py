"""Full Sync: persistent sessions, their subscriptions and queued messages, and retained
messages are the cluster's: after the leader dies, a client that reconnects to the new
leader finds its session (session present), its subscriptions, the messages queued for it
while it was away, and the retained messages."""

from __future__ import annotations

import time

import cluster as c
import mqttraw as m
from dynsec_helpers import login


def connect(node, client_id, clean, version=5):
    client = m.RawClient(node.host, node.port, version=version, label=client_id)
    kw = {}
    if version == 5 and not clean:
        kw["properties"] = {"session_expiry_interval": 3600}
    ack = client.connect(client_id, username="app", password="pw-app", clean=clean, **kw)
    return client, ack


def test_a_session_survives_the_leader(cluster):
    cl = cluster
    leader = cl.create(sync="full")
    c.make_app_user(leader)
    c.wait_until("the leader serving", leader.serving, 5)
    for version in (5, 4):
        sub, ack = connect(leader, f"sub-v{version}", clean=False, version=version)
        assert ack["reason_code"] == 0
        sub.subscribe(1, [("q/#", 1)])
        sub.disconnect()
    publisher, _ = connect(leader, "pub", clean=True)
    for n in range(5):
        publisher.publish(f"q/{n}", f"m{n}".encode(), qos=1, packet_id=n + 1)
        publisher.expect("PUBACK", packet_id=n + 1)
    publisher.publish("r/last", b"retained", qos=1, packet_id=9, retain=True)
    publisher.expect("PUBACK", packet_id=9)
    publisher.disconnect()
    # No waiting for the followers: what was acknowledged is committed by a majority.
    leader.kill()
    rest = [n for n in cl.nodes if n is not leader]
    new = c.wait_until("a new leader serving",
                       lambda: next((n for n in rest if n.serving()), None), 15, 0.02)
    for version in (5, 4):
        sub, ack = connect(new, f"sub-v{version}", clean=False, version=version)
        assert ack["reason_code"] == 0 and ack["session_present"], ack
        got = []
        for _ in range(5):
            p = sub.expect("PUBLISH", timeout=5)
            got.append(p["payload"].decode())
            sub.send(m.puback(p["packet_id"], version=version))
        assert got == [f"m{n}" for n in range(5)], got
        sub.disconnect()
    fresh, _ = connect(new, "reader", clean=True)
    fresh.subscribe(1, [("r/#", 0)])
    p = fresh.expect("PUBLISH", timeout=5)
    assert p["payload"] == b"retained" and p["retain"]
    fresh.disconnect()


def test_a_publish_is_acknowledged_only_once_a_majority_has_it(cluster):
    """With both followers stopped, the leader cannot commit: a QoS 1 publish gets no
    PUBACK, and the connection is closed when the leader stops serving. Every publish that
    was acknowledged reaches the persistent subscriber after a failover."""
    cl = cluster
    leader = cl.create(sync="full")
    c.make_app_user(leader)
    c.wait_until("the leader serving", leader.serving, 5)
    sub, _ = connect(leader, "sub", clean=False)
    sub.subscribe(1, [("q/#", 1)])
    sub.disconnect()
    publisher, _ = connect(leader, "pub", clean=True)
    publisher.publish("q/0", b"m0", qos=1, packet_id=1)
    publisher.expect("PUBACK", packet_id=1)
    acknowledged = {"m0"}

    followers = [n for n in cl.nodes if n is not leader]
    for node in followers:
        node.pause()
    try:
        publisher.publish("q/1", b"m1", qos=1, packet_id=2)
        state, _, packets = publisher.wait_closed(15)
        assert state == "closed", "the leader kept serving without a majority"
        assert not [p for p in packets if p["type"] == "PUBACK"], packets
    finally:
        for node in followers:
            node.resume()

    # The client sends again to whichever node serves now.
    serving = c.wait_until("a node serving",
                           lambda: next((n for n in cl.nodes if n.serving()), None), 15, 0.02)
    publisher, _ = connect(serving, "pub", clean=True)
    for n, payload in ((2, b"m1"), (3, b"m2")):
        publisher.publish(f"q/{n}", payload, qos=1, packet_id=n)
        publisher.expect("PUBACK", packet_id=n)
        acknowledged.add(payload.decode())
    publisher.disconnect()

    serving.kill()
    rest = [n for n in cl.nodes if n is not serving]
    new = c.wait_until("a new leader serving",
                       lambda: next((n for n in rest if n.serving()), None), 15, 0.02)
    sub, ack = connect(new, "sub", clean=False)
    assert ack["session_present"], ack
    got = set()
    deadline = time.monotonic() + 10
    while not acknowledged <= got and time.monotonic() < deadline:
        p = sub.expect("PUBLISH", timeout=max(0.1, deadline - time.monotonic()))
        got.add(p["payload"].decode())
        sub.send(m.puback(p["packet_id"]))
    assert acknowledged <= got, (acknowledged, got)
    sub.disconnect()
