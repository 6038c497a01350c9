"""Full Sync: persistent sessions, their subscriptions and queued messages, and retained
messages are the cluster's: after the leader dies, a client that reconnects to the new
leader finds its session (session present), its subscriptions, the messages queued for it
while it was away, and the retained messages."""

from __future__ import annotations

import cluster as c
import mqttraw as m
from dynsec_helpers import login


def make_app_user(leader):
    admin = leader.dynsec_admin()
    for entry in admin.request(
            {"command": "createRole", "rolename": "app", "acls": [
                {"acltype": "publishClientSend", "topic": "#", "allow": True},
                {"acltype": "subscribePattern", "topic": "#", "allow": True}]},
            {"command": "createClient", "username": "app", "password": "pw-app",
             "roles": [{"rolename": "app"}]}):
        assert "error" not in entry, entry
    admin.close()


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
    make_app_user(leader)
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
    # Let the last changes commit (acknowledgements are not yet held until commit).
    c.wait_until("followers caught up", lambda: all(
        n.get_node()["appliedIndex"] >= leader.get_node()["appliedIndex"]
        for n in cl.nodes if n is not leader), 5)

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
