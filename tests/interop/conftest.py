"""Broker fixtures for the interop suite.

Owns: choosing which broker kinds run (`--broker` / env BROKERS), starting a
real broker process (Culex or Debian's Mosquitto) on a free 127.0.0.1 port
from a generated mosquitto.conf, capturing its log, and killing it at test
end. Called by: every test in tests/interop.

Culex is found at $CULEX_BIN, default <repo>/target/debug/culex. When a
needed binary or tool is missing the test FAILS if CI=true, else it skips
(CONTRIBUTING.md: a test that needs a tool must fail in CI).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[2]
ALL_KINDS = ("culex", "mosquitto")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str):
    """Fail under CI=true, skip otherwise."""
    if in_ci():
        pytest.fail(f"required tool missing: {what}", pytrace=False)
    pytest.skip(f"missing: {what}")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name)
    return path


def broker_binary(kind: str) -> str:
    if kind == "mosquitto":
        path = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if path is None:
            missing("mosquitto (apt-get install mosquitto)")
        return path
    if kind == "culex":
        path = os.environ.get("CULEX_BIN") or str(REPO / "target" / "debug" / "culex")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            missing(f"culex binary at {path} (cargo build, or set CULEX_BIN)")
        return path
    raise ValueError(f"unknown broker kind {kind!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Broker process
# --------------------------------------------------------------------------


class PortInUse(RuntimeError):
    pass


class Broker:
    """A running broker process. `log()` returns everything it wrote so far."""

    def __init__(self, kind: str, conf_lines, extra_files=None, anonymous=True,
                 listener=True, env=None):
        self.kind = kind
        self.env = None if env is None else {**os.environ, **env}
        self.binary = broker_binary(kind)
        self.host = "127.0.0.1"
        self.dir = Path(tempfile.mkdtemp(prefix=f"interop-{kind}-"))
        # Mosquitto started as root drops to user "mosquitto": let it read
        # the config and write persistence files here.
        os.chmod(self.dir, 0o777)
        for name, content in (extra_files or {}).items():
            p = self.dir / name  # may name a subdirectory ("www/index.html")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content) if isinstance(content, str) else p.write_bytes(content)
            os.chmod(p, 0o644)
        self.conf_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "broker.log"
        self.proc = None
        self.returncode = None
        # The free port can be taken by someone else before the broker binds
        # it: retry a few times with a new port.
        for attempt in range(3):
            self.port = free_port()
            lines = []
            if listener:
                lines.append(f"listener {self.port} {self.host}")
            if anonymous:
                lines.append("allow_anonymous true")
            lines += [line.replace("{dir}", str(self.dir)) for line in conf_lines]
            self.conf_path.write_text("\n".join(lines) + "\n")
            os.chmod(self.conf_path, 0o644)
            try:
                self._start()
                return
            except PortInUse:
                if attempt == 2:
                    raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _start(self):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)], stdout=logf, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.dir, env=self.env)
        logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "in use" in self.log().lower():
                    raise PortInUse(self.log())
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} at start-up:\n"
                                   + self.log())
            if port_accepts(self.host, self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.kind} did not accept on {self.port} within {START_TIMEOUT}s:\n"
                           + self.log())

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout=5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig` and wait (bounded) for exit; SIGKILL if it does not."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.returncode = self.proc.returncode
        self.proc = None
        return self.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, sig=signal.SIGTERM):
        """Stop (by `sig`) and start again on the same port with the same config."""
        self.stop(sig)
        deadline = time.monotonic() + START_TIMEOUT
        while port_accepts(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._start()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __repr__(self):
        return f"<{self.kind} broker on {self.host}:{self.port}>"


# --------------------------------------------------------------------------
# Kind selection and fixtures
# --------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--broker", action="store", default=None,
                     help="comma-separated broker kinds to test (culex,mosquitto); "
                          "default: env BROKERS or both")


def selected_kinds(config) -> list[str]:
    raw = config.getoption("--broker") or os.environ.get("BROKERS") or ",".join(ALL_KINDS)
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    for k in kinds:
        if k not in ALL_KINDS:
            raise pytest.UsageError(f"unknown broker kind {k!r}; choose from {ALL_KINDS}")
    return kinds


def pytest_generate_tests(metafunc):
    if "broker_kind" in metafunc.fixturenames:
        metafunc.parametrize("broker_kind", selected_kinds(metafunc.config))


@pytest.fixture(scope="session")
def _session_brokers():
    started = []
    yield started
    for b in started:
        b.cleanup()


@pytest.fixture(scope="session")
def start_session_broker(_session_brokers):
    """Like start_broker, but the broker lives until the session ends."""
    def start(kind, conf_lines=(), extra_files=None, **kw):
        b = Broker(kind, conf_lines, extra_files, **kw)
        _session_brokers.append(b)
        return b
    return start


@pytest.fixture
def start_broker():
    """Factory: start_broker(kind, conf_lines=(), extra_files=None,
    anonymous=True) -> Broker. Every broker started is killed at test end."""
    started = []

    def start(kind, conf_lines=(), extra_files=None, **kw):
        b = Broker(kind, conf_lines, extra_files, **kw)
        started.append(b)
        return b

    yield start
    for b in started:
        b.cleanup()


@pytest.fixture
def broker(start_broker, broker_kind):
    """A broker of the parametrised kind with the default test config."""
    return start_broker(broker_kind)
