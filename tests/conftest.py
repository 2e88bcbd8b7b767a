"""Shared by every test area: ``tests/`` importable (helpers in :mod:`support`), an empty ATOLL_HOME."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``ATOLL_HOME`` for this test (created by whatever uses it first)."""
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# -- chromium: tests driving Debian's headless Chromium through Playwright ------
CHROMIUM = "/usr/bin/chromium"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip ``chromium`` tests where Chromium or Playwright is missing; under CI=1 fail instead."""
    if item.get_closest_marker("chromium") is None:
        return
    import importlib.util
    import os

    missing = [what for what, ok in ((CHROMIUM, os.access(CHROMIUM, os.X_OK)),
                                     ("playwright", importlib.util.find_spec("playwright") is not None)) if not ok]
    if missing:
        message = f"needs {' and '.join(missing)} (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# -- pytest-xdist: how `make test` spreads the suite over workers (README, "Tests") ------
# `make test` runs `pytest -n 3 --dist loadgroup`. Every Docker test joins the group `docker`,
# so they all run on one worker, one at a time, as they do serially: the engine, its single-node
# swarm and the images are shared state. Any other test keeps its module's company (one work unit
# per module, as `--dist loadfile`), so a module-scoped fixture (a router and its replicas, a
# Chromium, a fault site) starts once, not once per worker.
DOCKER_GROUP = "docker"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which appends the group to the test id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.add_marker(pytest.mark.xdist_group(DOCKER_GROUP))


@pytest.hookimpl(tryfirst=True)  # before xdist's, which sends the ids to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """Put ``@docker`` in a Docker test's id where xdist could not (it sets ``item._nodeid``, which
    pytest 9.2 no longer reads): the controller sees groups only in the ids the workers send. Before
    the parameters (``test_x@docker[fetch]``), so that pytest 9.2 parses the id back unchanged."""
    if not session.config.getoption("loadgroup", False):
        return
    try:
        from _pytest.nodeid import coerce_node_id  # pytest >= 9.2
    except ImportError:  # older pytest: xdist labels the ids itself
        return

    for item in session.items:
        if item.get_closest_marker("docker") is not None and not _in_docker_group(item.nodeid):
            head, bracket, params = item.nodeid.partition("[")
            item._id = coerce_node_id(f"{head}@{DOCKER_GROUP}{bracket}{params}")  # type: ignore[attr-defined]


def _in_docker_group(nodeid: str) -> bool:
    """``test_x@docker[p]`` (ours) or ``test_x[p]@docker`` (xdist's, with pytest < 9.2)."""
    return nodeid.endswith("@" + DOCKER_GROUP) or f"@{DOCKER_GROUP}[" in nodeid


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (plain loadgroup)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadgroup``: the Docker group is one work unit, and so is every other module."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleOrGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return DOCKER_GROUP if _in_docker_group(nodeid) else nodeid.split("::", 1)[0]

    return ModuleOrGroupScheduling(config, log)


# -- the fault suite's table (tests/faults): its tests put figures in their reports ------------
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures tests/faults recorded; here, because an xdist controller only loads this file."""
    figures = [tuple(value) for reports in terminalreporter.stats.values() for report in reports
               if getattr(report, "when", None) == "call"
               for name, value in getattr(report, "user_properties", ()) if name == "fault figure"]
    if not figures:
        return
    width = max(len(f[0]) for f in figures)
    terminalreporter.write_sep("=", "fault suite")
    terminalreporter.write_line(f"| {'fault':<{width}} | measured | target |")
    for fault, measured, target in figures:
        terminalreporter.write_line(f"| {fault:<{width}} | {measured} | {target} |")
