"""A cluster of real Culex processes on one machine, for the cluster tests.

Owns: choosing ports free on 127.0.0.1 to 127.0.0.N, writing each node's config (the
seed's broker configuration with the node's addresses and a data directory of its own),
starting, stopping, killing, pausing (SIGSTOP) and restarting nodes, the control API
client (`$CONTROL/cedalo/ha/v1`, and dynamic security through the same admin login),
and polls with bounded deadlines. Called by: tests/cluster/test_*.py.

Node i listens on 127.0.0.i: client port, admin port (`admin_listener true`), HTTP port
(`/readyz`, `/metrics`), cluster port; every node uses the same port numbers, as the
nodes of a real cluster would on their own machines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import mqttraw as m
from conftest import broker_binary
from dynsec_helpers import Admin, connack

ADMIN_PASSWORD = "adminpass123"
HA_REQUEST = "$CONTROL/cedalo/ha/v1"
HA_RESPONSE = "$CONTROL/cedalo/ha/v1/response"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def host(i: int) -> str:
    return f"127.0.0.{i}"


def shared_ports(count: int, nodes: int) -> list[int]:
    """`count` port numbers that are free on every node's address."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        ports = [base + k for k in range(count)]
        if ports[-1] > 65000:
            continue
        if all(_free(host(i), p) for i in range(1, nodes + 1) for p in ports):
            return ports
    raise RuntimeError("no ports free on every node address")


def _free(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
            return True
        except OSError:
            return False


def accepts(address: str, port: int, timeout=0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(what: str, predicate, timeout: float, interval=0.05):
    """Polls `predicate` until it returns a true value (returned) or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Node:
    """One Culex process of the cluster."""

    def __init__(self, cluster: "Cluster", i: int):
        self.cluster = cluster
        self.i = i
        self.id = i
        self.host = host(i)
        self.kind = "culex"
        self.dir = Path(tempfile.mkdtemp(prefix=f"cluster-node{i}-"))
        os.chmod(self.dir, 0o777)
        self.conf_path = self.dir / "node.conf"
        self.log_path = self.dir / "node.log"
        self.proc = None
        self.write_config()
        if cluster.dynsec_file is not None:
            path = self.dir / "dynamic-security.json"
            path.write_bytes(cluster.dynsec_file)
            os.chmod(path, 0o666)

    # The dynsec helpers' names for the client port.
    @property
    def port(self) -> int:
        return self.cluster.client_port

    @property
    def admin_port(self) -> int:
        return self.cluster.admin_port

    @property
    def http_port(self) -> int:
        return self.cluster.http_port

    @property
    def cluster_port(self) -> int:
        return self.cluster.cluster_port

    def entry(self, mine=False) -> dict:
        e = {"address": self.host, "port": self.cluster_port, "nodeid": self.id}
        if mine:
            e["mynode"] = True
        return e

    def write_config(self):
        c = self.cluster
        lines = [
            "global_plugin /usr/lib/cedalo_mosquitto_ha.so",
            "enable_control_api true",
            "allow_anonymous false",
            f"listener {c.client_port} {self.host}",
            f"listener {c.admin_port} {self.host}",
            "admin_listener true",
            f"listener {c.http_port} {self.host}",
            "protocol http_api",
            f"persistence_location {self.dir}",
            "max_keepalive 1800",
            "set_tcp_nodelay true",
            *c.extra,
            *c.node_extra.get(self.i, ()),
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")
        os.chmod(self.conf_path, 0o644)

    def start(self):
        env = {**os.environ, "MOSQUITTO_DYNSEC_PASSWORD": ADMIN_PASSWORD,
               **self.cluster.env}
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [broker_binary("culex"), "-c", str(self.conf_path)], stdout=logf,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir, env=env)
        logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(self.host, self.admin_port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.i} exited with {self.proc.returncode}:\n"
                                   + self.log())
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.i} did not start:\n" + self.log())
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.send_signal(sig)
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self):
        return self.stop(signal.SIGKILL)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def restart(self):
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def serving(self) -> bool:
        """True while the client listener accepts connections."""
        return accepts(self.host, self.port, timeout=0.2)

    # -- control API ----------------------------------------------------------------

    def admin(self, **kw) -> Admin:
        """An admin session on this node's admin listener, for the HA API."""
        return Admin(self, port=self.admin_port, request_topic=HA_REQUEST,
                     response_topic=HA_RESPONSE, password=ADMIN_PASSWORD, **kw)

    def dynsec_admin(self) -> Admin:
        """An admin session on this node's admin listener, for dynamic security."""
        return Admin(self, port=self.admin_port, password=ADMIN_PASSWORD)

    def ha(self, command: str, timeout=15.0, **fields) -> dict:
        """One HA command; returns its response entry."""
        admin = self.admin()
        try:
            (entry,) = admin.request({"command": command, **fields}, timeout=timeout)
            return entry
        finally:
            admin.close()

    def ha_ok(self, command: str, **fields):
        entry = self.ha(command, **fields)
        assert "error" not in entry, f"node {self.i} {command} {fields}: {entry['error']}"
        return entry.get("data")

    def ha_error(self, command: str, **fields) -> str:
        entry = self.ha(command, **fields)
        assert "error" in entry, f"node {self.i} {command} {fields} succeeded: {entry}"
        return entry["error"]

    def get_node(self) -> dict:
        return self.ha_ok("getNode")

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """N nodes, not yet in a cluster until `create()`."""

    def __init__(self, n=3, extra=(), env=None, name="plant", dynsec_file=None,
                 node_extra=None):
        self.name = name
        self.dynsec_file = dynsec_file
        self.extra = list(extra)
        # Lines for one node only: {node number: [lines]}.
        self.node_extra = dict(node_extra or {})
        self.env = dict(env or {})
        (self.client_port, self.admin_port, self.http_port,
         self.cluster_port) = shared_ports(4, max(n, 4))
        self.nodes = [Node(self, i) for i in range(1, n + 1)]

    def node(self, i: int) -> Node:
        return self.nodes[i - 1]

    def add_node(self) -> Node:
        node = Node(self, len(self.nodes) + 1)
        self.nodes.append(node)
        return node

    def start(self):
        for node in self.nodes:
            node.start()

    def entries(self, nodes, mine: Node) -> list[dict]:
        return [n.entry(mine=n is mine) for n in nodes]

    def create(self, sync="full", nodes=None):
        """The seed's procedure: createCluster on the first node, joinCluster on the
        others; returns once a leader is known to all of them (and, in Dynamic-Security
        Sync, once every node serves clients: a node that joined opens its client listener
        only after it applied the cluster's sync mode)."""
        nodes = nodes or self.nodes
        first = nodes[0]
        first.ha_ok("createCluster", clustername=self.name,
                    nodes=self.entries(nodes, first), syncmode=sync)
        for node in nodes[1:]:
            node.ha_ok("joinCluster", clustername=self.name, nodes=self.entries(nodes, node))
        leader = self.wait_leader(nodes)
        if sync == "dynsec":
            wait_until("every node serves clients",
                       lambda: all(n.serving() for n in nodes if n.alive()), 15)
        return leader

    def wait_leader(self, nodes=None, timeout=15.0, exclude=()) -> Node:
        """The leader every live node (of `nodes`) agrees on, once it is settled."""
        nodes = [n for n in (nodes or self.nodes) if n.alive() and n not in exclude]

        def agreed():
            leaders = set()
            for n in nodes:
                try:
                    data = n.get_node()
                except (AssertionError, OSError, m.Closed):
                    return None
                if "leader" not in data or data["appliedIndex"] < 1:
                    return None
                leaders.add(data["leader"])
            return leaders.pop() if len(leaders) == 1 else None

        leader = wait_until("one leader known to every node", agreed, timeout, 0.1)
        return self.node(leader)

    def serving(self) -> list[int]:
        return [n.i for n in self.nodes if n.alive() and n.serving()]

    def cleanup(self):
        for node in self.nodes:
            node.kill()
        # The last cluster's logs stay for a look after a failure (CLUSTER_LOGS=dir).
        keep = os.environ.get("CLUSTER_LOGS")
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
            os.makedirs(keep, exist_ok=True)
            for node in self.nodes:
                shutil.copy(node.log_path, Path(keep) / f"node{node.i}.log")
        for node in self.nodes:
            node.cleanup()

    def logs(self) -> str:
        """The end of every node's log, and any panic in full."""
        parts = []
        for n in self.nodes:
            text = n.log()
            panic = text.find("panicked at")
            if panic >= 0:
                parts.append(f"----- node {n.i}: PANIC -----\n{text[max(0, panic - 3000):panic + 1500]}")
            parts.append(f"----- node {n.i} -----\n{text[-6000:]}")
        return "\n".join(parts)


def json_payload(obj) -> bytes:
    return json.dumps(obj).encode()


def connack_when_open(node, username, password):
    """The CONNACK code of a login on `node`, or None while its client listener is not
    open (a node that joined opens it once it applied the cluster's sync mode)."""
    try:
        return connack(node, username, password)
    except OSError:
        return None


def make_app_user(leader):
    """User `app` (password `pw-app`) with a role that may publish and subscribe to
    everything, made through the leader's admin listener."""
    admin = leader.dynsec_admin()
    for entry in admin.request(
            {"command": "createRole", "rolename": "app", "acls": [
                {"acltype": "publishClientSend", "topic": "#", "allow": True},
                {"acltype": "subscribePattern", "topic": "#", "allow": True}]},
            {"command": "createClient", "username": "app", "password": "pw-app",
             "roles": [{"rolename": "app"}]}):
        assert "error" not in entry, entry
    admin.close()
