"""Behaviour seen through Debian's mosquitto_pub / mosquitto_sub / mosquitto_rr.

Owns: the command-line round trips a Mosquitto user runs against a broker
(QoS levels, MQTT 3.1/3.1.1/5.0 via -V, retained messages and -R, -C/-W
exit codes, $SYS reads, refusals, v5 user properties, request/response,
wills). Called by: pytest, once per broker kind. The tools are required:
missing tools fail under CI=true and skip otherwise.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from conftest import require_tool

TOOL_TIMEOUT = 15


class Sub:
    """mosquitto_sub running in the background; `-d` output tells us when
    the subscription is in place, the other lines are messages."""

    def __init__(self, broker, *args):
        self.proc = subprocess.Popen(
            # stdbuf: mosquitto_sub block-buffers its stdout on a pipe
            [require_tool("stdbuf"), "-oL", require_tool("mosquitto_sub"),
             "-h", broker.host, "-p", str(broker.port), "-d", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Subscribed (mid:"):
                return
        self.proc.kill()
        raise AssertionError("mosquitto_sub did not subscribe:\n" + "\n".join(self.lines))

    def finish(self, timeout=TOOL_TIMEOUT):
        """Wait for exit; return (exit code, message lines)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError("mosquitto_sub did not exit")
        lines = self.lines + out.splitlines()
        msgs = [ln for ln in lines if not (ln.startswith("Client ") or ln.startswith("Subscribed ("))]
        return self.proc.returncode, msgs

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=5)


def pub(broker, *args, check=True):
    r = subprocess.run([require_tool("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port), *args],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    if check:
        assert r.returncode == 0, f"mosquitto_pub {args}: rc={r.returncode} {r.stderr}"
    return r


def sub_once(broker, *args):
    r = subprocess.run([require_tool("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port), *args],
                       capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    return r.returncode, r.stdout.splitlines(), r.stderr


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_pub_sub_qos(broker, version, qos):
    s = Sub(broker, "-t", "cli/q", "-q", qos, "-V", version, "-C", "2", "-W", "10",
            "-F", "%t|%p|%r|%q")
    pub(broker, "-t", "cli/q", "-m", "one", "-q", qos, "-V", version)
    pub(broker, "-t", "cli/q", "-m", "two", "-q", qos, "-V", version)
    rc, msgs = s.finish()
    assert rc == 0
    assert msgs == [f"cli/q|one|0|{qos}", f"cli/q|two|0|{qos}"]


def test_retained_and_stale_filter(broker):
    pub(broker, "-t", "cli/ret", "-m", "kept", "-r", "-q", "1")
    rc, out, _ = sub_once(broker, "-t", "cli/ret", "-C", "1", "-W", "5", "-F", "%t|%p|%r")
    assert (rc, out) == (0, ["cli/ret|kept|1"])
    # -R: retained (stale) messages are not printed; a live one is, with retain 0
    s = Sub(broker, "-t", "cli/ret", "-R", "-C", "1", "-W", "10", "-F", "%p|%r")
    pub(broker, "-t", "cli/ret", "-m", "live")
    rc, msgs = s.finish()
    assert (rc, msgs) == (0, ["live|0"])
    # clear with an empty retained message
    pub(broker, "-t", "cli/ret", "-r", "-n")
    rc, out, err = sub_once(broker, "-t", "cli/ret", "-W", "1")
    assert rc == 27 and out == [] and "Timed out" in err


def test_count_and_timeout_exit_codes(broker):
    s = Sub(broker, "-t", "cli/c/#", "-C", "3", "-W", "10", "-v")
    for i in range(5):
        pub(broker, "-t", f"cli/c/{i}", "-m", str(i))
    rc, msgs = s.finish()
    assert rc == 0 and msgs == ["cli/c/0 0", "cli/c/1 1", "cli/c/2 2"]
    rc, out, err = sub_once(broker, "-t", "cli/nothing", "-W", "1")
    assert rc == 27 and "Timed out" in err


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_sys_topics_via_sub(start_broker, broker_kind, version):
    b = start_broker(broker_kind, ["sys_interval 1"])
    rc, out, _ = sub_once(b, "-t", "$SYS/broker/uptime", "-C", "1", "-W", "5", "-V", version)
    assert rc == 0 and re.fullmatch(r"\d+ seconds", out[0]), out
    rc, out, _ = sub_once(b, "-t", "$SYS/broker/version", "-C", "1", "-W", "5", "-V", version)
    assert rc == 0
    if broker_kind == "mosquitto":
        assert out == ["mosquitto version 2.0.11"]
    else:
        assert re.fullmatch(r"[a-z][a-z0-9_-]* version \d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", out[0]), out
    rc, out, _ = sub_once(b, "-t", "$SYS/broker/retained messages/count", "-C", "1", "-W", "5")
    assert rc == 0 and re.fullmatch(r"\d+", out[0])


def test_not_authorised_exit_code(start_broker, broker_kind):
    b = start_broker(broker_kind, [], anonymous=False)
    r = pub(b, "-t", "x", "-m", "y", check=False)
    assert r.returncode == 5 and "not authorised" in r.stderr.lower(), (r.returncode, r.stderr)
    r = pub(b, "-t", "x", "-m", "y", "-V", "mqttv5", check=False)
    assert r.returncode != 0 and "not authori" in r.stderr.lower(), (r.returncode, r.stderr)


def test_v5_user_properties(broker):
    s = Sub(broker, "-t", "cli/up", "-V", "mqttv5", "-C", "1", "-W", "10", "-F", "%p|%P")
    pub(broker, "-t", "cli/up", "-m", "x", "-V", "mqttv5",
        "-D", "publish", "user-property", "k", "v", "-D", "publish", "user-property", "k2", "v2")
    rc, msgs = s.finish()
    assert (rc, msgs) == (0, ["x|k:v k2:v2"])


def test_request_response_with_mosquitto_rr(broker):
    from pahoclient import PacketTypes, Paho, props
    responder = Paho(broker, "responder", "5")
    try:
        responder.connect()
        responder.subscribe("cli/req", 1)

        def on_message(client, userdata, msg):
            corr = getattr(msg.properties, "CorrelationData", None)
            rp = props(PacketTypes.PUBLISH, CorrelationData=corr) if corr else None
            client.publish(msg.properties.ResponseTopic, b"pong:" + msg.payload, qos=1, properties=rp)
        responder.c.on_message = on_message
        r = subprocess.run(
            [require_tool("mosquitto_rr"), "-h", broker.host, "-p", str(broker.port),
             "-t", "cli/req", "-e", "cli/resp", "-m", "ping", "-W", "5"],
            capture_output=True, text=True, timeout=TOOL_TIMEOUT)
        assert (r.returncode, r.stdout.strip()) == (0, "pong:ping"), r.stderr
    finally:
        responder.close()


def test_will_from_killed_subscriber(broker):
    watcher = Sub(broker, "-t", "cli/will", "-C", "1", "-W", "10", "-F", "%t|%p")
    victim = Sub(broker, "-t", "cli/other", "-k", "5", "--will-topic", "cli/will",
                 "--will-payload", "gone", "--will-qos", "1")
    victim.kill(signal.SIGKILL)
    rc, msgs = watcher.finish()
    assert (rc, msgs) == (0, ["cli/will|gone"])
