"""Shared by every test area: ``tests/`` importable (helpers in :mod:`support`), an empty ATOLL_HOME."""

from __future__ import annotations

import sys
from pathlib import Path

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
