"""The broker as a process: start-up errors, signals, and the log lines
operators grep (ecosystem.md section 4). Also exercises the fixture's
log accessor, stop(signal) and restart(). And what an operator of the
packaged Mosquitto relies on: started as root, the broker drops to `user`
and writes its log and pid files as that user (so SIGHUP reopens the log),
removes the pid file at exit, reports every start-up failure on stderr
whatever `log_dest` says, and restarts at once on the same port.

Called by: pytest, once per broker kind.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import time
import subprocess
import tempfile
from pathlib import Path

import pytest

import mqttraw as m
from certs import pki  # noqa: F401 - pki is a fixture
from conftest import broker_binary, free_port, missing


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


def test_help_ends_with_where_the_documentation_is(broker_kind):
    """`-h` ends, as Mosquitto's does, with where to read more: the project's repository
    (README.md and docs/) for Culex."""
    r = subprocess.run([broker_binary(broker_kind), "-h"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    last = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()][-1]
    url = {"culex": "https://github.com/culex-mqtt/culex", "mosquitto": "https://mosquitto.org/"}
    assert last == f"See {url[broker_kind]} for more information.", r.stdout


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

    def serves(self, port: int, log: Path | None = None, timeout=10.0) -> bool:
        """Its own log (`log`, default its output) says it runs and a CONNECT gets a
        CONNACK (a listen socket left by a previous process would take the TCP connection
        but never answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            text = log.read_text(errors="replace") if log and log.exists() else self.text()
            if re.search(r"version \S+ running", text):
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


# --------------------------------------------------------------------------
# Started as root: log and pid files belong to `user`
# --------------------------------------------------------------------------


def unprivileged_user():
    """The `mosquitto` user (Debian's mosquitto package creates it); the test runs as root
    so that the broker has privileges to drop."""
    if os.geteuid() != 0:
        missing("root (the broker must start as root to drop privileges to 'mosquitto')")
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        missing("user 'mosquitto' (apt-get install mosquitto)")


@pytest.fixture
def shared_dir():
    """A directory every user can enter and write (pytest's own tmp_path is root-only), as
    a broker that drops privileges needs for its files."""
    d = Path(tempfile.mkdtemp(prefix="interop-process-"))
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_for(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def connect_once(port: int, client_id: str):
    c = m.RawClient("127.0.0.1", port, 4)
    assert c.connect(client_id)["reason_code"] == 0
    c.disconnect()


def test_log_file_keeps_logging_after_sighup_as_root(broker_kind, shared_dir):
    """Debian's stock setup: started as root with `user mosquitto`, `log_dest file` and a
    pid file; `systemctl reload` sends SIGHUP. The files belong to `mosquitto`, lines
    logged after the reload still reach the file, and the pid file goes at exit."""
    user = unprivileged_user()
    var = shared_dir / "var"
    var.mkdir()
    os.chown(var, user.pw_uid, user.pw_gid)
    os.chmod(var, 0o755)
    log, pid = var / "x.log", var / "x.pid"
    port = free_port()
    conf = shared_dir / "broker.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser mosquitto\n"
                    f"log_dest file {log}\npid_file {pid}\n")
    os.chmod(conf, 0o644)
    run = Run(broker_kind, conf, shared_dir / "stderr.txt")
    try:
        assert run.serves(port, log), read(log) + run.text()
        assert read(pid).strip() == str(run.proc.pid)
        connect_once(port, "before-hup")
        assert wait_for(lambda: "as before-hup" in read(log)), read(log)
        run.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "Reloading config." in read(log)), read(log)
        connect_once(port, "after-hup")
        assert wait_for(lambda: "as after-hup" in read(log)), read(log) + run.text()
        assert "Unable to open log file" not in run.text(), run.text()
        assert log.stat().st_uid == user.pw_uid, "log file created before dropping privileges"
        assert pid.stat().st_uid == user.pw_uid, "pid file written before dropping privileges"
        assert run.stop(signal.SIGTERM) == 0
    finally:
        if run.proc.poll() is None:
            run.stop(signal.SIGKILL)
    assert re.search(r"version \S+ terminating", read(log)), read(log)
    assert not pid.exists(), "pid file left behind at exit"


# --------------------------------------------------------------------------
# Start-up failures: on stderr, naming what failed
# --------------------------------------------------------------------------


def start_fails(kind, conf: Path, *args):
    r = subprocess.run([broker_binary(kind), "-c", str(conf), *args], capture_output=True,
                       text=True, timeout=15)
    return r.returncode, r.stdout + r.stderr


def test_unwritable_pid_file_stops_start_up_on_stderr(broker_kind, shared_dir):
    pid = shared_dir / "no-such-dir" / "x.pid"
    log = shared_dir / "x.log"
    conf = shared_dir / "broker.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\n"
                    f"log_dest file {log}\npid_file {pid}\n")
    code, out = start_fails(broker_kind, conf)
    assert code == 1, (code, out)
    assert "Error: Unable to write pid file." in out, out
    if broker_kind == "culex":
        assert f"Error: cannot write {pid}: No such file or directory." in out, out


def test_port_in_use_reaches_stderr_whatever_log_dest(broker_kind, shared_dir):
    """With `log_dest file` Mosquitto reports a busy port in the log file only; Culex
    writes it there and on stderr, naming address and port."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    log = shared_dir / "x.log"
    conf = shared_dir / "broker.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest file {log}\n")
    try:
        code, out = start_fails(broker_kind, conf)
    finally:
        holder.close()
    assert code == 1, (code, out)
    assert "Error: Address already in use" in read(log), read(log)
    if broker_kind == "culex":
        line = f"Error: Address already in use: cannot listen on 127.0.0.1 port {port}."
        assert line in out and line in read(log), out + read(log)


DYNSEC_PLUGIN = "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
PASSWORD_PLUGIN = "plugin /usr/lib/x86_64-linux-gnu/mosquitto_password_file.so"

# name -> (config lines, the file Culex's error names, what Mosquitto 2.0.11 does: refuses
# to start naming a file, or runs without the plugin after logging an error).
# Mosquitto 2.0 has no password-file plugin (it refuses, naming the .so) and runs without
# dynamic security when its file cannot be read; Culex refuses to start without the
# access control the configuration asks for.
MISSING_FILES = {
    "password_file": (["password_file {dir}/missing.pw"], "missing.pw",
                      ("refuses", "missing.pw")),
    "acl_file": (["acl_file {dir}/missing.acl"], "missing.acl", ("refuses", "missing.acl")),
    "certfile": (["listener {tls_port} 127.0.0.1", "certfile {dir}/missing.crt",
                  "keyfile {dir}/server.key"], "missing.crt", ("refuses", "missing.crt")),
    "keyfile": (["listener {tls_port} 127.0.0.1", "certfile {dir}/server.crt",
                 "keyfile {dir}/missing.key"], "missing.key", ("refuses", "missing.key")),
    "cafile": (["listener {tls_port} 127.0.0.1", "certfile {dir}/server.crt",
                "keyfile {dir}/server.key", "cafile {dir}/missing-ca.crt",
                "require_certificate true"], "missing-ca.crt", ("refuses", "missing-ca.crt")),
    "password-file plugin": ([PASSWORD_PLUGIN, "plugin_opt_password_file {dir}/missing.pw"],
                             "missing.pw", ("refuses", "mosquitto_password_file.so")),
    "dynsec directory": ([DYNSEC_PLUGIN, "plugin_opt_config_file {dir}/missing/dynsec.json"],
                         "missing/dynsec.json",
                         ("runs", "Error loading Dynamic security plugin config")),
    "dynsec not json": ([DYNSEC_PLUGIN, "plugin_opt_config_file {dir}/not-json.json"],
                        "not-json.json", ("runs", "Error loading Dynamic security plugin config")),
}


@pytest.mark.parametrize("case", list(MISSING_FILES))
def test_test_config_fails_where_the_start_fails(broker_kind, shared_dir, pki, case):
    """`--test-config` reads what the start reads: a configuration naming a file the start
    cannot use is reported invalid (exit 3) with the start's own error line, on stderr
    although `log_dest` is a file; the start fails too. Mosquitto 2.0.11 (which has no
    --test-config) refuses to start on the same files, except the dynamic-security ones."""
    lines, named, (mosquitto_does, mosquitto_names) = MISSING_FILES[case]
    (shared_dir / "server.crt").write_text(pki.server.cert_pem)
    (shared_dir / "server.key").write_text(pki.server.key_pem)
    (shared_dir / "not-json.json").write_text("{ this is not json\n")
    for f in shared_dir.iterdir():
        os.chmod(f, 0o644)
    conf = shared_dir / "broker.conf"
    port = free_port()
    text = "\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true",
                      f"log_dest file {shared_dir}/x.log", *lines]) + "\n"
    conf.write_text(text.replace("{dir}", str(shared_dir))
                    .replace("{tls_port}", str(free_port())))
    os.chmod(conf, 0o644)
    if broker_kind == "mosquitto":
        run = Run("mosquitto", conf, shared_dir / "out.txt")
        try:
            if mosquitto_does == "runs":
                assert run.serves(port, shared_dir / "x.log"), run.text()
            else:
                assert run.proc.wait(timeout=15) != 0, run.text()
        finally:
            if run.proc.poll() is None:
                run.stop(signal.SIGKILL)
        assert mosquitto_names in run.text() + read(shared_dir / "x.log")
        return
    code, checked = start_fails("culex", conf, "--test-config")
    assert code == 3, (code, checked)
    assert "Configuration file is valid" not in checked, checked
    errors = [line.split(": ", 1)[1] for line in checked.splitlines() if ": Error" in line]
    assert errors and any(named in e for e in errors), checked
    code, started = start_fails("culex", conf)
    assert code != 0, (code, started)
    for error in errors:
        assert error in started, f"--test-config said {error!r}, the start said:\n{started}"
