"""Full Sync failover, checked by a history checker (history.py): through HAProxy, ten
QoS 1 (then QoS 2) publishers and ten subscribers with persistent sessions on overlapping
topics run while the leader fails again and again: killed with SIGKILL twenty times (the
killed node restarted each time), stopped with SIGSTOP five times until another node
serves, cut off with iptables five times, and the whole cluster restarted twice.
Afterwards every acknowledged publish must have reached every matching subscriber (at
least once at QoS 1, exactly once at QoS 2), in each publisher's order, nothing
unpublished delivered, every reconnect finding its session, and the retained messages the
last acknowledged ones. Failover times are printed (`-s`)."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import threading
import time

import pytest

import cluster as c
import mqttraw as m
from conftest import require_tool
from history import History, check
from test_faults import Sampler, partition
from test_haproxy import HAPROXY

KILLS = 20
PAUSES = 5
PARTITIONS = 5
RESTARTS = 2
PUBLISHERS = 10
SUBSCRIBERS = 10
TOPICS = 5
PAUSE = 0.02  # between one publisher's messages: ~500 publishes/s in all


@contextlib.contextmanager
def haproxy(cl, tmp_path):
    binary = require_tool("haproxy")
    front = c.shared_ports(1, 4)[0]
    servers = "\n".join(f"    server node{n.i} {n.host}:{n.port} check inter 100ms fall 2 rise 1"
                        for n in cl.nodes)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(front=front, servers=servers))
    proxy = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
    try:
        c.wait_until("haproxy listening", lambda: c.accepts("127.0.0.4", front), 10)
        yield front
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


class Client(threading.Thread):
    """One MQTT client through HAProxy, reconnecting whenever its connection goes."""

    def __init__(self, name, front, version, stop):
        super().__init__(daemon=True, name=name)
        self.name_, self.front, self.version, self.stop = name, front, version, stop
        self.conn = None
        self.error = None

    def open(self, clean, expiry=0):
        props = {"session_expiry_interval": expiry} if (self.version == 5 and expiry) else None
        kw = {"properties": props} if props else {}
        while not self.stop.is_set():
            try:
                conn = m.RawClient("127.0.0.4", self.front, version=self.version,
                                   label=self.name_)
                ack = conn.connect(self.name_, username="app", password="pw-app",
                                   clean=clean, **kw)
                if ack["reason_code"] == 0:
                    self.conn = conn
                    return ack
                conn.close()
            except (OSError, AssertionError, m.Closed):
                pass
            time.sleep(0.05)
        return None

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(self):
        try:
            self.loop()
        except Exception as error:  # reported by the test, not lost in a thread
            self.error = error
        finally:
            self.drop()


class Publisher(Client):
    def __init__(self, i, front, qos, history, stop):
        super().__init__(f"p{i}", front, 5 if i % 2 else 4, stop)
        self.topic, self.qos, self.h = f"h/{i % TOPICS}", qos, history

    def publish(self, seq, topic, retain):
        pid = seq % 60000 + 1
        self.h.send(self.name_, seq, topic, retain)
        self.conn.publish(topic, f"{self.name_}:{seq}".encode(), qos=self.qos,
                          packet_id=pid, retain=retain)
        if self.qos == 1:
            ack = self.conn.expect("PUBACK", timeout=5, packet_id=pid)
            if ack["reason_code"] < 0x80:
                self.h.ack(self.name_, seq)
            return
        ack = self.conn.expect("PUBREC", timeout=5, packet_id=pid)
        if ack["reason_code"] >= 0x80:
            return
        self.h.ack(self.name_, seq)
        self.conn.send(m.pubrel(pid, version=self.version))
        self.conn.expect("PUBCOMP", timeout=5, packet_id=pid)

    def loop(self):
        seq = 0
        while not self.stop.is_set():
            if self.conn is None and self.open(clean=True) is None:
                return
            retain = seq % 10 == 9
            try:
                self.publish(seq, f"r/{self.name_}" if retain else self.topic, retain)
            except (OSError, AssertionError, m.Closed):
                self.drop()  # unacknowledged: it may or may not have been taken
            seq += 1
            time.sleep(PAUSE)


class Subscriber(Client):
    def __init__(self, j, front, qos, history, stop):
        super().__init__(f"s{j}", front, 5 if j % 2 else 4, stop)
        self.filters = [f"h/{j % TOPICS}", f"h/{(j + 1) % TOPICS}"]
        self.qos, self.h = qos, history
        self.pending: set[int] = set()  # QoS 2 ids received, PUBREL not yet seen
        self.ready = threading.Event()

    def subscribe(self):
        if self.version == 5:
            self.open(clean=True, expiry=3600)
        else:
            # A 3.1.1 persistent session starts empty only through a clean one first.
            self.open(clean=True)
            self.conn.disconnect()
            self.conn = None
            self.open(clean=False)
        ack = self.conn.subscribe(1, [(f, self.qos) for f in self.filters])
        assert ack["reason_codes"] == [self.qos] * len(self.filters), ack
        self.h.subscribed(self.name_, self.filters)

    def handle(self, p):
        if p["type"] == "PUBLISH":
            pub, seq = p["payload"].decode().split(":")
            pid = p.get("packet_id")
            if p["qos"] == 2:
                if pid not in self.pending:
                    self.pending.add(pid)
                    self.h.deliver(self.name_, pub, int(seq), p["topic"])
                self.conn.send(m.pubrec(pid, version=self.version))
            else:
                self.h.deliver(self.name_, pub, int(seq), p["topic"])
                if pid:
                    self.conn.send(m.puback(pid, version=self.version))
        elif p["type"] == "PUBREL":
            self.pending.discard(p["packet_id"])
            self.conn.send(m.pubcomp(p["packet_id"], version=self.version))

    def loop(self):
        self.subscribe()
        self.ready.set()
        while not self.stop.is_set():
            if self.conn is None:
                ack = self.open(clean=False, expiry=3600)
                if ack is None:
                    return
                self.h.reconnected(self.name_, ack["session_present"])
            try:
                p = self.conn.recv_packet(0.3)
                if p is not None:
                    self.handle(p)
            except (OSError, AssertionError, m.Closed):
                self.drop()


def retained_now(front, h):
    reader = m.RawClient("127.0.0.4", front, version=5, label="reader")
    assert reader.connect("reader", username="app", password="pw-app")["reason_code"] == 0
    reader.subscribe(1, [("r/#", 0)])
    while (p := reader.recv_packet(1.0)) is not None:
        if p["type"] == "PUBLISH":
            pub, seq = p["payload"].decode().split(":")
            h.retained_final[p["topic"]] = (pub, int(seq))
    reader.disconnect()


@pytest.mark.parametrize("qos", [1, 2])
def test_nothing_acknowledged_is_lost_across_twenty_leader_kills(cluster, tmp_path, qos):
    run_history(cluster, tmp_path, qos, KILLS, kill_leader)


@pytest.mark.parametrize("qos", [1, 2])
def test_nothing_acknowledged_is_lost_across_leader_pauses(cluster, tmp_path, qos):
    """The leader stopped (SIGSTOP) long enough for the others to elect a new one, then
    resumed: it finds a higher term, stops serving and discards what it applied but could
    not commit. Clients that HAProxy sent to it meanwhile (its kernel still accepts) hang,
    time out and reconnect; nothing they were told is done may be lost."""
    run_history(cluster, tmp_path, qos, PAUSES, pause_leader)


@pytest.mark.parametrize("qos", [1, 2])
def test_nothing_acknowledged_is_lost_across_leader_partitions(cluster, tmp_path, qos):
    """The leader cut off from the other nodes (iptables on the cluster port) until
    another node serves, then healed; meanwhile no two nodes' client listeners ever
    accept at once, sampled every 10 ms."""
    sampler = Sampler(cluster)
    run_history(cluster, tmp_path, qos, PARTITIONS, isolate_leader, sampler)
    assert len(sampler.samples) > 100, len(sampler.samples)
    both = [t for t, open_ in sampler.samples if len(open_) > 1]
    assert not both, f"{len(both)} of {len(sampler.samples)} samples found two nodes serving"


@pytest.mark.parametrize("qos", [1, 2])
def test_nothing_acknowledged_is_lost_across_whole_cluster_restarts(cluster, tmp_path, qos):
    """Every node stopped (SIGTERM), then all started again: sessions, queued messages and
    retained messages are the cluster's log's, and the clients carry on."""
    run_history(cluster, tmp_path, qos, RESTARTS, restart_cluster)


def isolate_leader(cl, leader) -> float:
    """Partition until another node serves and the old leader closed its listeners, a
    second more, then heal; the time until the other node served."""
    cut = time.monotonic()
    with partition(cl, leader):
        rest = [n for n in cl.nodes if n is not leader]
        c.wait_until("a new leader serving", lambda: _only_serving(rest), 15, 0.02)
        took = time.monotonic() - cut
        c.wait_until("the old leader closed", lambda: not leader.serving(), 5, 0.02)
        time.sleep(1.0)
    c.wait_until("the isolated node a follower again", lambda: _role(leader) == "follower",
                 15)
    return took


def restart_cluster(cl, leader) -> float:
    """SIGTERM to every node, then all started; the time until one served again."""
    stopped = time.monotonic()
    for node in cl.nodes:
        node.stop()
    for node in cl.nodes:
        node.start()
    c.wait_until("a leader serving", lambda: _only_serving(cl.nodes), 30, 0.02)
    took = time.monotonic() - stopped
    c.wait_until("every node in the cluster again",
                 lambda: all(_role(n) in ("leader", "follower") for n in cl.nodes), 15)
    return took


def kill_leader(cl, leader) -> float:
    """SIGKILL, then restart once another node serves; the time until it served."""
    killed = time.monotonic()
    leader.kill()
    rest = [n for n in cl.nodes if n is not leader]
    c.wait_until("a new leader serving", lambda: _only_serving(rest), 15, 0.02)
    took = time.monotonic() - killed
    leader.start()
    c.wait_until("the killed node a follower again",
                 lambda: leader.get_node().get("role") == "follower", 15)
    return took


def pause_leader(cl, leader) -> float:
    """SIGSTOP until another node serves and clients had a second with it, then SIGCONT;
    the time until the other node served."""
    paused = time.monotonic()
    leader.pause()
    try:
        rest = [n for n in cl.nodes if n is not leader]
        c.wait_until("a new leader serving", lambda: _only_serving(rest), 15, 0.02)
        took = time.monotonic() - paused
        time.sleep(1.0)
    finally:
        leader.resume()
    # An admin session opened while the resumed node still thought it led can be closed
    # when it steps down (its SUBACK waited for a commit that never came): ask again.
    c.wait_until("the paused node a follower again", lambda: _role(leader) == "follower", 15)
    return took


def run_history(cl, tmp_path, qos, faults, fault, sampler=None):
    """The load through HAProxy, `faults` times `fault(cl, leader)` on the serving leader,
    then the checker over the whole history. A `sampler` runs from the cluster's first
    leader serving to the end (before, the standalone nodes all serve)."""
    leader = cl.create(sync="full")
    c.make_app_user(leader)
    c.wait_until("only the leader serving", lambda: _only_serving(cl.nodes) is leader, 10)
    with sampler or contextlib.nullcontext():
        _load_and_faults(cl, tmp_path, qos, faults, fault)


def _load_and_faults(cl, tmp_path, qos, faults, fault):
    h = History(qos=qos)
    stop_pub, stop_sub = threading.Event(), threading.Event()
    times = []
    with haproxy(cl, tmp_path) as front:
        subs = [Subscriber(j, front, qos, h, stop_sub) for j in range(SUBSCRIBERS)]
        pubs = [Publisher(i, front, qos, h, stop_pub) for i in range(PUBLISHERS)]
        try:
            for s in subs:
                s.start()
            for s in subs:
                assert s.ready.wait(20), f"{s.name_} did not subscribe: {s.error}"
            for p in pubs:
                p.start()
            time.sleep(1)
            for _ in range(faults):
                leader = c.wait_until("one node serving",
                                      lambda: _only_serving(cl.nodes), 15, 0.02)
                times.append(fault(cl, leader))
                time.sleep(0.5)
            stop_pub.set()
            for p in pubs:
                p.join(timeout=20)
            # Up to 30 s for the last deliveries; what is still missing then is reported
            # by the checker below.
            deadline = time.monotonic() + 30
            while h.missing() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop_pub.set()
            stop_sub.set()
            for t in pubs + subs:
                t.join(timeout=20)
        errors = [f"{t.name_}: {t.error!r}" for t in pubs + subs if t.error]
        assert not errors, errors
        retained_now(front, h)
    problems = check(h)
    assert not problems, "\n".join(problems)
    delivered = sum(len(d) for d in h.deliveries.values())
    print(f"\nQoS {qos}: {len(h.sent)} publishes sent, {len(h.acked)} acknowledged, "
          f"{delivered} deliveries, {sum(len(r) for r in h.reconnects.values())} "
          f"subscriber reconnects; new leader serving after a fault: p50 "
          f"{statistics.median(times):.2f} s, max {max(times):.2f} s over {faults}")


def _role(node):
    try:
        return node.get_node().get("role")
    except (AssertionError, OSError, m.Closed):
        return None


def _only_serving(nodes):
    open_ = [n for n in nodes if n.alive() and n.serving()]
    return open_[0] if len(open_) == 1 else None
