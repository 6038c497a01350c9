"""The packet-level debug log lines (`log_type debug`, `log_type all`, `-v`).

Owns: what a user sees in the log when debug lines are on. The same client
script runs against each broker kind: CONNECT with and without a will,
SUBSCRIBE (with a retained message due), PUBLISH at QoS 0/1/2 both ways
(incl. a QoS 2 resend with DUP, a QoS 1 to no subscriber, a queued message
redelivered with DUP after a reconnect), a will published, PINGREQ,
UNSUBSCRIBE, DISCONNECT, an assigned client id; for 3.1.1 and 5.0. Refused
CONNECTs and PUBLISHes (access rules, message_size_limit) run in a second
script. For Mosquitto the assertions on literal lines are the test; for
Culex, also equality with Mosquitto's log for the same script.

Comparison: lines are grouped per client (the order of one client's lines
is what a reader or a script relies on; how two clients' lines interleave
depends on threads and, for QoS 2, on when a broker forwards the message:
Mosquitto at PUBREL, Culex at PUBLISH). Continuation lines (a tab, the will
lines) belong to the block the last `New client connected` / `Received
(UN)SUBSCRIBE` / `Sending CONNACK` opened. Normalised: timestamps, client
ports, assigned client ids (`auto-<n>` in order of appearance) and packet
ids the broker chose (renumbered per client in order of first use, as the
differential suite does). The script waits for every packet it expects and
syncs with a PINGREQ after an acknowledgement that has no answer, so each
line is in the log before the next step starts; no sleeps.
"""

from __future__ import annotations

import collections
import re
import signal
import time

import pytest

import mqttraw as m
from test_differential import password_file

DEADLINE = 5.0


# --------------------------------------------------------------------------
# A client that collects what arrives regardless of order
# --------------------------------------------------------------------------


class Client:
    """A raw client that files every packet by type, so a step can wait for
    the packets it expects in whatever order the broker writes them."""

    def __init__(self, broker, version):
        self.raw = m.RawClient(broker.host, broker.port, version=version)
        self.version = version
        self.inbox = collections.defaultdict(list)

    def connect(self, client_id, **kw):
        self.raw.send(m.connect(client_id, version=self.version, **kw))
        return self.take("CONNACK")

    def take(self, ptype):
        """The next packet of `ptype` (bounded wait), keeping others for later."""
        deadline = time.monotonic() + DEADLINE
        while not self.inbox[ptype]:
            left = deadline - time.monotonic()
            p = self.raw.recv_packet(max(left, 0.01)) if left > 0 else None
            if p is None:
                raise AssertionError(f"expected {ptype}, have {dict(self.inbox)}")
            self.inbox[p["type"]].append(p)
        return self.inbox[ptype].pop(0)

    def send(self, data: bytes):
        self.raw.send(data)

    def publish(self, topic, payload, **kw):
        self.raw.send(m.publish(topic, payload, version=self.version, **kw))

    def sync(self):
        """PINGREQ/PINGRESP: the broker handled (and logged) everything sent before."""
        self.raw.send(m.pingreq())
        self.take("PINGRESP")

    def ack_incoming(self, p):
        """Completes the QoS 1/2 flow of a PUBLISH the client received."""
        v = self.version
        if p["qos"] == 1:
            self.send(m.puback(p["packet_id"], version=v))
        elif p["qos"] == 2:
            self.send(m.pubrec(p["packet_id"], version=v))
            self.take("PUBREL")
            self.send(m.pubcomp(p["packet_id"], version=v))
        self.sync()

    def disconnect(self):
        self.raw.disconnect()

    def drop(self):
        """Closes the socket without DISCONNECT."""
        self.raw.close()


def wait_log(broker, text):
    assert broker.wait_log(text, timeout=DEADLINE), f"{text!r} not in the log:\n{broker.log()}"


# --------------------------------------------------------------------------
# The scripts
# --------------------------------------------------------------------------


def main_script(broker, v):
    sub = Client(broker, v)
    ack = sub.connect("sub", will={"topic": "will/sub", "payload": b"sub gone", "qos": 1})
    assert ack["reason_code"] == 0
    assert sub.raw.subscribe(1, [("t/#", 2), ("will/#", 1)])["type"] == "SUBACK"

    pub = Client(broker, v)
    pub.connect("pub", will={"topic": "will/pub", "payload": b"bye", "qos": 2, "retain": True})

    pub.publish("t/0", b"hello000", qos=0)
    assert sub.take("PUBLISH")["payload"] == b"hello000"

    pub.publish("t/1", b"hello001", qos=1, packet_id=5)
    pub.take("PUBACK")
    sub.ack_incoming(sub.take("PUBLISH"))

    pub.publish("t/2", b"hello002", qos=2, packet_id=6)
    pub.take("PUBREC")
    pub.publish("t/2", b"hello002", qos=2, packet_id=6, dup=True)
    pub.take("PUBREC")
    pub.send(m.pubrel(6, version=v))
    pub.take("PUBCOMP")
    sub.ack_incoming(sub.take("PUBLISH"))

    pub.publish("nobody/here", b"x", qos=1, packet_id=7)
    assert pub.take("PUBACK")["reason_code"] == (16 if v == 5 else 0)
    pub.publish("r/1", b"ret", qos=1, retain=True, packet_id=8)
    pub.take("PUBACK")

    assert sub.raw.subscribe(2, [("r/#", 1), ("x/y", 0)])["type"] == "SUBACK"
    retained = sub.take("PUBLISH")
    assert retained["retain"] and retained["payload"] == b"ret"
    sub.ack_incoming(retained)

    # A will: the client goes without DISCONNECT.
    ghost = Client(broker, v)
    ghost.connect("ghost", will={"topic": "will/ghost", "payload": b"boo", "qos": 1})
    ghost.drop()
    will = sub.take("PUBLISH")
    assert will["topic"] == "will/ghost"
    sub.ack_incoming(will)

    # A persistent session: a queued message, delivered on return, redelivered with DUP.
    props = {"session_expiry_interval": 300} if v == 5 else None
    keep = Client(broker, v)
    keep.connect("keep", clean=False, properties=props)
    assert keep.raw.subscribe(1, [("q/#", 1)])["type"] == "SUBACK"
    keep.disconnect()
    wait_log(broker, "Client keep disconnected.")
    pub.publish("q/a", b"queued", qos=1, packet_id=9)
    pub.take("PUBACK")
    keep = Client(broker, v)
    assert keep.connect("keep", clean=False, properties=props)["session_present"]
    assert not keep.take("PUBLISH")["dup"]
    keep.drop()
    wait_log(broker, "Client keep closed its connection.")
    keep = Client(broker, v)
    keep.connect("keep", clean=False, properties=props)
    again = keep.take("PUBLISH")
    assert again["dup"]
    keep.ack_incoming(again)

    anon = Client(broker, v)
    assert anon.connect("")["reason_code"] == 0
    anon.sync()

    assert sub.raw.unsubscribe(3, ["t/#", "zzz"])["type"] == "UNSUBACK"
    for c in (sub, pub, keep, anon):
        c.disconnect()
    for name in ("sub", "pub", "keep"):
        wait_log(broker, f"Client {name} disconnected.")
    wait_log(broker, "Client auto-")


MAIN_LINES = [
    "Will message specified (8 bytes) (r0, q1).",
    "\twill/sub",
    "Will message specified (3 bytes) (r1, q2).",
    "Sending CONNACK to sub (0, 0)",
    "Received SUBSCRIBE from sub",
    "\tt/# (QoS 2)",
    "Sending SUBACK to sub",
    "Received PUBLISH from pub (d0, q0, r0, m0, 't/0', ... (8 bytes))",
    "Sending PUBLISH to sub (d0, q0, r0, m0, 't/0', ... (8 bytes))",
    "Received PUBLISH from pub (d0, q1, r0, m5, 't/1', ... (8 bytes))",
    "Sending PUBACK to pub (m5, rc0)",
    "Received PUBLISH from pub (d1, q2, r0, m6, 't/2', ... (8 bytes))",
    "Sending PUBREC to pub (m6, rc0)",
    "Received PUBREL from pub (Mid: 6)",
    "Sending PUBCOMP to pub (m6)",
    "Sending PUBLISH to sub (d0, q1, r1, m3, 'r/1', ... (3 bytes))",
    "Received PINGREQ from sub",
    "Sending PINGRESP to sub",
    "Sending CONNACK to keep (1, 0)",
    "Received UNSUBSCRIBE from sub",
    "\tzzz",
    "Sending UNSUBACK to sub",
    "Received DISCONNECT from pub",
]


def refusals_script(broker, v):
    bad = Client(broker, v)
    assert bad.connect(f"bad{v}", username="u", password="wrong")["reason_code"] in (5, 0x87)
    bad.drop()
    c = Client(broker, v)
    c.connect("acl")
    assert c.raw.subscribe(1, [("open/#", 2)])["type"] == "SUBACK"
    c.publish("secret/x", b"12345", qos=1, packet_id=2)
    c.take("PUBACK")
    c.publish("open/big", b"0123456789ABCDEF", qos=0)
    if v == 4:
        # (5.0 is left out: Culex cannot yet encode Mosquitto's PUBACK 0x95 for it.)
        c.publish("open/big", b"0123456789ABCDEF", qos=1, packet_id=3)
        c.take("PUBACK")
        c.publish("open/big", b"0123456789ABCDEF", qos=2, packet_id=4)
        c.take("PUBREC")
    c.publish("open/ok", b"abc", qos=1, packet_id=5)
    c.take("PUBACK")
    c.ack_incoming(c.take("PUBLISH"))
    assert c.raw.unsubscribe(2, ["open/#", "secret/#"])["type"] == "UNSUBACK"
    c.disconnect()
    wait_log(broker, "Received DISCONNECT from acl")


def refusals_lines(v):
    refused = 135 if v == 5 else 5
    lines = [
        f"Sending CONNACK to 127.0.0.1 (0, {refused})",
        "Denied PUBLISH from acl (d0, q1, r0, m2, 'secret/x', ... (5 bytes))",
        # A 3.1.1 client's acknowledgement has no reason code; the line names it anyway.
        "Sending PUBACK to acl (m2, rc135)",
        "Dropped too large PUBLISH from acl (d0, q0, r0, m0, 'open/big', ... (16 bytes))",
        "Received PUBLISH from acl (d0, q1, r0, m5, 'open/ok', ... (3 bytes))",
        "\topen/# (QoS 2)",
        "\tsecret/#",
    ]
    if v == 4:
        lines += [
            "Dropped too large PUBLISH from acl (d0, q1, r0, m3, 'open/big', ... (16 bytes))",
            "Sending PUBACK to acl (m3, rc149)",
            "Sending PUBREC to acl (m4, rc149)",
        ]
    return lines


REFUSAL_FILES = {
    "acl": "topic readwrite open/#\n",
    "passwd": password_file({"u": "right"}),
}
REFUSAL_CONF = [
    "log_type debug",
    "acl_file {dir}/acl",
    "password_file {dir}/passwd",
    "message_size_limit 10",
]


# --------------------------------------------------------------------------
# Normalising and grouping a log
# --------------------------------------------------------------------------

STAMP = re.compile(r"^\d+: ")
STARTUP = re.compile(r"^(?:\S+ version \S+ running|Shard threads pinned)")
BLOCK = re.compile(r"^(?:New client connected from \S+ as|Received (?:UN)?SUBSCRIBE from"
                   r"|Sending CONNACK to) (\S+)")
ABOUT = re.compile(r"^(?:Received \S+ from|Sending \S+ to|Denied PUBLISH from"
                   r"|Dropped too large PUBLISH from|Client) (\S+)")
# Packet ids the broker chose: in what it sends, and in the client's answers to it.
SERVER_MID = re.compile(r"^(Sending PUBLISH to \S+ \(d\d, q[12], r\d, m|Sending PUBREL to \S+ \(m"
                        r"|Received PUB(?:ACK|REC|COMP) from \S+ \(Mid: )(\d+)")


def client_lines(log: str) -> dict:
    """The log's lines after start-up, normalised and grouped by client."""
    lines = [STAMP.sub("", line) for line in log.splitlines()]
    # From the first client's first line: the fixture's port probe before it is a
    # connection without CONNECT, which the two brokers log differently.
    start = next((i for i, line in enumerate(lines) if BLOCK.match(line)), len(lines))
    autos: dict = {}

    def auto(match):
        return autos.setdefault(match.group(0), f"auto-{len(autos) + 1}")

    groups = collections.defaultdict(list)
    block_owner = "-"
    mids: dict = collections.defaultdict(dict)
    for line in lines[start:]:
        line = re.sub(r"auto-[0-9A-Fa-f-]{36}", auto, line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)
        line = re.sub(r" on port \d+\.$", " on port <port>.", line)
        if "terminating" in line:
            break
        if STARTUP.match(line) or line.startswith("New connection from"):
            # A broker accepts connections a little before it says it runs, and the
            # fixture's port probe (a connection without CONNECT) may be logged late:
            # neither is about the script's clients.
            continue
        owner = None
        if line.startswith(("\t", "Will message specified", "No will message specified")):
            owner = block_owner
        elif (block := BLOCK.match(line)) is not None:
            owner = block_owner = block.group(1)
        elif (about := ABOUT.match(line)) is not None:
            owner = about.group(1)
        elif line.split(" ", 1)[0] in groups:
            owner = line.split(" ", 1)[0]  # `<id> <qos> <filter>`, `<id> <filter>`
        else:
            owner = "-"
        if (mid := SERVER_MID.match(line)) is not None:
            ids = mids[owner]
            n = ids.setdefault(mid.group(2), len(ids) + 1)
            line = line[:mid.start(2)] + f"<{n}>" + line[mid.end(2):]
        groups[owner].append(line)
    groups.pop("<unknown>", None)  # the probe, or a client refused before it had an id
    return dict(groups)


def test_client_lines_normalisation():
    log = "\n".join([
        "1700000000: mosquitto version 2.0.11 running",
        "1700000001: New connection from 127.0.0.1:39999 on port 1883.",
        "1700000001: Client <unknown> closed its connection.",
        "1700000001: New client connected from 127.0.0.1:40000 as "
        "auto-9CB3BA29-E8E6-9F60-877D-95B21BF102B5 (p5, c1, k60).",
        "1700000001: New connection from 127.0.0.1:40001 on port 1883.",
        "1700000001: culex version 0.1.0 running (2 shards)",
        "1700000001: No will message specified.",
        "1700000001: Sending CONNACK to auto-9CB3BA29-E8E6-9F60-877D-95B21BF102B5 (0, 0)",
        "1700000001: New client connected from 127.0.0.1:40001 as s (p2, c1, k60).",
        "1700000001: Will message specified (1 bytes) (r0, q0).",
        "1700000002: Sending PUBLISH to s (d0, q1, r0, m7, 't', ... (1 bytes))",
        "1700000002: \tw",
        "1700000002: Received PUBACK from s (Mid: 7, RC:0)",
        "1700000002: s 1 t/#",
        "1700000002: Sending PUBACK to s (m7, rc0)",
        "1700000002: Client <unknown> closed its connection.",
    ])
    assert client_lines(log) == {
        "auto-1": ["New client connected from 127.0.0.1:<port> as auto-1 (p5, c1, k60).",
                   "No will message specified.", "Sending CONNACK to auto-1 (0, 0)"],
        "s": ["New client connected from 127.0.0.1:<port> as s (p2, c1, k60).",
              "Will message specified (1 bytes) (r0, q0).",
              "Sending PUBLISH to s (d0, q1, r0, m<1>, 't', ... (1 bytes))", "\tw",
              "Received PUBACK from s (Mid: <1>, RC:0)", "s 1 t/#",
              "Sending PUBACK to s (m7, rc0)"],
    }


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


def run_script(start_broker, kind, script, v, conf, files=None):
    broker = start_broker(kind, conf, files)
    script(broker, v)
    return broker.log()


@pytest.fixture(scope="module")
def mosquitto_logs():
    """Mosquitto's log per (script, version), run once per module."""
    from conftest import Broker
    cache: dict = {}
    brokers = []

    def get(script, v, conf, files=None):
        key = (script.__name__, v)
        if key not in cache:
            broker = Broker("mosquitto", conf, files)
            brokers.append(broker)
            script(broker, v)
            cache[key] = broker.log()
        return cache[key]

    yield get
    for broker in brokers:
        broker.cleanup()


def check(kind, log, expected, reference):
    lines = [STAMP.sub("", line) for line in log.splitlines()]
    missing = [line for line in expected if line not in lines]
    assert not missing, f"{kind} did not log {missing}:\n{log}"
    if kind != "mosquitto":
        ours, theirs = client_lines(log), client_lines(reference())
        for who in sorted(set(ours) | set(theirs)):
            assert ours.get(who) == theirs.get(who), f"lines about {who!r} differ"


@pytest.mark.parametrize("v", [4, 5])
def test_packet_lines_with_log_type_all(v, broker_kind, start_broker, mosquitto_logs):
    conf = ["log_type all"]
    log = run_script(start_broker, broker_kind, main_script, v, conf)
    expected = MAIN_LINES + [f"Sending PUBACK to pub (m7, rc{16 if v == 5 else 0})"]
    check(broker_kind, log, expected, lambda: mosquitto_logs(main_script, v, conf))


@pytest.mark.parametrize("v", [4, 5])
def test_refusal_lines_with_log_type_debug(v, broker_kind, start_broker, mosquitto_logs):
    log = run_script(start_broker, broker_kind, refusals_script, v, REFUSAL_CONF, REFUSAL_FILES)
    lines = [STAMP.sub("", line) for line in log.splitlines()]
    assert not any(line.startswith("New client connected") for line in lines), \
        "log_type debug alone logs no notice lines"
    check(broker_kind, log, refusals_lines(v),
          lambda: mosquitto_logs(refusals_script, v, REFUSAL_CONF, REFUSAL_FILES))


def test_debug_lines_follow_log_type_on_reload(broker_kind, start_broker):
    """Off by default; on once `log_type all` is added and SIGHUP applied; off again
    after it is removed. A line is written before the packet it is about goes out,
    so "PUBACK received and no line" is a definite observation; the reload itself
    is asynchronous, so each step polls (bounded) until the new setting shows."""
    broker = start_broker(broker_kind)
    # Both brokers handle signals once they said they run (before, SIGHUP kills).
    assert _waited(lambda: re.search(r"version \S+ running", broker.log())), broker.log()
    base = broker.conf_path.read_text()
    c = Client(broker, 4)
    c.connect("reloader")
    sent = iter(range(1, 10_000))

    def logged():
        n = next(sent)
        c.publish("t/reload", b"x", qos=1, packet_id=n)
        c.take("PUBACK")
        line = f"Received PUBLISH from reloader (d0, q1, r0, m{n}, 't/reload', ... (1 bytes))"
        return line in broker.log()

    def reload(text):
        broker.conf_path.write_text(text)
        broker.proc.send_signal(signal.SIGHUP)

    assert not logged(), "debug lines are off by default"
    reload(base + "log_type all\n")
    assert _waited(logged), "debug lines did not start after SIGHUP"
    assert "Sending PUBACK to reloader (m" in broker.log()
    reload(base)
    assert _waited(lambda: not logged()), "debug lines did not stop after SIGHUP"
    c.disconnect()


def _waited(pred):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()
