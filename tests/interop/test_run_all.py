"""`tests/run-all` on a machine that runs services of its own: it installs the Python test
dependencies into a virtual environment in the checkout (Debian 12's pip refuses
system-wide installs, PEP 668), runs pytest from there, and never stops, starts or
reconfigures a service (Debian's mosquitto package starts one on port 1883).

The script runs for real in a copy of the checkout's test layout with one probe test
(the container test and the fuzz runner stand-ins that record their calls),
under stub `systemctl` (reports the mosquitto service active), `cargo` (the Rust build is
not what this checks), `sudo`/`apt-get`, and a `python3` that records its arguments
before running the real one. So that no network is needed, the packages this pytest runs
with are put on PYTHONPATH: the new environment finds them there and pip has nothing to
download (installing into `.venv/` was checked by hand on Debian 12's own Python).

Called by: pytest (not per broker kind).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import paho.mqtt
import prometheus_client
import pytest

from conftest import REPO, require_tool

RECORDER = """#!/bin/sh
echo "{name} $*" >> "{log}"
{then}
"""


def stub(bin_dir: Path, name: str, log: Path, then: str):
    path = bin_dir / name
    path.write_text(RECORDER.format(name=name, log=log, then=then))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_run_all_uses_a_venv_in_the_checkout_and_leaves_services_alone(tmp_path):
    python3 = require_tool("python3")
    checkout = tmp_path / "checkout"
    interop = checkout / "tests" / "interop"
    interop.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "run-all", checkout / "tests" / "run-all")
    shutil.copy(REPO / "tests" / "interop" / "requirements.txt", interop / "requirements.txt")
    # The container test is not what this checks: a stand-in that only records its call.
    docker_test = checkout / "tests" / "docker" / "run"
    docker_test.parent.mkdir(parents=True)
    docker_test.write_text(f'#!/bin/sh\necho "tests/docker/run $*" >> "{tmp_path / "calls.log"}"\n')
    docker_test.chmod(0o755)
    # Nor are the fuzz targets: their runner only records its call too.
    fuzz_run = checkout / "fuzz" / "run"
    fuzz_run.parent.mkdir(parents=True)
    fuzz_run.write_text(f'#!/bin/sh\necho "fuzz/run $*" >> "{tmp_path / "calls.log"}"\n')
    fuzz_run.chmod(0o755)
    probe_out = tmp_path / "pytest-prefix"
    # The cluster suite runs too, from the same virtual environment: a probe stands in.
    cluster_probe = tmp_path / "cluster-prefix"
    (checkout / "tests" / "cluster").mkdir()
    (checkout / "tests" / "cluster" / "test_cluster_probe.py").write_text(
        "import sys\n\n\ndef test_probe():\n"
        f"    open({str(cluster_probe)!r}, 'w').write(sys.prefix)\n")
    (interop / "test_probe.py").write_text(
        "import os, sys\n\n\ndef test_probe():\n"
        f"    open({str(probe_out)!r}, 'w').write(sys.prefix)\n")
    calls = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `systemctl is-active mosquitto` succeeds: the service runs, as after apt-get install.
    stub(bin_dir, "systemctl", calls, "exit 0")
    stub(bin_dir, "cargo", calls, "exit 0")
    stub(bin_dir, "sudo", calls, "exit 0")
    stub(bin_dir, "apt-get", calls, "exit 0")
    stub(bin_dir, "python3", calls, f'exec "{python3}" "$@"')
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    site = {str(Path(module.__file__).resolve().parents[depth])
            for module, depth in ((pytest, 1), (paho.mqtt, 2), (prometheus_client, 1))}
    env["PYTHONPATH"] = os.pathsep.join(sorted(site))
    r = subprocess.run([str(checkout / "tests" / "run-all")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    log = calls.read_text() if calls.exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [line for line in log.splitlines()
                if line.startswith("systemctl") and "is-active" not in line], log
    assert "-m pip" not in log, f"pip run with the system's python3:\n{log}"
    venv = checkout / ".venv"
    assert probe_out.read_text() == str(venv), "pytest did not run from the checkout's .venv"
    assert "-m venv" in log, log
    assert cluster_probe.read_text() == str(venv), "the cluster suite did not run"
    assert "tests/docker/run" in log, "the container test is part of the run"
    assert "fuzz/run regress" in log, "the fuzz regressions are part of the run"
