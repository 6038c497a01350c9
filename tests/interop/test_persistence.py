"""`persistence true`: retained messages and persistent sessions survive a restart.

Owns: the restart behaviour users of Mosquitto rely on — state saved on SIGTERM, on
SIGUSR1 and every `autosave_interval`, restored at start; after SIGKILL following an
autosave the saved state comes back; a client reconnecting with clean start false gets
its session (present flag, subscriptions) and its queued QoS 1/2 messages, and QoS 1
messages that were in flight are resent with DUP. A damaged state file is set aside and
the broker starts empty instead of refusing to start (Culex only: Mosquitto refuses).
Called by: pytest, per broker kind.
"""

from __future__ import annotations

import os
import signal
import time

import mqttraw as m


def persistence_lines(autosave: int = 0) -> list[str]:
    return [
        "persistence true",
        "persistence_location {dir}/",
        "persistence_file state.db",
        f"autosave_interval {autosave}",
    ]


def prepare(broker, version: int):
    """A persistent subscriber goes offline; a publisher leaves a retained message and
    QoS 1/2 messages for it. Returns the subscriber's client id."""
    client_id = f"persist-v{version}"
    props = {"session_expiry_interval": 3600} if version == 5 else None
    s = m.RawClient(broker.host, broker.port, version)
    s.connect(client_id, clean=False, properties=props)
    s.subscribe(1, [("pt/#", 2)])
    s.disconnect()
    p = m.RawClient(broker.host, broker.port, version)
    p.connect(f"persist-pub-v{version}")
    p.publish("pt/retained", b"kept", qos=1, packet_id=1, retain=True)
    p.expect("PUBACK")
    p.publish("pt/q1", b"one", qos=1, packet_id=2)
    p.expect("PUBACK")
    p.publish("pt/q2", b"two", qos=2, packet_id=3)
    p.expect("PUBREC")
    p.send(m.pubrel(3, version=version))
    p.expect("PUBCOMP")
    p.disconnect()
    return client_id


def acknowledge_all(s, version: int, count: int) -> dict:
    """Receives `count` PUBLISHes, completing every QoS 1/2 exchange, in whatever order the
    broker interleaves them. Returns {topic: (payload, qos)}."""
    got, pending_rel = {}, 0
    deadline = time.monotonic() + 10
    while (len(got) < count or pending_rel) and time.monotonic() < deadline:
        pk = s.recv_packet(5)
        assert pk is not None, f"only {got} arrived"
        if pk["type"] == "PUBLISH":
            got[pk["topic"]] = (pk["payload"], pk["qos"])
            if pk["qos"] == 1:
                s.send(m.puback(pk["packet_id"], version=version))
            elif pk["qos"] == 2:
                s.send(m.pubrec(pk["packet_id"], version=version))
                pending_rel += 1
        elif pk["type"] == "PUBREL":
            s.send(m.pubcomp(pk["packet_id"], version=version))
            pending_rel -= 1
    return got


def check_restored(broker, client_id: str, version: int):
    props = {"session_expiry_interval": 3600} if version == 5 else None
    s = m.RawClient(broker.host, broker.port, version)
    ack = s.connect(client_id, clean=False, properties=props)
    assert ack["session_present"], "the persistent session came back"
    got = acknowledge_all(s, version, count=3)
    assert got == {"pt/retained": (b"kept", 1), "pt/q1": (b"one", 1), "pt/q2": (b"two", 2)}
    # The subscription survived too: a new message reaches the resumed session.
    p = m.RawClient(broker.host, broker.port, version)
    p.connect(f"persist-pub2-v{version}")
    p.publish("pt/live", b"live")
    assert s.expect("PUBLISH")["payload"] == b"live"
    n = m.RawClient(broker.host, broker.port, version)
    n.connect(f"persist-new-v{version}")
    n.subscribe(1, [("pt/retained", 0)])
    retained = n.expect("PUBLISH")
    assert retained["payload"] == b"kept" and retained["retain"]


def test_sigterm_saves_and_restart_restores(start_broker, broker_kind):
    b = start_broker(broker_kind, persistence_lines())
    ids = {v: prepare(b, v) for v in (4, 5)}
    b.restart(signal.SIGTERM)
    assert (b.dir / "state.db").exists()
    for v, client_id in ids.items():
        check_restored(b, client_id, v)


def test_sigkill_after_autosave_keeps_the_autosaved_state(start_broker, broker_kind):
    b = start_broker(broker_kind, persistence_lines(autosave=1))
    ids = {v: prepare(b, v) for v in (4, 5)}
    path = b.dir / "state.db"
    deadline = time.monotonic() + 10
    written = time.time()
    # Wait for an autosave that happened after the state was prepared.
    while time.monotonic() < deadline and not (path.exists() and path.stat().st_mtime > written + 0.5):
        time.sleep(0.2)
    assert path.exists(), "autosave wrote the state file"
    time.sleep(1.5)
    b.restart(signal.SIGKILL)
    for v, client_id in ids.items():
        check_restored(b, client_id, v)


def test_sigusr1_saves_immediately(start_broker, broker_kind):
    b = start_broker(broker_kind, persistence_lines())
    client_id = prepare(b, 4)
    path = b.dir / "state.db"
    assert not path.exists()
    os.kill(b.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.1)
    assert path.exists(), "SIGUSR1 saved the database"
    assert b.wait_log("Saving in-memory database to", 5)
    b.restart(signal.SIGKILL)
    check_restored(b, client_id, 4)


def test_inflight_qos1_is_resent_with_dup_after_restart(start_broker, broker_kind):
    b = start_broker(broker_kind, persistence_lines())
    s = m.RawClient(b.host, b.port, 4)
    s.connect("inflight-sub", clean=False)
    s.subscribe(1, [("if/t", 1)])
    p = m.RawClient(b.host, b.port, 4)
    p.connect("inflight-pub")
    p.publish("if/t", b"unacked", qos=1, packet_id=1)
    p.expect("PUBACK")
    first = s.expect("PUBLISH")
    assert not first["dup"]
    s.close()  # never acknowledged
    time.sleep(0.3)
    b.restart(signal.SIGTERM)
    s = m.RawClient(b.host, b.port, 4)
    assert s.connect("inflight-sub", clean=False)["session_present"]
    again = s.expect("PUBLISH")
    assert again["payload"] == b"unacked" and again["dup"], again
    assert again["packet_id"] == first["packet_id"]


def test_damaged_state_file_is_set_aside_and_broker_starts(start_broker, broker_kind):
    if broker_kind != "culex":
        return  # Mosquitto refuses to start on a damaged file (its issue #3160).
    b = start_broker(broker_kind, persistence_lines())
    prepare(b, 4)
    b.stop(signal.SIGTERM)
    path = b.dir / "state.db"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    b.restart(signal.SIGKILL)
    assert b.wait_log("moved it to", 5)
    aside = [f for f in os.listdir(b.dir) if f.startswith("state.corrupt-")]
    assert aside, os.listdir(b.dir)
    c = m.RawClient(b.host, b.port, 4)
    assert not c.connect("persist-v4", clean=False)["session_present"]


def test_autosave_on_changes_counts_changes_not_seconds(start_broker, broker_kind):
    """`autosave_on_changes true`: `autosave_interval` is a number of changes."""
    lines = persistence_lines(autosave=40) + ["autosave_on_changes true"]
    b = start_broker(broker_kind, lines)
    path = b.dir / "state.db"
    c = m.RawClient(b.host, b.port, 4)
    c.connect("changes", clean=False)
    c.subscribe(1, [("ch/1", 1)])
    time.sleep(1.5)
    assert not path.exists(), "a handful of changes is not forty"
    for n in range(2, 60):
        c.subscribe(n, [(f"ch/{n}", 1)])
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.2)
    assert path.exists(), "saved once enough changes happened"
