"""The HTTP endpoint of a `protocol http_api` listener: `/metrics` in Prometheus text
format (parsed with the Prometheus client library's own parser), `/healthz`, `/readyz`.

Owns: what a Prometheus scraper and a load balancer's health check see. Values move as
clients connect and publish; names pass `promtool check metrics` (Debian package
`prometheus`); every figure `$SYS` also publishes agrees with it. Called by: pytest (Culex
only: Mosquitto 2.0.11 has no HTTP listener).
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request

import pytest

import mqttraw as m
from conftest import free_port, require_tool


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def scrape(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = scrape_text(port)
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """A sample's value; the parser reports counters with a `_total` suffix."""
    key = tuple(sorted(labels.items()))
    if (name, key) in samples:
        return samples[(name, key)]
    return samples[(name + "_total", key)]


def wait_for(port: int, check, timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


@pytest.fixture
def http_broker(start_broker, broker_kind):
    if broker_kind != "culex":
        pytest.skip("Mosquitto 2.0.11 has no HTTP listener")
    http_port = free_port()
    b = start_broker(broker_kind, [f"listener {http_port} 127.0.0.1", "protocol http_api",
                                   "sys_interval 1"])
    b.http_port = http_port
    return b


def store_workload(b) -> list:
    """Messages the broker must hold: 5 QoS 1 messages queued for an offline persistent
    session and 3 retained ones, plus a connected subscriber. Returns the clients that
    stay connected."""
    offline = m.RawClient(b.host, b.port, 4)
    offline.connect("metrics-offline", clean=False)
    assert offline.subscribe(1, [("held/q/#", 1)])["reason_codes"] == [1]
    offline.disconnect()
    online = m.RawClient(b.host, b.port, 5)
    online.connect("metrics-online")
    online.subscribe(1, [("held/other", 0)])
    pub = m.RawClient(b.host, b.port, 4)
    pub.connect("metrics-pub")
    for i in range(3):
        pub.publish(f"held/r/{i}", b"R" * (1000 + i), qos=1, packet_id=i + 1, retain=True)
        pub.expect("PUBACK")
    for i in range(5):
        pub.publish("held/q/x", b"Q" * (300 + i), qos=1, packet_id=10 + i)
        pub.expect("PUBACK")
    pub.disconnect()
    return [online]


def test_promtool_accepts_a_live_scrape(http_broker):
    """`promtool check metrics` (Prometheus' own linter) finds nothing to complain about
    in a scrape taken while the broker holds messages and serves clients."""
    promtool = require_tool("promtool")
    b = http_broker
    clients = store_workload(b)
    wait_for(b.http_port, lambda s: value(s, "broker_messages_stored") > 0)
    text = scrape_text(b.http_port)
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert (r.returncode, r.stdout + r.stderr) == (0, ""), text
    for c in clients:
        c.disconnect()


# The figures `$SYS` and `/metrics` both report, as (topic, metric, kind).
SHARED = [
    ("$SYS/broker/clients/connected", "broker_clients_connected", "gauge"),
    ("$SYS/broker/clients/total", "broker_clients", "gauge"),
    ("$SYS/broker/messages/stored", "broker_messages_stored", "gauge"),
    ("$SYS/broker/store/messages/count", "broker_messages_stored", "gauge"),
    ("$SYS/broker/store/messages/bytes", "broker_store_messages_bytes", "gauge"),
    ("$SYS/broker/subscriptions/count", "broker_subscriptions", "gauge"),
    ("$SYS/broker/retained messages/count", "broker_retained_messages", "gauge"),
    ("$SYS/broker/messages/received", "broker_messages_received_total", "counter"),
    ("$SYS/broker/messages/sent", "broker_messages_sent_total", "counter"),
]
UPTIME = "$SYS/broker/uptime"


class SysWatch:
    """A subscriber to the shared `$SYS` topics that knows where one publishing round
    ends: every round starts with a live `$SYS/broker/uptime`, computed from one reading
    of the counters before anything of the round is published."""

    def __init__(self, b):
        self.client = m.RawClient(b.host, b.port, 4)
        self.client.connect("sys-vs-metrics")
        topics = sorted({topic for topic, _, _ in SHARED} | {UPTIME})
        self.client.subscribe(1, [(t, 0) for t in topics])
        self.values: dict = {}

    def next_round(self, timeout=5.0) -> dict:
        """Waits for the next live uptime; returns the values as they stood before it
        (the previous round complete)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.client.recv_packet(max(0.01, deadline - time.monotonic()))
            if not p or p["type"] != "PUBLISH":
                continue
            if p["topic"] == UPTIME and not p["retain"]:
                before = dict(self.values)
                self.values[UPTIME] = p["payload"].decode()
                return before
            self.values[p["topic"]] = p["payload"].decode()
        raise AssertionError("no $SYS/broker/uptime update every sys_interval")


def compare(sys_values: dict, m1: dict, m2: dict) -> list[str]:
    """Disagreements between one $SYS round and scrapes taken before (m1) and after (m2)
    the round read the counters. With no client activity a gauge stands still between
    the previous round and this one's reading, so it must equal m1 (the `$SYS` values are
    retained messages themselves: publishing a round can change the bytes stored, which
    m2 then shows); counters must lie between the two scrapes."""
    problems = []
    for topic, metric, kind in SHARED:
        before, after = value(m1, metric), value(m2, metric)
        got = float(sys_values[topic])
        if kind == "gauge" and got != before:
            problems.append(f"{topic}={got:g} but {metric}={before:g} (then {after:g})")
        if kind == "counter" and not before <= got <= after:
            problems.append(f"{topic}={got:g} outside {metric} {before:g}..{after:g}")
    return problems


def test_metrics_and_sys_report_the_same_figures(http_broker):
    """After a workload that leaves messages in the store (queued for an offline
    persistent session, and retained), every figure both report agrees: clients,
    messages and bytes stored, subscriptions, retained messages, messages received and
    sent."""
    b = http_broker
    clients = store_workload(b)
    watch = SysWatch(b)
    deadline = time.monotonic() + 30
    problems = ["no complete round compared"]
    while problems and time.monotonic() < deadline:
        watch.next_round()
        m1 = scrape(b.http_port)    # before the next round reads the counters
        watch.next_round()
        m2 = scrape(b.http_port)    # after it did
        sys_values = watch.next_round()   # that round, complete
        problems = compare(sys_values, m1, m2)
    assert not problems, problems
    assert float(sys_values["$SYS/broker/store/messages/count"]) >= \
        float(sys_values["$SYS/broker/retained messages/count"]) + 5
    assert value(m1, "broker_store_messages_bytes") >= 3 * 1000 + 5 * 300
    for c in clients:
        c.disconnect()


def test_metrics_parse_and_follow_clients_and_publishes(http_broker):
    b = http_broker
    before = scrape(b.http_port)
    assert value(before, "broker_clients_connected") == 0
    assert ("broker_uptime_seconds", ()) in before
    listener = dict(listener="0", port=str(b.port), protocol="mqtt", tls="false")
    assert value(before, "culex_listener_connections", **listener) == 0
    clients = []
    for i in range(3):
        c = m.RawClient(b.host, b.port, 4)
        c.connect(f"metrics-{i}")
        clients.append(c)
    clients[0].subscribe(1, [("met/#", 1)])
    for n in range(5):
        clients[1].publish("met/x", b"12345", qos=1, packet_id=n + 1)
        clients[1].expect("PUBACK")
    for n in range(5):
        pk = clients[0].expect("PUBLISH")
        clients[0].send(m.puback(pk["packet_id"]))
    # Gauges that need a scan of the sessions are refreshed every 250 ms.
    after = wait_for(b.http_port, lambda s: value(s, "broker_publish_messages_received") >= 5
                     and value(s, "broker_subscriptions") >= 1
                     and value(s, "broker_clients") >= 3)
    assert value(after, "broker_clients_connected") == 3
    assert value(after, "broker_clients") == 3
    assert value(after, "culex_listener_connections", **listener) == 3
    assert value(after, "broker_publish_messages_received") - value(before, "broker_publish_messages_received") == 5
    assert value(after, "broker_publish_messages_sent") - value(before, "broker_publish_messages_sent") == 5
    assert value(after, "broker_publish_bytes_received") - value(before, "broker_publish_bytes_received") == 25
    assert value(after, "broker_subscriptions") == 1
    assert value(after, "broker_bytes_received") > value(before, "broker_bytes_received")
    assert value(after, "culex_publish_batch_seconds_count") >= 5
    for c in clients:
        c.disconnect()
    gone = wait_for(b.http_port, lambda s: value(s, "broker_clients_connected") == 0)
    assert value(gone, "broker_clients_connected") == 0
    assert value(gone, "culex_listener_connections", **listener) == 0


def test_health_and_readiness(http_broker):
    b = http_broker
    for path, status, body in (("/healthz", 200, b"ok\n"), ("/readyz", 200, b"ready\n")):
        with urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}{path}", timeout=5) as response:
            assert response.status == status
            assert response.read() == body
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}/nothing-here", timeout=5)
    assert missing.value.code == 404
    # The MQTT listener keeps serving next to it.
    c = m.RawClient(b.host, b.port, 5)
    assert c.connect("health-check")["reason_code"] == 0
