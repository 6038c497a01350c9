"""Full Sync: persistent sessions, their subscriptions and queued messages, and retained
messages are the cluster's: after the leader dies, a client that reconnects to the new
leader finds its session (session present), its subscriptions, the messages queued for it
while it was away, and the retained messages."""

from __future__ import annotations

import json
import os
import subprocess
import time

import cluster as c
import mqttraw as m
from conftest import REPO, missing
from dynsec_helpers import login

# replication/src/core/raft_node.rs
SNAPSHOT_EVERY = 5000
KEPT_BEHIND_SNAPSHOT = 1000


def connect(node, client_id, clean, version=5):
    client = m.RawClient(node.host, node.port, version=version, label=client_id)
    kw = {}
    if version == 5 and not clean:
        kw["properties"] = {"session_expiry_interval": 3600}
    ack = client.connect(client_id, username="app", password="pw-app", clean=clean, **kw)
    return client, ack


def full_sync_leader(cl):
    """A Full Sync cluster of `cl`'s nodes with user `app`; its leader, once it serves."""
    leader = cl.create(sync="full")
    c.make_app_user(leader)
    c.wait_until("the leader serving", leader.serving, 5)
    return leader


def park_subscriber(node, client_id, topic_filter):
    """A persistent QoS 1 subscription of `client_id` on `node`, its client then gone:
    what matches is queued for it."""
    client, _ = connect(node, client_id, clean=False)
    client.subscribe(1, [(topic_filter, 1)])
    client.disconnect()


def test_a_session_survives_the_leader(cluster):
    cl = cluster
    leader = full_sync_leader(cl)
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
    leader = full_sync_leader(cl)
    park_subscriber(leader, "sub", "q/#")
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


def culex_perf() -> str:
    path = os.environ.get("CULEX_PERF_BIN") or str(REPO / "target" / "debug" / "culex-perf")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        missing(f"culex-perf at {path} (cargo build -p perf, or set CULEX_PERF_BIN)")
    return path


def qos1_load(node, seconds, out) -> int:
    """`culex-perf run --scenario qos1 --persistent` through `node` for `seconds`: 20
    persistent pairs logged in as `app`. Returns the publishes acknowledged. A run the
    harness calls invalid counts too when its only fault is connections the node closed
    (a loaded machine can delay heartbeats until the leader's lease lapses: it then
    closes its listeners, and the caller goes on with whichever node serves)."""
    run = subprocess.run(
        [culex_perf(), "run", "--scenario", "qos1", "--persistent", "--host",
         f"{node.host}:{node.port}", "--username", "app", "--password", "pw-app",
         "--clients", "20", "--window", "32", "--duration", str(seconds), "--warmup", "1",
         "--threads", "1", "--settle-timeout", "20", "--json", str(out)],
        capture_output=True, text=True, timeout=seconds + 120)
    assert out.exists(), run.stdout + run.stderr
    result = json.loads(out.read_text().splitlines()[-1])
    closed = all("closed the connection" in e or "never acknowledged" in e
                 or "clients failed" in e for e in result["invalid"] + result["errors"])
    assert result["valid"] or closed, run.stdout + run.stderr
    assert result["missing"] == 0 and result["foreign"] == 0, result
    return result["confirmed_total"]


def test_a_follower_away_for_100000_session_changes_catches_up_and_then_leads(cluster,
                                                                              tmp_path):
    """A follower stopped while persistent QoS 1 sessions change at least 100,000 times
    (each acknowledged publish to a persistent subscriber changes its session at least
    twice: in flight, then acknowledged) and the log moves past a snapshot, is started,
    catches up by snapshot, and after `setLeader` to it serves what was committed while it
    was away: a persistent session with its queued messages, and a retained message."""
    cl = cluster
    leader = full_sync_leader(cl)
    away = [n for n in cl.nodes if n is not leader][0]
    park_subscriber(leader, "keeper", "k/#")
    publisher, _ = connect(leader, "pub", clean=True)
    publisher.publish("k/0", b"m0", qos=1, packet_id=1)
    publisher.expect("PUBACK", packet_id=1)
    publisher.disconnect()
    away.stop()
    start_index = leader.get_node()["appliedIndex"]
    acknowledged, runs = 0, 0
    # Past a snapshot and the entries kept behind it, so the follower cannot be sent
    # entries alone.
    needed = SNAPSHOT_EVERY + KEPT_BEHIND_SNAPSHOT + 500
    rest = [n for n in cl.nodes if n is not away]
    while acknowledged < 50_000 or leader.get_node()["appliedIndex"] - start_index < needed:
        assert runs < 8, (acknowledged, leader.get_node()["appliedIndex"] - start_index)
        leader = c.wait_until("a node serving",
                              lambda: next((n for n in rest if n.serving()), None), 15, 0.05)
        acknowledged += qos1_load(leader, 10, tmp_path / f"load{runs}.jsonl")
        runs += 1
    leader = c.wait_until("a node serving",
                          lambda: next((n for n in rest if n.serving()), None), 15, 0.05)
    publisher, _ = connect(leader, "pub", clean=True)
    publisher.publish("k/1", b"m1", qos=1, packet_id=2)
    publisher.expect("PUBACK", packet_id=2)
    publisher.publish("r/away", b"while-away", qos=1, packet_id=3, retain=True)
    publisher.expect("PUBACK", packet_id=3)
    publisher.disconnect()
    committed = leader.get_node()["appliedIndex"]

    away.start()
    c.wait_until("the snapshot installed", lambda: "installed a snapshot" in away.log(), 60)
    c.wait_until("the follower caught up",
                 lambda: (away.get_node().get("appliedIndex") or 0) >= committed, 30)
    leader.ha_ok("setLeader", nodeid=away.id)
    c.wait_until("the caught-up node serving alone",
                 lambda: [n.i for n in cl.nodes if n.serving()] == [away.i], 15, 0.05)
    keeper, ack = connect(away, "keeper", clean=False)
    assert ack["reason_code"] == 0 and ack["session_present"], ack
    got = []
    for _ in range(2):
        p = keeper.expect("PUBLISH", timeout=5)
        got.append(p["payload"].decode())
        keeper.send(m.puback(p["packet_id"]))
    assert got == ["m0", "m1"], got
    keeper.subscribe(2, [("r/#", 0)])
    p = keeper.expect("PUBLISH", timeout=5)
    assert p["payload"] == b"while-away" and p["retain"], p
    keeper.disconnect()
    print(f"\n{acknowledged} publishes acknowledged in {runs} runs of 10 s, "
          f"{committed - start_index} entries committed while the follower was away")
