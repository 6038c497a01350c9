"""What monitoring sees of a cluster: `/readyz` says whether a node serves clients (the
leader only, in Full Sync), `/metrics` and `$SYS/broker/cluster/...` carry the role,
term, indexes and per-peer figures, and the log names every role and membership change."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request

import cluster as c
from conftest import require_tool
from dynsec_helpers import login


def http(node, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{node.host}:{node.http_port}{path}",
                                    timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return line.split()[1]
    raise AssertionError(f"{name} not in /metrics")


def test_readyz_metrics_sys_and_logs_follow_the_roles():
    # The commercial broker's environment: a licence file (not needed, logged once) and
    # the data directory (relative here: each node's own working directory).
    cl = c.Cluster(3, env={"CEDALO_LICENSE_FILE": "/etc/cedalo/license.lic",
                           "CEDALO_HA_DATA_DIR": "hadata"})
    try:
        cl.start()
        check_roles(cl)
    except BaseException:
        print(cl.logs())
        raise
    finally:
        cl.cleanup()


def check_roles(cl):
    note = "CEDALO_LICENSE_FILE=/etc/cedalo/license.lic is ignored: Culex needs no licence."
    for node in cl.nodes:
        c.wait_until("the licence note", lambda node=node: note in node.log(), 5)
        assert node.log().count(note) == 1
    for node in cl.nodes:
        assert http(node, "/readyz")[0] == 200, "a standalone node serves clients"
    leader = cl.create(sync="full")
    followers = [n for n in cl.nodes if n is not leader]
    c.wait_until("only the leader ready", lambda: [http(n, "/readyz")[0] for n in cl.nodes]
                 == [200 if n is leader else 503 for n in cl.nodes], 5)

    status, text = http(leader, "/metrics")
    assert status == 200
    assert 'culex_cluster_role{role="leader"} 1' in text
    assert metric(text, "culex_cluster_serving") == "1"
    assert metric(text, "culex_cluster_node_id") == str(leader.id)
    assert int(metric(text, "culex_cluster_commit_index")) >= 1
    for f in followers:
        assert f'culex_cluster_peer_lag{{node="{f.id}"}}' in text
        assert f'culex_cluster_peer_online{{node="{f.id}"}} 1' in text
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    status, text = http(followers[0], "/metrics")
    assert 'culex_cluster_role{role="follower"} 1' in text
    assert metric(text, "culex_cluster_leader_id") == str(leader.id)

    # $SYS on a follower's admin listener (retained, so a new subscriber gets them).
    admin = login(followers[0], "admin", c.ADMIN_PASSWORD, port=followers[0].admin_port)
    admin.subscribe(1, [("$SYS/broker/cluster/#", 0)])
    seen = {}

    def got_role():
        p = admin.recv_packet(1)
        while p is not None:
            if p["type"] == "PUBLISH":
                seen[p["topic"]] = p["payload"].decode()
            p = admin.recv_packet(0.05)
        return seen.get("$SYS/broker/cluster/role") == "follower" and \
            seen.get("$SYS/broker/cluster/leader_id") == str(leader.id)
    c.wait_until("$SYS/broker/cluster on a follower", got_role, 15)
    assert seen["$SYS/broker/cluster/serving"] == "0"
    admin.disconnect()

    # Role and membership changes are logged with node ids.
    log = leader.log()
    assert f'HA: node {leader.id} is leader in cluster "plant"' in log
    assert 'HA: cluster "plant" membership: node 1 at' in log
    assert "HA: client listeners opened (this node leads)" in log
    assert "HA: client listeners closed (this node does not lead)" in followers[0].log()
    for node in cl.nodes:
        assert (node.dir / "hadata" / "cluster.json").exists(), node.i
        assert not (node.dir / "ha").exists(), node.i
