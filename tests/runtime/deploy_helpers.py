"""Helpers for the local deployment and IDE tests: notebooks, a fake build, the real ``atoll``
command on a throwaway home (:class:`Cli`); leak checks from :mod:`support`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atoll.api.builds import save_build
from atoll.api.context import AtollContext
from atoll.config import load_config
from atoll.containers.local.process import pid_alive, read_json
from atoll.domain.records import BuildVersion, Deployment, Project
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
    # Serves once the file named by its `go` parameter exists: a roll-out that cannot finish before the test says so.
    write_notebook(app / "gated.ipynb", ["import os, time\nwhile go and not os.path.exists(go):\n    time.sleep(0.1)",
                                         *ECHO_CELLS], params="greeting = 'hello'\ngo = ''")
    env_dir = Path(sys.executable).parent.parent
    build = BuildVersion(name="latest", proj=project, location=str(root), details={"env_dir": str(env_dir)})
    return Project(name=project), build


ATOLL = Path(sys.executable).parent / "atoll"
PROJ = "echo"


@dataclass
class Cli:
    home: Path
    cwd: Path
    router_port: int

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "ATOLL_HOME": str(self.home), "ATOLL_ROUTER__PORT": str(self.router_port),
                "COLUMNS": "200", "NO_COLOR": "1", **extra}

    def run(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(ATOLL), *args], cwd=self.cwd, env=self.env(**env), capture_output=True,
                              text=True, timeout=300, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run("-o", "json", *args).stdout)

    def start_deploy(self, name: str, notebook: str = "mute.ipynb", replicas: int = 2) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(ATOLL), "depl", "new", "--proj", PROJ, "--name", name, "--nb", notebook,
                                 "-n", str(replicas), "--timeout", "120"],
                                cwd=self.cwd, env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=_ctrl_c_as_in_a_terminal)

    def context(self) -> AtollContext:
        saved = os.environ.get("ATOLL_HOME")
        os.environ["ATOLL_HOME"] = str(self.home)
        try:
            return AtollContext(load_config(self.cwd, environ=self.env()), cwd=self.cwd)
        finally:
            if saved is None:
                os.environ.pop("ATOLL_HOME", None)
            else:
                os.environ["ATOLL_HOME"] = saved

    def record(self, name: str) -> Deployment:
        """The stored record as it is, without the reconciliation every command's read does."""
        ctx = self.context()
        try:
            return ctx.metadata.get(Deployment, name, PROJ)
        finally:
            ctx.close()

    def supervisor(self, name: str) -> dict[str, Any] | None:
        return read_json(self.home / "run" / "services" / PROJ / name / "supervisor.pid")

    def replicas_started(self, name: str, count: int) -> bool:
        status = read_json(self.home / "run" / "services" / PROJ / name / "status.json") or {}
        return sum(1 for r in status.get("replicas", []) if r.get("pid")) >= count


def open_cli(tmp: Path) -> Iterator[Cli]:
    """A :class:`Cli` on a fresh ATOLL_HOME under ``tmp`` with project ``echo`` and its fake build;
    at the end, removes every deployment, stops the router and fails if a process was left."""
    c = Cli(tmp / "home", tmp, free_port())
    project, build = fake_build(tmp / "build", PROJ)
    ctx = c.context()
    try:
        ctx.metadata.create(Project(name=project.name))
        save_build(ctx, build)
    finally:
        ctx.close()
    try:
        yield c
    finally:
        for depl in json.loads(c.run("-o", "json", "depl", "list", "--proj", PROJ, check=False).stdout or "[]"):
            c.run("depl", "rm", "--proj", PROJ, "--name", depl["name"], check=False)
        c.run("isle", "router", "stop", check=False)
        leftovers = processes_of(c.home)
        kill_all(leftovers)
        assert leftovers == [], "processes were left running"


def deployment_processes(home: Path) -> list[int]:
    """Deployment supervisors and replicas of ``home`` still running (the router and its supervisor may run on)."""
    found = []
    for pid in processes_of(home):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        services = str(home / "run" / "services").encode()
        if b"atoll.runner" in argv or (b"atoll.containers.local.supervisor" in argv
                                       and any(arg.startswith(services) for arg in argv)):
            found.append(pid)
    return found


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT handled as in a foreground terminal job: a test run started in the background
    (``cmd &`` in a script) passes SIGINT on as ignored, and Python then never raises
    KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def alive(info: dict[str, Any] | None) -> bool:
    return bool(info) and pid_alive(info["pid"], info.get("start_time"))  # type: ignore[index]


__all__ = [
    "ATOLL",
    "ECHO_CELLS",
    "PROJ",
    "Cli",
    "alive",
    "deployment_processes",
    "fake_build",
    "free_port",
    "kill_all",
    "open_cli",
    "processes_of",
    "wait_for",
    "write_notebook",
]
