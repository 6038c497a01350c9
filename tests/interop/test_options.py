"""`mosquitto.conf` options whose effect no other file shows, observed by real clients on
both brokers where Mosquitto 2.0.11 has the option (Culex only for Mosquitto 2.1 options and
Culex's own): client id rules, offline queue and in-flight limits, message size, QoS
upgrade, logging options, syslog facility, pid file, user, include_dir, the legacy default
listener, plugin aliases and 2.1 plugin lines, per-listener 2.1 options, session
expiration, and that options Culex does not apply are warned about or refused.

Owns: the user-visible effect of those options. Listener, TLS, WebSocket, persistence,
`$SYS` and dynamic-security options have their own files; docs/configuration.md names, for
every option, the test that shows its effect.
Called by: pytest, once per broker kind.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import mqttraw as m
from conftest import broker_binary, free_port, require_tool
from dynsec_helpers import ADMIN_PASSWORD, FILE_NAME, PLUGIN, init_file
from test_differential import password_file

WAIT = 5.0


def threads(kind):
    """Culex runs two shards: the option must hold on whichever one a client lands."""
    return ["threads 2"] if kind == "culex" else []

# (protocol version, client id) -> accepted?
PREFIX_CASES = [
    (3, "sensor-1", True), (3, "xyz", False),
    (4, "sensor-1", True), (4, "xyz", False), (4, "sensor", False), (4, "Sensor-1", False),
    (4, "", False),  # the assigned id (auto-...) does not carry the prefix either
    (5, "sensor-1", True), (5, "xyz", False), (5, "", False),
]


def test_clientid_prefixes_refuses_other_ids(start_broker, broker_kind):
    """`clientid_prefixes sensor-`: a client whose id does not start with the prefix is
    refused with CONNACK "not authorised" (5 on 3.1/3.1.1, 0x87 on 5.0), as Mosquitto does;
    the option is deprecated in Mosquitto, and both brokers say so."""
    b = start_broker(broker_kind, [*threads(broker_kind), "clientid_prefixes sensor-"])
    seen = []
    for version, client_id, accepted in PREFIX_CASES:
        with m.RawClient(b.host, b.port) as c:
            connack = c.connect(client_id, version=version)
            seen.append((version, client_id, connack["reason_code"]))
            if accepted:
                c.subscribe(1, [("prefix/t", 0)])
                c.publish("prefix/t", b"in")
                assert c.expect("PUBLISH")["payload"] == b"in"
            else:
                c.expect_closed()
    expected = [(v, cid, 0 if ok else (0x87 if v == 5 else 5)) for v, cid, ok in PREFIX_CASES]
    assert seen == expected
    assert "The 'clientid_prefixes' option is now deprecated" in b.log()
    assert "disconnected, not authorised." in b.log(), b.log()


def only_culex(kind, why):
    if kind != "culex":
        pytest.skip(f"Mosquitto 2.0.11 {why}")


# --------------------------------------------------------------------------
# Queues and limits
# --------------------------------------------------------------------------


def offline_delivery(b, payloads, count, qos=1):
    """The first `count` payloads a persistent subscriber finds on reconnecting after
    `payloads` were published on its topic while it was away, and whether anything else
    came: after acknowledging them it publishes a marker to itself, which must come next."""
    with m.RawClient(b.host, b.port) as sub:
        sub.connect("queue-sub", clean=False)
        sub.subscribe(1, [("queue/t", 1), ("queue/marker", 0)])
        sub.disconnect()
    with m.RawClient(b.host, b.port) as pub:
        pub.connect("queue-pub")
        for i, payload in enumerate(payloads, 1):
            pub.publish("queue/t", payload, qos=qos, packet_id=i if qos else None)
            if qos:
                pub.expect("PUBACK", packet_id=i)
        pub.publish("queue/sync", b"", qos=1, packet_id=99)
        pub.expect("PUBACK", packet_id=99)
    got = []
    with m.RawClient(b.host, b.port) as sub:
        assert sub.connect("queue-sub", clean=False)["session_present"]
        for _ in range(count):
            p = sub.expect("PUBLISH")
            got.append(p["payload"])
            if p["qos"]:
                sub.send(m.puback(p["packet_id"]))
        sub.publish("queue/marker", b"end")
        p = sub.expect("PUBLISH")
        got.append("marker" if p["topic"] == "queue/marker" else p["payload"])
    return got


@pytest.mark.parametrize("case", ["max_queued_messages", "max_queued_bytes",
                                  "queue_qos0_messages", "qos0-by-default"])
def test_offline_queue_options(start_broker, broker_kind, case):
    """What a persistent session finds after being away: `max_queued_messages 2` keeps the
    first two of five; `max_queued_bytes 250` keeps the 100-byte messages that fit
    (Mosquitto admits one more, checking the bytes already queued before adding one);
    QoS 0 messages are queued only with `queue_qos0_messages true`."""
    hundred = [bytes([65 + i]) * 100 for i in range(5)]
    config, payloads, qos, expected = {
        "max_queued_messages": ("max_queued_messages 2", hundred, 1, hundred[:2]),
        "max_queued_bytes": ("max_queued_bytes 250", hundred, 1, hundred[:2]),
        "queue_qos0_messages": ("queue_qos0_messages true", [b"a", b"b"], 0, [b"a", b"b"]),
        "qos0-by-default": ("queue_qos0_messages false", [b"a", b"b"], 0, []),
    }[case]
    if case == "max_queued_bytes" and broker_kind == "mosquitto":
        expected = hundred[:3]
    b = start_broker(broker_kind, [*threads(broker_kind), config])
    assert offline_delivery(b, payloads, len(expected), qos) == [*expected, "marker"]


def test_max_inflight_bytes_limits_unacknowledged_bytes(start_broker, broker_kind):
    """`max_inflight_bytes 250`: a subscriber that acknowledges nothing gets fewer than all
    five 100-byte QoS 1 messages (Culex: the two that fit); acknowledging brings the rest."""
    b = start_broker(broker_kind, ["max_inflight_bytes 250"])
    with m.RawClient(b.host, b.port) as sub, m.RawClient(b.host, b.port) as pub:
        sub.connect("inflight-sub")
        sub.subscribe(1, [("inflight/t", 1)])
        pub.connect("inflight-pub")
        for i in range(1, 6):
            pub.publish("inflight/t", bytes([64 + i]) * 100, qos=1, packet_id=i)
            pub.expect("PUBACK", packet_id=i)
        first = []
        while (p := sub.recv_packet(1.0)) is not None:  # the window, then silence
            first.append(p)
        assert 0 < len(first) < 5, [p["payload"][:1] for p in first]
        if broker_kind == "culex":
            assert len(first) == 2, [p["payload"][:1] for p in first]
        got = list(first)
        for p in got:
            sub.send(m.puback(p["packet_id"]))
        while len(got) < 5:
            p = sub.expect("PUBLISH")
            got.append(p)
            sub.send(m.puback(p["packet_id"]))
        assert [p["payload"][:1] for p in got] == [b"A", b"B", b"C", b"D", b"E"]


def test_message_size_limit_drops_larger_payloads(start_broker, broker_kind):
    """`message_size_limit 1000`: a 1001-byte payload (QoS 0 or 1) reaches no subscriber,
    a 1000-byte one does; a 3.1.1 publisher still gets its PUBACK."""
    b = start_broker(broker_kind, ["message_size_limit 1000"])
    with m.RawClient(b.host, b.port) as sub, m.RawClient(b.host, b.port) as pub:
        sub.connect("size-sub")
        sub.subscribe(1, [("size/t", 1)])
        pub.connect("size-pub")
        pub.publish("size/t", b"x" * 1001)
        pub.publish("size/t", b"y" * 1001, qos=1, packet_id=1)
        assert pub.expect("PUBACK")["packet_id"] == 1
        pub.publish("size/t", b"z" * 1000, qos=1, packet_id=2)
        assert pub.expect("PUBACK")["packet_id"] == 2
        assert sub.expect("PUBLISH")["payload"] == b"z" * 1000


@pytest.mark.parametrize("upgrade", [True, False])
def test_upgrade_outgoing_qos(start_broker, broker_kind, upgrade):
    """A QoS 0 message to a QoS 2 subscription arrives at QoS 2 with
    `upgrade_outgoing_qos true`, at QoS 0 without."""
    b = start_broker(broker_kind, [f"upgrade_outgoing_qos {str(upgrade).lower()}"])
    with m.RawClient(b.host, b.port) as sub, m.RawClient(b.host, b.port) as pub:
        sub.connect("upgrade-sub")
        sub.subscribe(1, [("upgrade/t", 2)])
        pub.connect("upgrade-pub")
        pub.publish("upgrade/t", b"q0")
        assert sub.expect("PUBLISH")["qos"] == (2 if upgrade else 0)


@pytest.mark.parametrize("option", ["max_qos", "maximum_qos"])
def test_max_qos_and_its_alias(start_broker, broker_kind, option):
    """`max_qos 1` (or its alias `maximum_qos`): 5.0 clients are told Maximum QoS 1 and a
    QoS 2 subscription is granted QoS 1."""
    b = start_broker(broker_kind, [f"{option} 1"])
    with m.RawClient(b.host, b.port, version=5) as c:
        assert c.connect("max-qos", version=5)["properties"]["maximum_qos"] == 1
        assert c.subscribe(1, [("maxqos/t", 2)])["reason_codes"] == [1]


def test_retained_persistence_keeps_retained_messages(start_broker, broker_kind):
    """`retained_persistence true`, Mosquitto's other name for `persistence true`."""
    b = start_broker(broker_kind, ["retained_persistence true", "persistence_location {dir}/"])
    with m.RawClient(b.host, b.port) as c:
        c.connect("retain-writer")
        c.publish("kept/t", b"across restarts", qos=1, packet_id=1, retain=True)
        c.expect("PUBACK", packet_id=1)
    b.restart()
    with m.RawClient(b.host, b.port) as c:
        c.connect("retain-reader")
        c.subscribe(1, [("kept/t", 0)])
        got = c.expect("PUBLISH")
        assert (got["payload"], got["retain"]) == (b"across restarts", True)


# --------------------------------------------------------------------------
# Client ids
# --------------------------------------------------------------------------


def test_use_username_as_clientid(start_broker, broker_kind):
    """With `use_username_as_clientid true` two clients with different ids but the same user
    name are one client: the second takes the first one's place."""
    b = start_broker(broker_kind, ["use_username_as_clientid true"])
    first = m.RawClient(b.host, b.port)
    try:
        assert first.connect("id-one", username="alice")["reason_code"] == 0
        with m.RawClient(b.host, b.port) as second:
            assert second.connect("id-two", username="alice")["reason_code"] == 0
            first.expect_closed()
    finally:
        first.close()
    assert re.search(r"New client connected from \S+ as alice ", b.log()), b.log()
    assert "as id-one" not in b.log()


def test_auto_id_prefix(start_broker, broker_kind):
    """The id assigned to a 5.0 client that sent none starts with `auto_id_prefix`."""
    b = start_broker(broker_kind, ["auto_id_prefix node7-"])
    with m.RawClient(b.host, b.port, version=5) as c:
        assigned = c.connect("", version=5)["properties"]["assigned_client_identifier"]
    assert assigned.startswith("node7-") and len(assigned) > len("node7-"), assigned


def test_max_topic_alias(start_broker, broker_kind):
    """`max_topic_alias 3` is announced in CONNACK and alias 3 is usable."""
    b = start_broker(broker_kind, ["max_topic_alias 3"])
    with m.RawClient(b.host, b.port, version=5) as c:
        assert c.connect("alias-client", version=5)["properties"]["topic_alias_maximum"] == 3
        c.subscribe(1, [("alias/t", 0)])
        c.publish("alias/t", b"aliased", properties={"topic_alias": 3})
        c.publish("", b"again", properties={"topic_alias": 3})
        assert [c.expect("PUBLISH")["payload"] for _ in range(2)] == [b"aliased", b"again"]


# --------------------------------------------------------------------------
# Logging, process
# --------------------------------------------------------------------------

LOGGING = {
    # option line: (client line expected?, prefix pattern of every line)
    "connection_messages false": (False, r"\d+: "),
    "log_timestamp false": (True, r"(?!\d+: )"),
    "log_timestamp_format %Y-%m-%dT%H:%M:%S": (True, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: "),
    "log_type error": (False, r""),
}


@pytest.mark.parametrize("option", sorted(LOGGING))
def test_logging_options(start_broker, broker_kind, option):
    """Which lines are written and how they start: `connection_messages false` drops the
    client lines, `log_timestamp false` the epoch prefix, `log_timestamp_format` makes it a
    date, `log_type error` leaves errors only."""
    connected_line, prefix = LOGGING[option]
    b = start_broker(broker_kind, [option])
    with m.RawClient(b.host, b.port) as c:
        c.connect("log-option-client")
        c.disconnect()
    # A line written after the client's ends the wait: a refused client at error level
    # has no line either, so wait for the broker to have answered a second client.
    with m.RawClient(b.host, b.port) as c:
        c.connect("log-option-after")
    if connected_line:
        assert b.wait_log("Client log-option-after"), b.log()
    lines = [line for line in b.log().splitlines() if line]
    assert any("log-option-client" in line for line in lines) == connected_line, lines
    if option == "log_type error":
        assert lines == [], lines
    for line in lines:
        assert re.match(prefix, line), (option, line)


def test_log_facility_reaches_syslog(broker_kind):
    """`log_dest syslog` with `log_facility 3`: lines reach syslog (/dev/log) as facility
    local3, named after the broker with its pid; without log_facility, facility daemon.
    Each broker runs in its own mount namespace whose /dev/log is this test's socket."""
    require_tool("unshare")
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a private /dev/log")
    name = "mosquitto" if broker_kind == "mosquitto" else "culex"
    for facility_line, facility in (("log_facility 3", 19), ("", 3)):
        with tempfile.TemporaryDirectory(prefix="syslog-") as tmp:
            os.chmod(tmp, 0o755)
            dev = Path(tmp) / "dev"
            dev.mkdir()
            log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            log.bind(str(dev / "log"))
            os.chmod(dev / "log", 0o666)
            log.settimeout(WAIT)
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(f"listener {free_port()} 127.0.0.1\nlog_dest syslog\n"
                            f"{facility_line}\n")
            proc = subprocess.Popen(
                ["unshare", "-m", "sh", "-c",
                 f'mount --bind "{dev}" /dev && exec "{broker_binary(broker_kind)}" -c "{conf}"'],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                datagram = log.recv(4096).decode(errors="replace")
            finally:
                proc.kill()
                proc.communicate(timeout=WAIT)
                log.close()
        found = re.match(r"<(\d+)>.*? (\w+)\[(\d+)\]: ", datagram)
        assert found, datagram
        assert (int(found[1]) >> 3, found[2]) == (facility, name), datagram
        assert "starting" in datagram, datagram


def test_pid_file_holds_the_process_id(start_broker, broker_kind):
    b = start_broker(broker_kind, ["pid_file {dir}/broker.pid"])
    pid_file = b.dir / "broker.pid"
    assert pid_file.read_text().strip() == str(b.pid)


def test_user_drops_privileges(start_broker, broker_kind):
    """Started as root with `user nobody`, the broker runs as nobody once it serves."""
    if os.geteuid() != 0:
        pytest.skip("the broker must start as root to drop privileges")
    b = start_broker(broker_kind, ["user nobody"])
    status = Path(f"/proc/{b.pid}/status").read_text()
    real, effective = re.search(r"Uid:\s+(\d+)\s+(\d+)", status).groups()
    assert (real, effective) == ("65534", "65534"), status


def test_include_dir_adds_the_directorys_options(start_broker, broker_kind):
    """`include_dir`: a listener defined in conf.d/extra.conf serves clients."""
    port = free_port()
    b = start_broker(broker_kind, ["include_dir {dir}/conf.d"],
                     {"conf.d/extra.conf": f"listener {port} 127.0.0.1\n"})
    deadline = time.monotonic() + WAIT
    while True:
        try:
            with m.RawClient(b.host, port) as c:
                assert c.connect("included-listener")["reason_code"] == 0
            break
        except OSError:
            assert time.monotonic() < deadline, b.log()
            time.sleep(0.05)


def test_port_and_bind_address_make_the_default_listener(start_broker, broker_kind):
    """The deprecated `port` and `bind_address` define Mosquitto's default listener."""
    port = free_port()
    b = start_broker(broker_kind, [f"port {port}", "bind_address 127.0.0.2"])
    deadline = time.monotonic() + WAIT
    while True:
        try:
            with m.RawClient("127.0.0.2", port) as c:
                assert c.connect("default-listener")["reason_code"] == 0
            break
        except OSError:
            assert time.monotonic() < deadline, b.log()
            time.sleep(0.05)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.3", port), timeout=WAIT).close()


def test_persistent_client_expiration_removes_offline_sessions(start_broker, broker_kind):
    """`persistent_client_expiration 2s` (seconds are a Culex extension; Mosquitto's
    smallest unit is the hour, too long for a test): a persistent session away longer is
    removed."""
    only_culex(broker_kind, "accepts no unit below the hour")
    b = start_broker(broker_kind, ["persistent_client_expiration 2s"])
    with m.RawClient(b.host, b.port) as c:
        c.connect("expiring", clean=False)
        c.subscribe(1, [("expiring/t", 1)])
        c.disconnect()
    assert b.wait_log("Expiring client expiring due to timeout.", timeout=15), b.log()
    with m.RawClient(b.host, b.port) as c:
        assert not c.connect("expiring", clean=False)["session_present"]


# --------------------------------------------------------------------------
# Plugins and security lines
# --------------------------------------------------------------------------


def test_auth_plugin_and_auth_opt_are_plugin_aliases(start_broker, broker_kind):
    """The deprecated `auth_plugin`/`auth_opt_*` load dynamic security like `plugin`."""
    b = start_broker(broker_kind, [f"auth_plugin {PLUGIN}",
                                   "auth_opt_config_file {dir}/" + FILE_NAME,
                                   "allow_anonymous false", "user root"],
                     {FILE_NAME: init_file()}, anonymous=False)
    for password, expected in ((ADMIN_PASSWORD, 0), ("wrong", 0x87)):
        with m.RawClient(b.host, b.port, version=5) as c:
            ack = c.connect("alias-admin", version=5, username="admin", password=password)
            assert ack["reason_code"] == expected, (password, ack)


def test_global_plugin_loads_dynamic_security(start_broker, broker_kind):
    only_culex(broker_kind, "has no global_plugin (2.1)")
    b = start_broker(broker_kind, [f"global_plugin {PLUGIN}",
                                   "plugin_opt_config_file {dir}/" + FILE_NAME,
                                   "allow_anonymous false"],
                     {FILE_NAME: init_file()}, anonymous=False)
    for password, expected in ((ADMIN_PASSWORD, 0), ("wrong", 0x87)):
        with m.RawClient(b.host, b.port, version=5) as c:
            ack = c.connect("global-admin", version=5, username="admin", password=password)
            assert ack["reason_code"] == expected, (password, ack)


def test_plugin_load_and_plugin_use_guard_one_listener(start_broker, broker_kind):
    """Mosquitto 2.1's `plugin_load` + `plugin_use`: the password-file plugin applies to the
    listener that uses it, not to the anonymous one before it."""
    only_culex(broker_kind, "has no plugin_load/plugin_use (2.1)")
    port = free_port()
    b = start_broker(broker_kind, [
        "per_listener_settings true", "allow_anonymous true",
        "plugin_load pw /usr/lib/mosquitto_password_file.so",
        "plugin_opt_password_file {dir}/passwd",
        f"listener {port} 127.0.0.1", "plugin_use pw"],
        {"passwd": password_file({"alice": "s3cret"})}, anonymous=False)
    with m.RawClient(b.host, b.port) as c:
        assert c.connect("open-listener")["reason_code"] == 0
    for user, password, expected in (("alice", "s3cret", 0), ("alice", "nope", 5),
                                     (None, None, 5)):
        with m.RawClient(b.host, port) as c:
            ack = c.connect("guarded", username=user, password=password)
            assert ack["reason_code"] == expected, (user, password, ack)


# --------------------------------------------------------------------------
# Mosquitto 2.1 listener options (Culex only)
# --------------------------------------------------------------------------


def second_listener(start_broker, kind, *options):
    port = free_port()
    b = start_broker(kind, [f"listener {port} 127.0.0.1", *options])
    return b, port


def test_accept_protocol_versions(start_broker, broker_kind):
    only_culex(broker_kind, "has no accept_protocol_versions (2.1)")
    b, port = second_listener(start_broker, broker_kind, "accept_protocol_versions 5")
    with m.RawClient(b.host, port) as c:
        assert c.connect("v4-refused", version=4)["reason_code"] == 1
    with m.RawClient(b.host, port, version=5) as c:
        assert c.connect("v5-accepted", version=5)["reason_code"] == 0
    with m.RawClient(b.host, b.port) as c:
        assert c.connect("v4-elsewhere", version=4)["reason_code"] == 0


def test_listener_allow_anonymous(start_broker, broker_kind):
    only_culex(broker_kind, "has no listener_allow_anonymous (2.1)")
    b, port = second_listener(start_broker, broker_kind, "listener_allow_anonymous false")
    with m.RawClient(b.host, port) as c:
        assert c.connect("anonymous-refused")["reason_code"] == 5
    with m.RawClient(b.host, b.port) as c:
        assert c.connect("anonymous-elsewhere")["reason_code"] == 0


def test_listener_auto_id_prefix(start_broker, broker_kind):
    only_culex(broker_kind, "has no listener_auto_id_prefix (2.1)")
    b, port = second_listener(start_broker, broker_kind, "listener_auto_id_prefix edge-")
    for p, prefix in ((port, "edge-"), (b.port, "auto-")):
        with m.RawClient(b.host, p, version=5) as c:
            props = c.connect("", version=5)["properties"]
            assert props["assigned_client_identifier"].startswith(prefix), props


# --------------------------------------------------------------------------
# Options Culex does not apply: warned about or refused, never silent
# --------------------------------------------------------------------------

WARNED = ["check_retain_source false", "set_tcp_nodelay true", "retain_expiry_interval 60",
          "global_max_clients 10", "global_max_connections 10",
          "memory_limit 1000000", "allow_duplicate_messages true", "retry_interval 20",
          "packet_buffer_size 4096", "websockets_headers_size 1024",
          "websockets_log_level 255", "dhparamfile /etc/dh.pem", "tls_engine pkcs11",
          "tls_keyform engine", "tls_engine_kpass_sha1 da39a3ee",
          "disable_client_cert_date_checks true"]


def test_options_without_effect_are_warned_about_at_start(start_broker, broker_kind):
    """Each option Culex accepts without applying it is named in a warning on the log."""
    only_culex(broker_kind, "refuses the 2.1 ones and applies the rest")
    b = start_broker(broker_kind, WARNED)
    for line in WARNED:
        name = line.split()[0]
        assert f'Warning: option "{name}" has no effect in Culex: ' in b.log(), (name, b.log())


@pytest.mark.parametrize("option", ["enable_proxy_protocol 2",
                                    "proxy_protocol_v2_require_tls true"])
def test_proxy_protocol_is_refused(broker_kind, option):
    """Both brokers refuse to start (exit 3) naming the option and its line: Mosquitto
    2.0.11 does not know it, Culex does not implement it."""
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "mosquitto.conf"
        conf.write_text(f"listener {free_port()} 127.0.0.1\n{option}\n")
        r = subprocess.run([broker_binary(broker_kind), "-c", str(conf)],
                           capture_output=True, text=True, timeout=10)
    out = r.stdout + r.stderr
    assert r.returncode == 3, (r.returncode, out)
    assert option.split()[0] in out and f"{conf}:2" in out, out


def test_reason_strings_option(start_broker, broker_kind):
    """`reason_strings true` (Culex): a 5.0 client that asks for problem information gets a
    Reason String with the DISCONNECT for its protocol error; by default it gets the bare
    `E0 01 81` Mosquitto sends."""
    only_culex(broker_kind, "has no reason_strings option")
    for lines, expect_reason in (([], False), (["reason_strings true"], True)):
        b = start_broker(broker_kind, [*threads(broker_kind), *lines])
        with m.RawClient(b.host, b.port, version=5) as c:
            c.connect("reasons", properties={"request_problem_information": 1})
            c.send(m.subscribe(1, [("a/#/b", 0)], version=5))
            disc = c.expect_closed()
            assert disc["reason_code"] == 0x81
            assert ("reason_string" in disc["properties"]) == expect_reason, disc
