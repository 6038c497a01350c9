"""The HTTP endpoint of a `protocol http_api` listener: `/metrics` in Prometheus text
format (parsed with the Prometheus client library's own parser), `/healthz`, `/readyz`.

Owns: what a Prometheus scraper and a load balancer's health check see. Values move as
clients connect and publish; metric names follow the Mosquitto exporter's `$SYS`-derived
names. Called by: pytest (Culex only: Mosquitto 2.0.11 has no HTTP listener).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

import mqttraw as m
from conftest import free_port




def scrape(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
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
    b = start_broker(broker_kind, [f"listener {http_port} 127.0.0.1", "protocol http_api"])
    b.http_port = http_port
    return b


def test_metrics_parse_and_follow_clients_and_publishes(http_broker):
    b = http_broker
    before = scrape(b.http_port)
    assert value(before, "broker_clients_connected") == 0
    assert ("broker_uptime", ()) in before
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
                     and value(s, "broker_subscriptions_count") >= 1
                     and value(s, "broker_clients_total") >= 3)
    assert value(after, "broker_clients_connected") == 3
    assert value(after, "broker_clients_total") == 3
    assert value(after, "culex_listener_connections", **listener) == 3
    assert value(after, "broker_publish_messages_received") - value(before, "broker_publish_messages_received") == 5
    assert value(after, "broker_publish_messages_sent") - value(before, "broker_publish_messages_sent") == 5
    assert value(after, "broker_publish_bytes_received") - value(before, "broker_publish_bytes_received") == 25
    assert value(after, "broker_subscriptions_count") == 1
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
