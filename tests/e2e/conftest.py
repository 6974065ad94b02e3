"""Fixtures of the end-to-end suite. Prerequisites come from .ci/e2e through the environment:

- DFE_BIN: the exporter binary (target/debug/dashflow-prometheus-exporter)
- DFE_TANSU: the tansu 0.6.0 binary
- prometheus and promtool on PATH

A missing prerequisite fails the tests that need it; nothing is skipped."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import support as s  # noqa: E402

_PM = s.ProcessManager()
_FAILED: list[str] = []


def pytest_configure(config):
    def on_signal(signum, _frame):
        s.log(f"received signal {signum}: stopping every process the suite started")
        _PM.stop_all()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _FAILED.append(item.nodeid)


def _need_file(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"prerequisite missing: environment variable {var} is not set (run the suite with .ci/e2e)")
    p = Path(value)
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"prerequisite missing: {var}={value} is not an executable file (run the suite with .ci/e2e)")
    return p


def _need_cmd(name: str) -> Path:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"prerequisite missing: {name} is not on PATH (.ci/e2e installs Debian's prometheus package)")
    return Path(found)


class Tools:
    def __init__(self) -> None:
        self.exporter = _need_file("DFE_BIN")
        self.tansu = _need_file("DFE_TANSU")
        self.prometheus = _need_cmd("prometheus")
        self.promtool = _need_cmd("promtool")


@pytest.fixture(scope="session")
def tools() -> Tools:
    return Tools()


@pytest.fixture(scope="session")
def pm():
    yield _PM
    _PM.stop_all()


@pytest.fixture(scope="session")
def workdir():
    base = os.environ.get("DFE_E2E_TMP") or None
    d = Path(tempfile.mkdtemp(prefix="dfe-e2e-", dir=base))
    s.log(f"work directory {d}")
    yield d
    _PM.stop_all()
    if _FAILED:
        s.dump_failure_context(_PM)
        s.log(f"failures: keeping {d} for inspection")
    elif not os.environ.get("DFE_E2E_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def broker(tools, pm, workdir) -> s.Tansu:
    t = s.Tansu(pm, tools.tansu, workdir / "tansu")
    t.start()
    yield t
    pm.stop(t.proc)


@pytest.fixture(scope="session")
def rule_files() -> list[Path]:
    return [s.REPO / "monitoring" / "recording-rules.yml", s.REPO / "monitoring" / "alerts.yml"]
