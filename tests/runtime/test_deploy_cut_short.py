"""A ``depl new`` cut short, and one asking for too many replicas, through the real ``atoll`` command.

The CLI runs as a subprocess on a fake build (the test environment plus a
directory of notebooks, see :func:`deploy_helpers.fake_build`); it is killed
while its replicas start, and what a user sees next (``depl info``, ``depl
list``, the processes left) is checked. Everything started here is stopped
at the end, and anything left behind fails the module.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from deploy_helpers import PROJ, Cli, alive, deployment_processes, open_cli, wait_for

from atoll.containers.local.process import proc_start_time
from atoll.domain.records import Deployment, TaskState

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    yield from open_cli(tmp_path_factory.mktemp("cut"))


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
        assert alive(supervisor)
        assert cli.record("killed").task.state == TaskState.WAITING
    finally:
        proc.kill()
        proc.wait()
    # Nobody looks yet: the supervisor notices its deployer is gone, stops the replicas and exits.
    wait_for(lambda: not alive(supervisor), timeout=30)
    info = cli.json("depl", "info", "--proj", PROJ, "--name", "killed")
    assert info["task"]["state"] == "FAILED", info["task"]
    assert "exited before the replicas were healthy" in info["task"]["error"]
    assert info["availability"] == "0/2" and info["replicas"] == []
    listed = {d["name"]: d for d in cli.json("depl", "list", "--proj", PROJ)}
    assert listed["killed"]["task"]["state"] == "FAILED"
    cli.run("depl", "rm", "--proj", PROJ, "--name", "killed")
    assert deployment_processes(cli.home) == []


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
    assert not alive(supervisor)
    assert deployment_processes(cli.home) == []
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
    assert alive(cli.supervisor("busy"))
