"""Culex's runtime, through real sockets: the io_uring and epoll drivers, one and several
shards, sessions living on another core than the one the kernel handed the connection to,
and start-up errors with Mosquitto's exit codes.

Owns: what the thread-per-core design must keep invisible to a client. With `threads 2`
every client id is owned by one of two shards; connections arriving on the other shard are
handed over after CONNECT, and publishes cross cores only where a subscriber lives.
Called by: pytest (Culex only; Mosquitto has neither setting).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import mqttraw as m
from conftest import broker_binary



@pytest.fixture(autouse=True)
def culex_only(broker_kind):
    if broker_kind != "culex":
        pytest.skip("Culex runtime settings; Mosquitto has no threads or io drivers")

DRIVERS = {"io_uring": None, "epoll": {"CULEX_EPOLL": "1"}}


@pytest.mark.parametrize("driver", list(DRIVERS))
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_every_pair_of_clients_talks_whatever_the_shards(start_broker, broker_kind, driver, threads):
    b = start_broker(broker_kind, [f"threads {threads}"], env=DRIVERS[driver])
    assert b.wait_log(f"running ({threads} shard", 5), b.log()
    subscribers = []
    for i in range(8):
        s = m.RawClient(b.host, b.port, 4 if i % 2 else 5)
        s.connect(f"rt-sub-{i}")
        s.subscribe(1, [(f"rt/{i}", 1), ("rt/all", 0)])
        subscribers.append(s)
    publishers = []
    for i in range(8):
        p = m.RawClient(b.host, b.port, 4)
        p.connect(f"rt-pub-{i}")
        publishers.append(p)
    for i, p in enumerate(publishers):
        p.publish(f"rt/{i}", f"to-{i}".encode(), qos=1, packet_id=1)
        p.expect("PUBACK")
    for i, s in enumerate(subscribers):
        pk = s.expect("PUBLISH")
        assert (pk["topic"], pk["payload"], pk["qos"]) == (f"rt/{i}", f"to-{i}".encode(), 1)
        s.send(m.puback(pk["packet_id"], version=s.version))
    publishers[0].publish("rt/all", b"everyone")
    for s in subscribers:
        assert s.expect("PUBLISH")["payload"] == b"everyone"
    # Large payloads cross cores by reference (small ones are copied); with 4 shards one
    # message has several target shards, the last of which takes the publisher's own.
    large = bytes(range(256)) * 20
    publishers[1].publish("rt/all", large)
    for s in subscribers:
        assert s.expect("PUBLISH")["payload"] == large


@pytest.mark.parametrize("threads", [1, 2])
def test_large_and_small_messages_arrive_in_order_through_early_writes(
        start_broker, broker_kind, threads):
    """A subscriber's bytes are written mid-turn once 16 KiB gather, else at the turn's
    end; either way every subscriber gets every message, in order per QoS (QoS 0 may pass
    QoS 1 messages queued behind the inflight window, as in Mosquitto)."""
    b = start_broker(broker_kind, [f"threads {threads}"])
    subscribers = []
    for i in range(4):
        s = m.RawClient(b.host, b.port, 4)
        s.connect(f"ew-sub-{i}")
        s.subscribe(1, [("ew/#", 1)])
        subscribers.append(s)
    p = m.RawClient(b.host, b.port, 4)
    p.connect("ew-pub")
    sent = []
    burst = b""
    for n in range(120):
        payload = (b"%03d" % n) * (3000 if n % 3 == 0 else 1)
        qos = n % 2
        burst += m.publish(f"ew/{n % 5}", payload, qos=qos, packet_id=n + 1 if qos else None)
        sent.append((qos, payload))
    p.send(burst)  # one write: the broker handles all of it in one or a few reads
    for s in subscribers:
        got = []
        while len(got) < len(sent):
            pk = s.expect("PUBLISH", timeout=10)
            got.append((pk["qos"], pk["payload"]))
            if pk["qos"]:
                s.send(m.puback(pk["packet_id"]))
        for qos in (0, 1):
            assert [x for x in got if x[0] == qos] == [x for x in sent if x[0] == qos]


@pytest.mark.parametrize("threads", [2])
def test_takeover_and_session_resume_across_handoffs(start_broker, broker_kind, threads):
    """The same client id always lands on its home shard, however often it reconnects."""
    b = start_broker(broker_kind, [f"threads {threads}"])
    first = m.RawClient(b.host, b.port, 5)
    first.connect("wanderer", clean=False, properties={"session_expiry_interval": 60})
    first.subscribe(1, [("wander/#", 1)])
    for attempt in range(6):
        again = m.RawClient(b.host, b.port, 5)
        ack = again.connect("wanderer", clean=False, properties={"session_expiry_interval": 60})
        assert ack["session_present"], f"attempt {attempt}"
        assert first.expect("DISCONNECT")["reason_code"] == 0x8E
        first = again
    p = m.RawClient(b.host, b.port, 4)
    p.connect("wander-pub")
    p.publish("wander/x", b"still subscribed", qos=1, packet_id=7)
    assert first.expect("PUBLISH")["payload"] == b"still subscribed"


def shard_cpus(pid: int) -> dict[str, set[int]]:
    """The CPUs each `culex-shard-N` thread of process `pid` may run on."""
    cpus = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        if name.startswith("culex-shard-"):
            cpus[name] = os.sched_getaffinity(int(task.name))
    return cpus


ALLOWED = sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize("setting", ["auto", "true", "false"])
@pytest.mark.parametrize("threads", sorted({1, len(ALLOWED)}))
def test_cpu_affinity_pins_one_shard_per_cpu(start_broker, broker_kind, setting, threads):
    lines = [f"threads {threads}"]
    if setting != "auto":
        lines.append(f"cpu_affinity {setting}")
    b = start_broker(broker_kind, lines)
    assert b.wait_log(f"running ({threads} shard", 5), b.log()
    pinned = setting == "true" or (setting == "auto" and 1 < threads == len(ALLOWED))
    expected = {f"culex-shard-{i}": {ALLOWED[i % len(ALLOWED)]} if pinned else set(ALLOWED)
                for i in range(threads)}
    assert shard_cpus(b.pid) == expected
    assert ("Shard threads pinned to CPUs" in b.log()) == pinned, b.log()
    # Pinned or not, every shard serves: clients on both land on one shard or the other.
    sub = m.RawClient(b.host, b.port, 4)
    sub.connect("aff-sub")
    sub.subscribe(1, [("aff/#", 0)])
    for i in range(4):
        p = m.RawClient(b.host, b.port, 4)
        p.connect(f"aff-pub-{i}")
        p.publish(f"aff/{i}", b"x")
        p.disconnect()
    assert sorted(sub.expect("PUBLISH")["topic"] for _ in range(4)) == [f"aff/{i}" for i in range(4)]


def run_culex(*args, timeout=10):
    return subprocess.run([broker_binary("culex"), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_unknown_option_stops_start_up_naming_file_and_line(tmp_path, broker_kind):
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 18999 127.0.0.1\nallow_anonymous true\nno_such_option 1\n")
    result = run_culex("-c", str(conf))
    assert result.returncode == 3
    assert 'Error: Unknown configuration variable "no_such_option".' in result.stderr
    assert f"Error found at {conf}:3." in result.stderr


def test_test_config_validates_without_starting(tmp_path, broker_kind):
    good = tmp_path / "good.conf"
    good.write_text("listener 18998 127.0.0.1\nallow_anonymous true\n")
    assert run_culex("-c", str(good), "--test-config").returncode == 0
    bad = tmp_path / "bad.conf"
    bad.write_text("max_keepalive 5\n")
    result = run_culex("-c", str(bad), "--test-config")
    assert result.returncode == 3 and "max_keepalive" in result.stderr


def test_port_in_use_exits_with_code_1(start_broker, broker_kind):
    b = start_broker("mosquitto")
    result = run_culex("-p", str(b.port))
    assert result.returncode == 1, result.stderr
    assert "in use" in result.stderr.lower()
