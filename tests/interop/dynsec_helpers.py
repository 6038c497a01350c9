"""Shared helpers for the dynamic-security end-to-end tests (test_dynsec*.py).

Owns: starting a broker with the dynamic-security module (Culex recognises Mosquitto's
plugin path by its basename; Mosquitto loads Debian's real plugin), the initial
`dynamic-security.json` made by Debian's own `mosquitto_ctrl dynsec init` (Mosquitto
2.0.11 does not bootstrap a missing file), a raw admin client on the
`$CONTROL/dynamic-security/v1` API, a wrapper around the `mosquitto_ctrl dynsec ...`
command line, and small "what does a client see" probes (CONNACK code, kicked or not).
Called by: test_dynsec.py (both broker kinds) and the Culex-only parts in it.

Nothing here asserts broker behaviour except where a helper's name says so
(`expect_kicked`, `expect_not_kicked`, `login`); the tests own every expectation.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import mqttraw as m
from conftest import REPO, missing, require_tool

PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
FILE_NAME = "dynamic-security.json"
ADMIN_PASSWORD = "adminpass123"
REQUEST_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"
# The golden captures of Debian Mosquitto 2.0.11 (a copy of shared/spec/dynsec-golden).
GOLDEN = REPO / "shards" / "src" / "dynsec" / "testdata" / "golden"
TOOL_TIMEOUT = 20

# CONNACK refusal codes dynsec produces (spec §9): v5 0x87 Not authorized, v3.1.1 rc 5.
REFUSED = {5: 0x87, 4: 5, 3: 5}

_init_cache: dict[str, bytes] = {}
_ids = itertools.count(1)
_session_tags = itertools.count(1)


def init_file(password: str = ADMIN_PASSWORD) -> bytes:
    """Bytes of a file written by `mosquitto_ctrl dynsec init <file> admin <password>`
    (spec §13.1): client `admin` with role `admin` (the dynsec control topics, `$SYS/#`,
    receive/subscribe `#`), default access send deny / receive allow / subscribe deny /
    unsubscribe allow. Made once per password per session."""
    if password not in _init_cache:
        tool = require_tool("mosquitto_ctrl")
        with tempfile.TemporaryDirectory(prefix="dynsec-init-") as d:
            path = Path(d) / FILE_NAME
            r = subprocess.run([tool, "dynsec", "init", str(path), "admin", password],
                               capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                               stdin=subprocess.DEVNULL)
            assert path.exists(), f"mosquitto_ctrl dynsec init failed: {r.stdout}{r.stderr}"
            _init_cache[password] = path.read_bytes()
    return _init_cache[password]


def dynsec_lines(anonymous: bool = False, user_root: bool = True) -> list[str]:
    """The configuration both brokers get (spec §2). `user root` keeps Mosquitto 2.0.11
    able to rewrite the root-owned file the fixture created (it refuses to save
    otherwise); Culex-only tests leave it out to run as the unprivileged user."""
    lines = [f"plugin {PLUGIN}",
             "plugin_opt_config_file {dir}/" + FILE_NAME,
             f"allow_anonymous {'true' if anonymous else 'false'}"]
    if user_root:
        lines.append("user root")
    return lines


def start_dynsec(start_broker, kind: str, anonymous: bool = False, extra=(), file=True,
                 user_root: bool = True, env=None):
    """A broker of `kind` with dynamic security on, loaded from the `dynsec init` file
    (`file=False`: no file, for the bootstrap tests; bytes: that content)."""
    if kind == "mosquitto" and not os.path.exists(PLUGIN):
        missing(f"{PLUGIN} (apt-get install mosquitto)")
    files = {}
    if file is True:
        files[FILE_NAME] = init_file()
    elif file:
        files[FILE_NAME] = file
    return start_broker(kind, dynsec_lines(anonymous, user_root) + list(extra),
                        extra_files=files, anonymous=False, env=env)


def dynsec_path(broker) -> Path:
    return broker.dir / FILE_NAME


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


def new_client(broker, version=5, port=None, label="") -> m.RawClient:
    return m.RawClient(broker.host, port or broker.port, version, label=label)


def connack(broker, username=None, password=None, client_id=None, version=5, port=None) -> int:
    """The CONNACK reason code a client gets (the connection is closed afterwards)."""
    c = new_client(broker, version, port)
    try:
        ack = c.connect(client_id if client_id is not None else f"probe-{next(_ids)}",
                        username=username, password=password)
        return ack["reason_code"]
    finally:
        c.close()


def login(broker, username=None, password=None, client_id=None, version=5, port=None,
          will=None, label="") -> m.RawClient:
    """A connected client; fails the test if the CONNACK is not a success."""
    c = new_client(broker, version, port, label or username or "anon")
    cid = client_id if client_id is not None else f"{username or 'anon'}-{next(_ids)}"
    ack = c.connect(cid, username=username, password=password, will=will)
    assert ack["reason_code"] == 0, \
        f"{username!r} could not log in on {broker.kind}: CONNACK {ack['reason_code']:#x}"
    return c


def expect_kicked(client: m.RawClient, timeout=5.0) -> None:
    """Kicked (spec §10): MQTT v5 gets DISCONNECT 0x98 (Administrative action) and the
    close; MQTT 3.1.1 just sees the socket closed."""
    disc = client.expect_closed(timeout)
    if client.version == 5:
        assert disc is not None and disc["reason_code"] == 0x98, \
            f"[{client.label}] expected DISCONNECT 0x98 before the close, got {m.show(disc)}"
    else:
        assert disc is None, f"[{client.label}] MQTT 3.1.1 got a DISCONNECT packet"


def expect_not_kicked(client: m.RawClient, settle=0.3) -> None:
    """Still connected: after `settle` seconds a PINGREQ is answered."""
    time.sleep(settle)
    client.send(m.pingreq())
    client.expect("PINGRESP", timeout=5)


def publish_rc(client: m.RawClient, topic: str, payload=b"x", packet_id=1) -> int:
    """QoS 1 publish; the PUBACK reason code (0 on MQTT 3.1.1, which has none)."""
    client.publish(topic, payload, qos=1, packet_id=packet_id)
    return client.expect("PUBACK", packet_id=packet_id)["reason_code"]


def subscribe_codes(client: m.RawClient, *filters, packet_id=1, qos=1) -> list[int]:
    return client.subscribe(packet_id, [(f, qos) for f in filters])["reason_codes"]


# --------------------------------------------------------------------------
# The control API
# --------------------------------------------------------------------------


class Admin:
    """A raw MQTT v5 client logged in as an administrator and subscribed to the
    response topic. `request()` sends one request (QoS 1) and returns the response
    entries; `send_raw()` sends any payload and returns the raw response bytes."""

    def __init__(self, broker, username="admin", password=ADMIN_PASSWORD, port=None,
                 version=5, request_topic=REQUEST_TOPIC, response_topic=RESPONSE_TOPIC):
        self.broker = broker
        self.request_topic = request_topic
        self.response_topic = response_topic
        self.client = login(broker, username, password, port=port, version=version,
                            label=f"{username}-ctrl")
        codes = subscribe_codes(self.client, response_topic, qos=0)
        assert codes == [0], f"admin could not subscribe to the response topic: {codes}"
        self._pid = 1
        # Responses go to every session subscribed to the response topic: tags are unique
        # across sessions, so one session never takes another's response for its own.
        self._tag = _session_tags

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def drain(self, duration=0.0) -> list[dict]:
        """Packets already waiting (or arriving within `duration`)."""
        out = []
        while True:
            p = self.client.recv_packet(duration)
            if p is None:
                return out
            out.append(p)

    def send_raw(self, payload: bytes, qos=1, timeout=10.0, match=None) -> bytes:
        """Publish `payload` to the request topic; return the next response payload
        (or the first one for which `match(payload)` is true)."""
        self.drain()
        pid = self._next_pid() if qos else None
        self.client.publish(self.request_topic, payload, qos=qos, packet_id=pid)
        acked = qos == 0
        response = None
        deadline = time.monotonic() + timeout
        while not (acked and response is not None):
            remaining = deadline - time.monotonic()
            assert remaining > 0, (f"no {'PUBACK' if not acked else 'response'} within "
                                   f"{timeout}s for {payload[:200]!r}")
            p = self.client.recv_packet(remaining)
            if p is None:
                continue
            if p["type"] == "PUBACK" and p["packet_id"] == pid:
                assert p["reason_code"] == 0, \
                    f"control publish PUBACK {p['reason_code']:#x} (spec §3.2: always 0)"
                acked = True
            elif (p["type"] == "PUBLISH" and p["topic"] == self.response_topic
                  and response is None
                  and (match is None or match(p["payload"]))):
                response = p["payload"]
        return response

    def request(self, *commands, timeout=10.0) -> list[dict]:
        """Send the commands in one request; return the response entries. Commands
        without a correlationData get a unique one, so that responses to other admin
        sessions (mosquitto_ctrl runs) are never mistaken for ours."""
        cmds = []
        for c in commands:
            c = dict(c)
            c.setdefault("correlationData", f"t{next(self._tag)}")
            cmds.append(c)
        want = cmds[0]["correlationData"] if cmds else None

        def match(payload):
            try:
                entries = json.loads(payload)["responses"]
            except (ValueError, KeyError, TypeError):
                return False
            return not cmds or (entries and entries[0].get("correlationData") == want)

        raw = self.send_raw(json.dumps({"commands": cmds}).encode(), timeout=timeout,
                            match=match)
        return json.loads(raw)["responses"]

    def ok(self, command: str, **fields):
        """One command that must succeed; returns its `data` (or None)."""
        (entry,) = self.request({"command": command, **fields})
        assert "error" not in entry, f"{command} {fields}: {entry['error']}"
        assert entry["command"] == command
        return entry.get("data")

    def error(self, command: str, **fields) -> str:
        """One command that must fail; returns the error text."""
        (entry,) = self.request({"command": command, **fields})
        assert "error" in entry, f"{command} {fields} succeeded: {entry}"
        return entry["error"]

    def snapshot(self) -> dict:
        """Everything the API can show, for before/after comparisons."""
        return {
            "clients": self.ok("listClients", verbose=True),
            "groups": self.ok("listGroups", verbose=True),
            "roles": self.ok("listRoles", verbose=True),
            "default": self.ok("getDefaultACLAccess"),
            "anonymous": self.ok("getAnonymousGroup"),
        }

    def close(self):
        self.client.disconnect()


def ctrl(broker, *args, user="admin", password=ADMIN_PASSWORD, port=None, check=True):
    """Run Debian's `mosquitto_ctrl -h .. -p .. -u .. -P .. dynsec <args>` (MQTT v5,
    spec §15). With `check`, the command must exit 0 and print no `<command>: Error:`;
    returns the CompletedProcess (stdout/stderr as text)."""
    tool = require_tool("mosquitto_ctrl")
    cmd = [tool, "-h", broker.host, "-p", str(port or broker.port), "-u", user, "-P", password,
           "dynsec", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0 and f"{args[0]}: Error" not in r.stderr \
            and "Error" not in r.stdout, \
            f"{' '.join(args)} on {broker.kind}: rc={r.returncode}\n{r.stdout}{r.stderr}"
    return r


def ctrl_error(broker, *args, **kw) -> str:
    """Run a mosquitto_ctrl command the broker must refuse; return the error text
    (`<command>: Error: <text>` on stderr, exit code 0 — spec §15)."""
    r = ctrl(broker, *args, check=False, **kw)
    prefix = f"{args[0]}: Error: "
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(prefix)]
    assert r.returncode == 0 and lines, \
        f"{' '.join(args)} on {broker.kind} did not fail: rc={r.returncode}\n{r.stdout}{r.stderr}"
    return lines[0][len(prefix):]


def golden(number: int) -> dict:
    """Golden capture NNN (dict with request/response_raw/...)."""
    (path,) = GOLDEN.glob(f"{number:03d}-*.json")
    return json.loads(path.read_text())


def golden_payload(case: dict) -> bytes:
    """The exact request bytes of a golden capture (its README: json/text/base64)."""
    import base64
    fmt = case["request_format"]
    if fmt == "text":
        return case["request"].encode()
    if fmt == "base64":
        return base64.b64decode(case["request_raw_base64"])
    return json.dumps(case["request"], separators=(",", ":"), ensure_ascii=False).encode()


def file_stamp(path: Path):
    """What changes when a file is rewritten: bytes, inode, mtime."""
    st = os.stat(path)
    return path.read_bytes(), st.st_ino, st.st_mtime_ns
