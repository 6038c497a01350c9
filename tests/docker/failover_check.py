"""A persistent QoS 1 session through HAProxy while the cluster's leader is killed: called
by tests/docker/run once the three node containers and HAProxy are up.

    failover_check.py PORT USER PASSWORD KILL-COMMAND

Subscribes a persistent session (MQTT 5, session expiry one hour) to `q/#` through HAProxy
on 127.0.0.4:PORT and leaves; publishes at QoS 1 through HAProxy, runs KILL-COMMAND (a
shell command that kills the leader's container) halfway, and carries on publishing through
HAProxy, reconnecting until the new leader answers. Then the subscriber comes back through
HAProxy and must find its session (session present), and every publish that was
acknowledged, in order, and nothing that was never published. Prints the time from the kill
to the first acknowledged publish after it. Exit status 0 when all of that holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
import mqttraw as m  # noqa: E402

HOST = "127.0.0.4"
BEFORE, AFTER = 20, 20
RECONNECT_FOR = 30.0


def connect(port, client_id, user, password, clean, session_expiry=0):
    client = m.RawClient(HOST, port, version=5, label=client_id)
    props = {"session_expiry_interval": session_expiry} if session_expiry else None
    kw = {"properties": props} if props else {}
    ack = client.connect(client_id, username=user, password=password, clean=clean, **kw)
    if ack["reason_code"] != 0:
        raise RuntimeError(f"{client_id}: CONNACK {ack}")
    return client, ack


def publish_one(client, n):
    """Publishes q/<n> at QoS 1 and waits for its PUBACK; True once acknowledged."""
    client.publish(f"q/{n}", f"m{n}".encode(), qos=1, packet_id=(n % 60000) + 1)
    ack = client.expect("PUBACK", timeout=5, packet_id=(n % 60000) + 1)
    return ack.get("reason_code", 0) == 0


def main() -> int:
    port, user, password, kill = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    sub, ack = connect(port, "docker-sub", user, password, clean=True, session_expiry=3600)
    sub.subscribe(1, [("q/#", 1)])
    sub.disconnect()

    acked: list[int] = []
    publisher = None
    killed_at = first_after = None
    n = 0
    while n < BEFORE + AFTER:
        if n == BEFORE and killed_at is None:
            if publisher is not None:
                publisher.close()
                publisher = None
            killed_at = time.monotonic()
            subprocess.run(kill, shell=True, check=True)
        if publisher is None:
            deadline = (killed_at or time.monotonic()) + RECONNECT_FOR
            while publisher is None:
                try:
                    publisher, _ = connect(port, "docker-pub", user, password, clean=True)
                except (OSError, RuntimeError, AssertionError, m.Closed):
                    if time.monotonic() > deadline:
                        print(f"FAIL: no connection through HAProxy for {RECONNECT_FOR} s")
                        return 1
                    time.sleep(0.05)
        try:
            if publish_one(publisher, n):
                acked.append(n)
                if killed_at is not None and first_after is None:
                    first_after = time.monotonic()
            n += 1
        except (OSError, AssertionError, m.Closed):
            # Unacknowledged (the connection went with the leader): asked again.
            publisher.close()
            publisher = None
    publisher.disconnect()

    deadline = time.monotonic() + RECONNECT_FOR
    while True:
        try:
            sub, ack = connect(port, "docker-sub", user, password, clean=False,
                               session_expiry=3600)
            break
        except (OSError, RuntimeError, AssertionError, m.Closed):
            if time.monotonic() > deadline:
                print("FAIL: the subscriber could not reconnect through HAProxy")
                return 1
            time.sleep(0.05)
    if not ack["session_present"]:
        print(f"FAIL: session not present after the failover: {ack}")
        return 1
    got: list[int] = []
    while not set(acked) <= set(got):
        p = sub.recv_packet(10)
        if p is None:
            missing = sorted(set(acked) - set(got))
            print(f"FAIL: acknowledged publishes never delivered: {missing}")
            return 1
        if p["type"] != "PUBLISH":
            continue
        if p.get("packet_id"):
            sub.send(m.puback(p["packet_id"], version=5))
        value = int(p["payload"].decode().removeprefix("m"))
        if value >= BEFORE + AFTER or p["topic"] != f"q/{value}":
            print(f"FAIL: a message that was never published: {p}")
            return 1
        if value not in got:
            got.append(value)
    first_seen = [v for v in got if v in acked]
    if first_seen != sorted(first_seen):
        print(f"FAIL: publisher order not kept: {got}")
        return 1
    sub.disconnect()
    print(f"{len(acked)} of {BEFORE + AFTER} publishes acknowledged, all delivered in order "
          f"after the failover; first acknowledged publish {first_after - killed_at:.2f} s "
          f"after the kill")
    return 0


if __name__ == "__main__":
    sys.exit(main())
