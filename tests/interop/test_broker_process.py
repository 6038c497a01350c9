"""The broker as a process: start-up errors, signals, and the log lines
operators grep (ecosystem.md section 4). Also exercises the fixture's
log accessor, stop(signal) and restart().

Called by: pytest, once per broker kind.
"""

from __future__ import annotations

import re
import signal
import socket
import time
import subprocess
import tempfile
from pathlib import Path

import pytest

import mqttraw as m
from conftest import broker_binary, free_port


def test_sigterm_is_a_clean_stop(broker, broker_kind):
    assert broker.wait_log("running", 5), broker.log()
    assert broker.stop(signal.SIGTERM) == 0
    if broker_kind == "mosquitto":
        assert "mosquitto version 2.0.11 terminating" in broker.log()
    else:
        assert re.search(r"\S+ version \S+ terminating", broker.log()), broker.log()


def test_restart_serves_again_on_same_port(broker):
    port = broker.port
    broker.restart(signal.SIGINT)
    assert broker.port == port
    c = m.RawClient(broker.host, broker.port, 4)
    assert c.connect("after-restart")["reason_code"] == 0
    c.close()


def test_connection_log_lines(broker, broker_kind):
    c = m.RawClient(broker.host, broker.port, 4)
    c.connect("logcheck", keepalive=42)
    local_port = c.sock.getsockname()[1]
    c.disconnect()
    assert broker.wait_log("logcheck", 5)
    log = broker.log()
    assert f"New connection from 127.0.0.1:{local_port} on port {broker.port}." in log
    # 2.0 prints the internal protocol number p2 for 3.1.1, 2.1 prints p4
    protos = "p2" if broker_kind == "mosquitto" else "p[24]"
    assert re.search(rf"New client connected from 127\.0\.0\.1:{local_port} as logcheck "
                     rf"\({protos}, c1, k42\)\.", log), log
    assert broker.wait_log("Client logcheck", 5) and re.search(
        r"Client logcheck (\[127\.0\.0\.1:\d+\] )?disconnected\.", broker.log()), broker.log()


def test_unknown_config_option_exits_3(broker_kind):
    binary = broker_binary(broker_kind)
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "bad.conf"
        conf.write_text(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nbogus_option 1\n")
        r = subprocess.run([binary, "-c", str(conf)], capture_output=True, text=True, timeout=10)
    out = r.stdout + r.stderr
    assert r.returncode == 3, (r.returncode, out)
    assert "bogus_option" in out and f"{conf}:3" in out, out


def test_log_dest_topic_publishes_log_lines_on_sys(start_broker, broker_kind):
    """`log_dest topic`: log lines arrive on `$SYS/broker/log/<level>` (connection lines
    at notice level, `N`), as Mosquitto publishes them."""
    b = start_broker(broker_kind, ["log_dest topic", "log_dest stderr", "log_type all"])
    watcher = m.RawClient(b.host, b.port, 4)
    watcher.connect("log-watcher")
    # Mosquitto may publish the subscribe log line before the SUBACK: wait for the SUBACK
    # whatever comes first, so the subscription is in place before the visitor connects.
    watcher.send(m.subscribe(1, [("$SYS/broker/log/#", 0)]))
    for _ in range(20):
        pk = watcher.recv_packet(2)
        if pk is None or pk["type"] == "SUBACK":
            break
    other = m.RawClient(b.host, b.port, 4)
    other.connect("log-visitor")
    deadline = time.monotonic() + 5
    seen = []
    while time.monotonic() < deadline:
        pk = watcher.recv_packet(1)
        if pk and pk["type"] == "PUBLISH":
            seen.append((pk["topic"], pk["payload"]))
            if b"log-visitor" in pk["payload"] and pk["topic"] == "$SYS/broker/log/N":
                break
    assert any(t == "$SYS/broker/log/N" and b"New client connected" in p and b"log-visitor" in p
               for t, p in seen), seen


# --------------------------------------------------------------------------
# Restarting at once, and a port that is taken
# --------------------------------------------------------------------------


class Run:
    """One broker process started from `conf` with stdout/stderr in its own file."""

    def __init__(self, kind: str, conf: Path, out: Path, args=()):
        self.out = out
        with open(out, "wb") as f:
            self.proc = subprocess.Popen([broker_binary(kind), "-c", str(conf), *args],
                                         stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def serves(self, port: int, timeout=10.0) -> bool:
        """Its own log says it runs and a CONNECT gets a CONNACK (a listen socket left by
        a previous process would take the TCP connection but never answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if re.search(r"version \S+ running", self.text()):
                try:
                    c = m.RawClient("127.0.0.1", port, 4, timeout=2)
                    ok = c.connect("restart-probe")["reason_code"] == 0
                    c.close()
                    if ok:
                        return True
                except (OSError, AssertionError):
                    pass
            time.sleep(0.02)
        return False

    def stop(self, sig) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=10)


RESTART_CYCLES = 20


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_immediate_restart_on_the_same_port_every_time(broker_kind, tmp_path, sig):
    """A supervisor restarts a broker the moment the old one has exited: every start must
    get the port, after a clean stop and after SIGKILL alike."""
    port = free_port()
    conf = tmp_path / "restart.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    run = Run(broker_kind, conf, tmp_path / "run-0.log")
    try:
        assert run.serves(port), run.text()
        for cycle in range(1, RESTART_CYCLES + 1):
            run.stop(sig)
            run = Run(broker_kind, conf, tmp_path / f"run-{cycle}.log")
            assert run.serves(port), f"start {cycle} after {sig.name}:\n{run.text()}"
    finally:
        if run.proc.poll() is None:
            run.stop(signal.SIGKILL)


def test_port_taken_by_a_live_process_fails_at_once_naming_it(broker_kind, tmp_path):
    """Another program listening on the port: exit code 1 and `Address already in use`,
    as Mosquitto; Culex also names the address and port, and does not wait for the port
    (only a socket left by an exited process is waited for)."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    conf = tmp_path / "taken.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    try:
        r = subprocess.run([broker_binary(broker_kind), "-c", str(conf)], capture_output=True,
                           text=True, timeout=10)
    finally:
        holder.close()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Error: Address already in use" in r.stderr, r.stderr
    if broker_kind == "culex":
        assert f"Error: Address already in use: cannot listen on 127.0.0.1 port {port}." \
            in r.stderr, r.stderr
        assert "Waiting for the closing listen socket" not in r.stderr, r.stderr
