"""``atoll ui``: a read-only web view of what Atoll recorded, plus a test-prediction form.

A Starlette app (:mod:`atoll.ui.app`) rendering Jinja2 templates from the
Python API (:mod:`atoll.api`), never from the stores directly; every page
also answers JSON (``Accept: application/json``). Access takes a random
token (:mod:`atoll.ui.security`); charts and the lineage graph are
server-side SVG (:mod:`atoll.ui.svg`), so the static assets are one CSS and
one small script of our own and the app works offline.

This package stays light on import (the island imports it without Starlette).
"""

from __future__ import annotations

import importlib.util

from atoll.errors import ConfigError

REQUIRED = ("starlette", "jinja2", "nbconvert", "uvicorn")


def require_dependencies() -> None:
    """Check the optional dependencies of the UI are installed.

    Raises:
        ConfigError: one is missing (the message says how to install them).
    """
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the UI needs {', '.join(missing)}: pip install 'atoll[ui]'")
