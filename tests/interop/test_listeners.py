"""Per-listener settings as Mosquitto users write them: Unix socket listeners, bind address,
`socket_domain`, `bind_interface`, `max_connections`, `mount_point` and
`per_listener_settings`, each observed by real clients on both brokers.

Owns: what a second listener changes for the clients that arrive on it. TLS and WebSocket
listeners have their own files (test_tls.py, test_websockets.py).
Called by: pytest, once per broker kind.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

import mqttraw as m
from conftest import broker_binary, free_port, require_tool

WAIT = 5.0


def threads(kind):
    """Culex runs two shards, so limits must hold across them."""
    return ["threads 2"] if kind == "culex" else []


def cli(tool, *args, timeout=10):
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout)


def refused_without_connack(host, port, family=socket.AF_INET) -> bool:
    """True when a connection is refused, or closed before any CONNACK."""
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(WAIT)
        s.connect((host, port))
    except OSError:
        return True
    try:
        s.sendall(m.connect("probe", version=4))
        return s.recv(4) == b""
    except OSError:
        return True
    finally:
        s.close()


def test_unix_socket_listener_serves_mosquitto_clients(start_broker, broker_kind):
    require_tool("mosquitto_sub")
    b = start_broker(broker_kind, [*threads(broker_kind), "listener 0 {dir}/mqtt.sock"])
    path = str(b.dir / "mqtt.sock")
    deadline = time.monotonic() + WAIT
    while not (b.dir / "mqtt.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    sub = subprocess.Popen(["mosquitto_sub", "--unix", path, "-t", "unix/#", "-C", "2", "-W", "10",
                            "-v", "-q", "1"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        # one message over TCP, one over the Unix socket itself
        assert cli("mosquitto_pub", "-h", b.host, "-p", str(b.port), "-t", "unix/tcp",
                   "-m", "from-tcp", "-q", "1").returncode == 0
        assert cli("mosquitto_pub", "--unix", path, "-t", "unix/local", "-m", "from-unix",
                   "-q", "1").returncode == 0
        out, _ = sub.communicate(timeout=15)
    finally:
        sub.kill()
    assert out.splitlines() == ["unix/tcp from-tcp", "unix/local from-unix"], out
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(WAIT)
    raw.connect(path)
    raw.sendall(m.connect("raw-unix", version=5))
    assert raw.recv(2)[0] == 0x20, "CONNACK over the Unix socket"
    raw.close()
    assert b.alive()


def test_bind_address_and_socket_domain_limit_where_clients_connect(start_broker, broker_kind):
    port, wildcard_port = free_port(), free_port()
    b = start_broker(broker_kind, [
        f"listener {port} 127.0.0.2",
        f"listener {wildcard_port}", "socket_domain ipv4",
    ])
    ok = m.RawClient("127.0.0.2", port)
    assert ok.connect("on-127-0-0-2")["reason_code"] == 0
    ok.close()
    assert refused_without_connack("127.0.0.3", port), "bound to 127.0.0.2 only"
    four = m.RawClient("127.0.0.3", wildcard_port)
    assert four.connect("any-ipv4")["reason_code"] == 0
    four.close()
    if socket.has_ipv6:
        assert refused_without_connack("::1", wildcard_port, socket.AF_INET6), \
            "socket_domain ipv4: no IPv6 socket"
    assert b.alive()


def test_bind_interface_binds_the_listener_to_the_interface(start_broker, broker_kind):
    port = free_port()
    b = start_broker(broker_kind, [f"listener {port}", "bind_interface lo"])
    c = m.RawClient("127.0.0.1", port)
    assert c.connect("on-lo")["reason_code"] == 0
    c.close()
    assert b.alive()


def test_bind_interface_that_does_not_exist_stops_startup(broker_kind, tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {free_port()}\nbind_interface no-such-if0\nallow_anonymous true\n")
    conf.chmod(0o644)
    tmp_path.chmod(0o755)
    r = subprocess.run([broker_binary(broker_kind), "-c", str(conf)], capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "no-such-if0" in r.stdout + r.stderr


def test_max_connections_counts_the_listener_across_shards(start_broker, broker_kind):
    limited = free_port()
    b = start_broker(broker_kind, [*threads(broker_kind), f"listener {limited} 127.0.0.1",
                                   "max_connections 3"])
    clients = []
    for i in range(3):
        c = m.RawClient(b.host, limited)
        assert c.connect(f"limited-{i}")["reason_code"] == 0
        clients.append(c)
    assert refused_without_connack(b.host, limited), "a fourth client is refused"
    # other listeners are not limited
    other = m.RawClient(b.host, b.port)
    assert other.connect("unlimited")["reason_code"] == 0
    clients.pop().close()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            again = m.RawClient(b.host, limited)
            if again.connect("limited-again")["reason_code"] == 0:
                break
        except (m.Closed, OSError, AssertionError):
            pass
        assert time.monotonic() < deadline, "room again once a client left"
        time.sleep(0.1)
    again.close()
    for c in [*clients, other]:
        c.close()


def test_mount_point_prefixes_the_topics_of_its_clients(start_broker, broker_kind):
    tenant = free_port()
    b = start_broker(broker_kind, [*threads(broker_kind), f"listener {tenant} 127.0.0.1",
                                   "mount_point tenant-a/"])
    inside = m.RawClient(b.host, tenant)
    inside.connect("inside")
    inside.subscribe(1, [("t/#", 0)])
    outside = m.RawClient(b.host, b.port)
    outside.connect("outside")
    outside.subscribe(1, [("#", 0)])
        # Mosquitto's documentation: the prefix "is removed when any messages are sent to the
    # client". Mosquitto 2.0.11 forgets to (eclipse-mosquitto/mosquitto#2244, fixed in
    # 2.0.12); Culex follows the documentation.
    unmounted = (lambda t: "tenant-a/" + t) if broker_kind == "mosquitto" else (lambda t: t)
    inside.publish("t/x", b"from-inside")
    seen = outside.expect("PUBLISH")
    assert seen["topic"] == "tenant-a/t/x", seen
    assert inside.expect("PUBLISH")["topic"] == unmounted("t/x"), "its own message"
    outside.publish("tenant-a/t/y", b"to-inside")
    assert inside.expect("PUBLISH")["topic"] == unmounted("t/y"), "the mount point is removed"
    outside.expect("PUBLISH")  # its own message, through '#'
    outside.publish("t/z", b"not-for-the-tenant")
    inside.expect_nothing(0.5)
    inside.close()
    outside.close()


def test_per_listener_settings_give_each_listener_its_own_security(start_broker, broker_kind):
    closed = free_port()
    b = start_broker(broker_kind, [
        "per_listener_settings true", "allow_anonymous true",
        f"listener {closed} 127.0.0.1", "allow_anonymous false",
    ], anonymous=False)
    open_ = m.RawClient(b.host, b.port)
    assert open_.connect("anon-open")["reason_code"] == 0
    shut = m.RawClient(b.host, closed)
    assert shut.connect("anon-closed")["reason_code"] == 5, "not authorised on that listener"
    open_.close()
    shut.close()
