"""``depl new -b`` through the real ``atoll`` command on the local runtime.

It returns once the replicas are started, the record DEPLOYING; nothing else
runs for it but the deployment's supervisor, and later ``depl info`` / ``depl
list`` find the roll-out's outcome (RUNNING, or FAILED saying why, with
nothing left running). The ``gated`` notebook serves only once the test
creates its ``go`` file, so "still deploying" is a state the test controls,
not a race. Its supervisor SIGKILLed mid-roll-out, the next look starts one
that carries the roll-out on.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from deploy_helpers import PROJ, Cli, alive, deployment_processes, open_cli, wait_for

from atoll.containers.local.process import pid_alive, read_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    yield from open_cli(tmp_path_factory.mktemp("bg"))


def _replicas(cli: Cli, name: str) -> list[dict[str, Any]]:
    return (read_json(cli.home / "run" / "services" / PROJ / name / "status.json") or {}).get("replicas", [])


def _settled(cli: Cli, name: str) -> Any:
    info = cli.json("depl", "info", "--proj", PROJ, "--name", name)
    return info if info["task"]["state"] != "DEPLOYING" else None


def test_depl_new_b_returns_deploying_and_depl_info_follows_it_to_running(cli: Cli) -> None:
    go = cli.cwd / "go-bg"
    started = cli.json("depl", "new", "-b", "--proj", PROJ, "--name", "bg", "--nb", "gated.ipynb", "-n", "2",
                       "--params", json.dumps({"go": str(go)}))
    assert started["task"]["state"] == "DEPLOYING"
    assert started["availability"] == "0/2"
    assert alive(cli.supervisor("bg"))  # the CLI has exited; the supervisor carries the roll-out on
    wait_for(lambda: cli.replicas_started("bg", 2), timeout=60)

    info = cli.json("depl", "info", "--proj", PROJ, "--name", "bg")
    assert info["task"]["state"] == "DEPLOYING" and info["availability"] == "0/2"
    assert [r["state"] for r in info["replicas"]] == ["starting", "starting"]
    again = cli.run("depl", "new", "--proj", PROJ, "--name", "bg", "--nb", "echo.ipynb", check=False)
    assert again.returncode == 1 and "still being deployed" in again.stderr

    # Its supervisor killed mid-roll-out: the next look starts one that stops the unfinished replicas and
    # starts the roll-out again (nobody waits for it: it must not be lost).
    first = cli.supervisor("bg")
    unfinished = [(r["pid"], r["start_time"]) for r in _replicas(cli, "bg")]
    os.kill(first["pid"], signal.SIGKILL)  # type: ignore[index]
    wait_for(lambda: not alive(first), timeout=30)
    assert cli.json("depl", "info", "--proj", PROJ, "--name", "bg")["task"]["state"] == "DEPLOYING"
    assert alive(cli.supervisor("bg")) and cli.supervisor("bg") != first
    wait_for(lambda: not any(pid_alive(pid, start) for pid, start in unfinished), timeout=30)
    wait_for(lambda: len([r for r in _replicas(cli, "bg") if (r["pid"], r["start_time"]) not in unfinished
                          and r["pid"]]) == 2, timeout=60)

    go.touch()
    final = wait_for(lambda: _settled(cli, "bg"), timeout=120, every=0.5)
    assert final["task"]["state"] == "RUNNING" and final["availability"] == "2/2"
    assert [r["state"] for r in final["replicas"]] == ["healthy", "healthy"]
    assert "rollout" not in final["details"]
    listed = {d["name"]: d for d in cli.json("depl", "list", "--proj", PROJ)}
    assert listed["bg"]["task"]["state"] == "RUNNING"
    cli.run("depl", "rm", "--proj", PROJ, "--name", "bg")
    assert deployment_processes(cli.home) == []


def test_a_broken_notebook_under_b_ends_failed_and_info_says_why(cli: Cli) -> None:
    done = cli.run("depl", "new", "-b", "--proj", PROJ, "--name", "bg-boom", "--nb", "boom.ipynb", "-n", "1")
    assert "started in the background" in done.stdout
    final = wait_for(lambda: _settled(cli, "bg-boom"), timeout=120, every=0.5)
    assert final["task"]["state"] == "FAILED"
    error = final["task"]["error"]
    assert "deployment echo:bg-boom did not start" in error and "the model file is corrupt" in error
    assert final["replicas"] == [] and final["availability"] == "0/1"
    assert not alive(cli.supervisor("bg-boom"))
    assert not (cli.home / "run" / "services" / PROJ / "bg-boom").exists()
    assert deployment_processes(cli.home) == []
    listed = {d["name"]: d for d in cli.json("depl", "list", "--proj", PROJ)}
    assert listed["bg-boom"]["task"]["state"] == "FAILED"
