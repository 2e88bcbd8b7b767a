"""A ``depl new`` cut short, and one asking for too many replicas, through the real ``atoll`` command.

The CLI runs as a subprocess on a fake build (the test environment plus a
directory of notebooks, see :func:`deploy_helpers.fake_build`); it is killed
while its replicas start, and what a user sees next (``depl info``, ``depl
list``, the processes left) is checked. Everything started here is stopped
at the end, and anything left behind fails the module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import fake_build, free_port, kill_all, processes_of, wait_for

from atoll.api.builds import save_build
from atoll.api.context import AtollContext
from atoll.config import load_config
from atoll.containers.local.process import pid_alive, proc_start_time, read_json
from atoll.domain.records import Deployment, Project, TaskState

pytestmark = pytest.mark.slow

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


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("cut")
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


def _deployment_processes(home: Path) -> list[int]:
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


def _alive(info: dict[str, Any] | None) -> bool:
    return bool(info) and pid_alive(info["pid"], info.get("start_time"))  # type: ignore[index]


def test_depl_new_above_max_replicas_is_refused_before_anything_is_recorded(cli: Cli) -> None:
    done = cli.run("depl", "new", "--proj", PROJ, "--name", "many", "--nb", "echo.ipynb", "-n", "33", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "container_manager.max_replicas (32)" in done.stderr
    lowered = cli.run("depl", "new", "--proj", PROJ, "--name", "many", "--nb", "echo.ipynb", "-n", "3",
                      check=False, ATOLL_CONTAINER_MANAGER__MAX_REPLICAS="2")
    assert lowered.returncode == 2 and "container_manager.max_replicas (2)" in lowered.stderr
    assert "many" not in [d["name"] for d in cli.json("depl", "list", "--proj", PROJ)]
    assert not (cli.home / "run" / "services" / PROJ / "many").exists()


def test_a_sigkilled_depl_new_leaves_no_supervisor_and_ends_failed(cli: Cli) -> None:
    proc = cli.start_deploy("killed")
    try:
        wait_for(lambda: cli.replicas_started("killed", 2), timeout=120)
        supervisor = cli.supervisor("killed")
        assert _alive(supervisor)
        assert cli.record("killed").task.state == TaskState.WAITING
    finally:
        proc.kill()
        proc.wait()
    # Nobody looks yet: the supervisor notices its deployer is gone, stops the replicas and exits.
    wait_for(lambda: not _alive(supervisor), timeout=30)
    info = cli.json("depl", "info", "--proj", PROJ, "--name", "killed")
    assert info["task"]["state"] == "FAILED", info["task"]
    assert "exited before the replicas were healthy" in info["task"]["error"]
    assert info["availability"] == "0/2" and info["replicas"] == []
    listed = {d["name"]: d for d in cli.json("depl", "list", "--proj", PROJ)}
    assert listed["killed"]["task"]["state"] == "FAILED"
    cli.run("depl", "rm", "--proj", PROJ, "--name", "killed")
    assert _deployment_processes(cli.home) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_an_interrupted_depl_new_records_failed_and_stops_what_it_started(cli: Cli, sig: signal.Signals) -> None:
    name = f"stopped-{sig.name.lower()}"
    proc = cli.start_deploy(name)
    try:
        wait_for(lambda: cli.replicas_started(name, 2), timeout=120)
        supervisor = cli.supervisor(name)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "interrupted" in err.decode()
    record = cli.record(name)  # as the CLI left it, before any look
    assert record.task.state == TaskState.FAILED
    assert record.task.error == "interrupted before the replicas were healthy"
    assert not _alive(supervisor)
    assert _deployment_processes(cli.home) == []
    assert not (cli.home / "run" / "services" / PROJ / name).exists()


def test_a_depl_new_killed_after_its_replicas_got_healthy_is_running_at_the_next_look(cli: Cli) -> None:
    cli.run("depl", "new", "--proj", PROJ, "--name", "late", "--nb", "echo.ipynb", "-n", "2")
    ctx = cli.context()
    try:  # what a CLI killed between "every replica healthy" and its last write leaves: a WAITING record
        record = ctx.metadata.get(Deployment, "late", PROJ)
        record.task.state, record.task.progress = TaskState.WAITING, 0.0
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)  # a process that has exited
        record.details = {"deployer": {"host": socket.gethostname(), "pid": int(dead.stdout), "start_time": 1}}
        ctx.metadata.update(record)
    finally:
        ctx.close()
    info = cli.json("depl", "info", "--proj", PROJ, "--name", "late")
    assert info["task"]["state"] == "RUNNING" and info["availability"] == "2/2"
    assert "deployer" not in info["details"]


def test_a_waiting_deployment_whose_deployer_runs_is_left_alone(cli: Cli) -> None:
    cli.run("depl", "new", "--proj", PROJ, "--name", "busy", "--nb", "echo.ipynb", "-n", "1")
    ctx = cli.context()
    try:  # as while `depl new` (this process here) still waits for its replicas
        record = ctx.metadata.get(Deployment, "busy", PROJ)
        record.task.state = TaskState.WAITING
        record.details = {"deployer": {"host": socket.gethostname(), "pid": os.getpid(),
                                       "start_time": proc_start_time(os.getpid())}}
        ctx.metadata.update(record)
    finally:
        ctx.close()
    assert cli.json("depl", "info", "--proj", PROJ, "--name", "busy")["task"]["state"] == "WAITING"
    assert _alive(cli.supervisor("busy"))
