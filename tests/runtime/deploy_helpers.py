"""Helpers for the local deployment and IDE tests: notebooks, a fake build; leak checks from :mod:`support`."""

from __future__ import annotations

import sys
from pathlib import Path

from atoll.domain.records import BuildVersion, Project
from atoll.testing.conformance import containers as conformance
from support.processes import free_port, kill_all, processes_of, wait_for

ECHO_CELLS = [
    "import os\nfrom atoll.toolkit import OnlinePredict",
    (
        "def predict(body):\n"
        "    if body == 'bad':\n"
        "        raise ValueError('bad body')\n"
        "    return {'echo': body, 'greeting': greeting, 'replica': os.environ['ATOLL_REPLICA']}"
    ),
    "OnlinePredict(predict)()",
]


def write_notebook(path: Path, cells: list[str], params: str = "greeting = 'hello'") -> Path:
    """A notebook whose first cell is the ``parameters`` cell."""
    return conformance.write_notebook(path, cells, params)


def fake_build(root: Path, project: str = "echo") -> tuple[Project, BuildVersion]:
    """A build whose code is ``root/app`` and whose environment is the one running the tests.

    The deployment machinery does not care how the environment was made, so
    these tests need no ``proj build`` (the e2e test does the real thing).
    """
    app = root / "app"
    write_notebook(app / "echo.ipynb", ECHO_CELLS)
    write_notebook(app / "boom.ipynb", ["raise RuntimeError('the model file is corrupt')"])
    write_notebook(app / "mute.ipynb", ["import time\ntime.sleep(600)"])
    env_dir = Path(sys.executable).parent.parent
    build = BuildVersion(name="latest", proj=project, location=str(root), details={"env_dir": str(env_dir)})
    return Project(name=project), build


__all__ = [
    "ECHO_CELLS",
    "fake_build",
    "free_port",
    "kill_all",
    "processes_of",
    "wait_for",
    "write_notebook",
]
