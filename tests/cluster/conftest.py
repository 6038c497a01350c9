"""Fixtures of the cluster tests: real three-node (and four-node) Culex clusters on
127.0.0.1 to 127.0.0.4, torn down after each test, their logs shown when one fails.

The helpers of the interop suite (raw MQTT client, dynamic-security admin, tool lookup)
are shared: `tests/interop` is put on the import path and its conftest's plain functions
are re-exported here under the same names, so `dynsec_helpers` finds them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parents[1] / "interop"
sys.path.insert(0, str(INTEROP))
sys.path.insert(0, str(Path(__file__).resolve().parent))

_spec = importlib.util.spec_from_file_location("interop_conftest", INTEROP / "conftest.py")
_interop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_interop)
REPO = _interop.REPO
in_ci = _interop.in_ci
missing = _interop.missing
require_tool = _interop.require_tool
broker_binary = _interop.broker_binary
free_port = _interop.free_port

import cluster as c  # noqa: E402  (needs the paths above)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("cluster", "cluster4", "dynsec_cluster", "make_cluster"):
            value = item.funcargs.get(name)
            if value is not None:
                report.sections.append(("cluster logs", value.logs()))


@pytest.fixture
def cluster():
    """Three nodes, started, in no cluster yet."""
    cl = c.Cluster(3)
    try:
        cl.start()
        yield cl
    finally:
        cl.cleanup()


@pytest.fixture
def cluster4():
    """Four nodes started, in no cluster yet (the fourth is added later)."""
    cl = c.Cluster(4)
    try:
        cl.start()
        yield cl
    finally:
        cl.cleanup()
