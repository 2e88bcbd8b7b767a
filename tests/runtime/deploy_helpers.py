"""Helpers for the local deployment and IDE tests: notebooks, a fake build, leak checks."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from atoll.domain.records import BuildVersion, Project

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
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    first = new_code_cell(params)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first] + [new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_of(home: Path) -> list[int]:
    """PIDs of live processes started for ``home`` (their environment names it)."""
    marker = f"ATOLL_HOME={home}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def kill_all(pids: list[int]) -> None:
    """Last-resort cleanup of processes a failing test left behind (by PID)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")
