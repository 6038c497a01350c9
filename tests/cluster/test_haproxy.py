"""HAProxy in front of a Full Sync cluster, configured as in Cedalo's documentation (a
plain TCP `check` on each node's client port): clients reach the leader through it, and
after the leader dies they reconnect through it to the new leader, with no other help."""

from __future__ import annotations

import subprocess
import time

import cluster as c
import mqttraw as m
from conftest import require_tool

HAPROXY = """global
    maxconn 1024
defaults
    mode tcp
    timeout connect 2000
    timeout client 2m
    timeout server 2m
frontend mqtt
    bind 127.0.0.4:{front}
    default_backend nodes
backend nodes
    option redispatch
{servers}
"""


def connect_through(front: int, client_id: str) -> m.RawClient:
    client = m.RawClient("127.0.0.4", front, version=5, label=client_id)
    ack = client.connect(client_id, username="app", password="pw-app")
    assert ack["reason_code"] == 0, ack
    return client


def serving_node(cl, client_id: str):
    """The node whose log shows `client_id` connected."""
    for node in cl.nodes:
        if node.alive() and f"as {client_id} (" in node.log():
            return node
    return None


def test_haproxy_sends_clients_to_the_leader_and_moves_them_on_failover(cluster, tmp_path):
    haproxy = require_tool("haproxy")
    cl = cluster
    leader = cl.create(sync="full")
    admin = leader.dynsec_admin()
    (entry,) = admin.request(
        {"command": "createRole", "rolename": "app", "acls": [
            {"acltype": "publishClientSend", "topic": "#", "allow": True},
            {"acltype": "subscribePattern", "topic": "#", "allow": True}]},
    )
    assert "error" not in entry, entry
    (entry,) = admin.request({"command": "createClient", "username": "app",
                              "password": "pw-app", "roles": [{"rolename": "app"}]})
    assert "error" not in entry, entry
    admin.close()

    front = c.shared_ports(1, 4)[0]
    servers = "\n".join(f"    server node{n.i} {n.host}:{n.port} check inter 100ms fall 2 rise 1"
                        for n in cl.nodes)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(front=front, servers=servers))
    proxy = subprocess.Popen([haproxy, "-f", str(cfg), "-db"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        c.wait_until("haproxy listening", lambda: c.accepts("127.0.0.4", front), 10)
        first = c.wait_until("a client through haproxy",
                             lambda: _try(lambda: connect_through(front, "via-proxy-1")), 10)
        assert serving_node(cl, "via-proxy-1") is leader
        first.publish("t", b"x", qos=1, packet_id=1)
        first.expect("PUBACK", packet_id=1)

        killed = time.monotonic()
        leader.kill()
        first.expect_closed(10)
        second = c.wait_until("a reconnect through haproxy to the new leader",
                              lambda: _try(lambda: connect_through(front, "via-proxy-2")),
                              15, 0.1)
        moved = time.monotonic() - killed
        new = serving_node(cl, "via-proxy-2")
        assert new is not None and new is not leader
        assert new.get_node()["role"] == "leader"
        second.publish("t", b"y", qos=1, packet_id=1)
        second.expect("PUBACK", packet_id=1)
        second.disconnect()
        print(f"\nclients reached the new leader through haproxy {moved:.2f} s after the kill")
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def _try(connect):
    try:
        return connect()
    except (OSError, AssertionError, m.Closed):
        return None
