"""config/local-cluster/run, as a user trying the cluster runs it: three nodes on
127.0.0.1-3 and HAProxy on 127.0.0.4 come up as one cluster; clients reach the leader
through HAProxy; `stop` then `start` brings the same cluster back with its data; `clean`
leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cluster as c
import mqttraw as m
from conftest import broker_binary, require_tool

SCRIPT = Path(__file__).resolve().parents[2] / "config" / "local-cluster" / "run"


def run(env, *args) -> str:
    done = subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, f"run {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def test_the_local_cluster_script():
    require_tool("haproxy")
    # Not pytest's tmp_path: the nodes run as mosquitto and must reach their directory.
    tmp_path = Path(tempfile.mkdtemp(prefix="culex-local-"))
    tmp_path.chmod(0o755)
    port, admin, http, cport, proxy = c.shared_ports(5, 4)
    env = dict(os.environ, CULEX_BIN=broker_binary("culex"),
               CULEX_LOCAL_DIR=str(tmp_path / "local"), CULEX_LOCAL_PORT=str(port),
               CULEX_LOCAL_ADMIN_PORT=str(admin), CULEX_LOCAL_HTTP_PORT=str(http),
               CULEX_LOCAL_CLUSTER_PORT=str(cport), CULEX_LOCAL_PROXY_PORT=str(proxy),
               MOSQUITTO_DYNSEC_PASSWORD="local-admin-pw")
    try:
        started = time.monotonic()
        out = run(env, "start")
        took = time.monotonic() - started
        assert "clients: 127.0.0.4" in out, out
        status = run(env, "status")
        assert "leader" in status and status.count("yes") >= 3, status

        # A user made with mosquitto_ctrl on node 1's admin listener; through HAProxy, a
        # retained message, kept across stop and start.
        ctrl = require_tool("mosquitto_ctrl")
        for args in (["createRole", "app"],
                     ["addRoleACL", "app", "publishClientSend", "#", "allow"],
                     ["addRoleACL", "app", "subscribePattern", "#", "allow"],
                     ["createClient", "app", "-p", "pw-app"],
                     ["addClientRole", "app", "app"]):
            subprocess.run([ctrl, "-h", "127.0.0.1", "-p", str(admin), "-u", "admin", "-P",
                            "local-admin-pw", "dynsec", *args], check=True,
                           capture_output=True, timeout=20)

        def through_proxy():
            client = m.RawClient("127.0.0.4", proxy, version=5, label="local")
            ack = client.connect("local", username="app", password="pw-app")
            assert ack["reason_code"] == 0, ack
            return client
        client = c.wait_until("a client through HAProxy", lambda: _try(through_proxy), 10)
        client.publish("local/kept", b"yes", qos=1, packet_id=1, retain=True)
        # 0x10: accepted, no matching subscribers.
        assert client.expect("PUBACK", packet_id=1).get("reason_code", 0) in (0, 0x10)
        client.disconnect()

        run(env, "stop")
        out = run(env, "start")
        assert "already made" in out, out
        client = c.wait_until("a client through HAProxy after the restart",
                              lambda: _try(through_proxy), 15)
        client.subscribe(1, [("local/#", 0)])
        p = client.expect("PUBLISH", timeout=5)
        assert p["payload"] == b"yes" and p["retain"], p
        client.disconnect()
        print(f"\nlocal cluster up in {took:.2f} s (start to a cluster with a leader)")
    finally:
        subprocess.run([str(SCRIPT), "clean"], env=env, capture_output=True, timeout=60)
    assert not (tmp_path / "local").exists()
    alive = subprocess.run(["pgrep", "-f", str(tmp_path / "local")], capture_output=True)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert alive.returncode == 1, alive.stdout


def _try(connect):
    try:
        return connect()
    except (OSError, AssertionError, m.Closed):
        return None
