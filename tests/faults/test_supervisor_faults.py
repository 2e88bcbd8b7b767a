"""The local runtime's supervisor SIGKILLed, and a replica that stops answering its health check.

Through the real ``atoll`` command (:class:`runtime.deploy_helpers.Cli`): a
deployment whose supervisor dies keeps its replicas running (they are in
their own sessions) until the next look (``depl info``), which starts a
supervisor that adopts them (so does ``isle router status``); a replica SIGSTOPped (alive, its health check
hanging) is restarted once ``healthcheck.unhealthy_after`` has passed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from atoll.containers.local.process import pid_alive, read_json
from runtime.deploy_helpers import PROJ, Cli, alive, deployment_processes, open_cli
from support.processes import free_port, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    yield from open_cli(tmp_path_factory.mktemp("supervisor"))


def _replicas(cli: Cli, name: str) -> dict[str, dict[str, Any]]:
    status = read_json(cli.home / "run" / "services" / PROJ / name / "status.json") or {}
    return {r["name"]: r for r in status.get("replicas", [])}


def _answers(port: int) -> bool:
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", content=b"ping", timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json()["result"]["echo"] == "ping"


def test_a_sigkilled_supervisor_is_replaced_at_the_next_look_which_adopts_its_replicas(cli: Cli, figure: Any) -> None:
    port = free_port()
    cli.run("depl", "new", "--proj", PROJ, "--name", "adopt", "--nb", "echo.ipynb", "-n", "2", "--port", str(port),
            ATOLL_ROUTER__AUTH="off")  # the --port balancer then takes requests without a key
    assert _answers(port)
    before = _replicas(cli, "adopt")
    old = cli.supervisor("adopt")
    os.kill(old["pid"], signal.SIGKILL)  # type: ignore[index]
    wait_for(lambda: not alive(old), timeout=30)
    assert all(pid_alive(r["pid"], r["start_time"]) for r in before.values())  # running, unsupervised

    info = cli.json("depl", "info", "--proj", PROJ, "--name", "adopt")
    looked = time.monotonic()
    new = cli.supervisor("adopt")
    assert alive(new) and new["pid"] != old["pid"]  # type: ignore[index]
    assert info["task"]["state"] == "RUNNING"
    wait_for(lambda: _answers(port), timeout=60)
    serving_after = time.monotonic() - looked
    after = _replicas(cli, "adopt")
    assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in before.items()}  # adopted as they were
    assert cli.json("depl", "info", "--proj", PROJ, "--name", "adopt")["availability"] == "2/2"

    # The new supervisor watches them although they are not its children: one that dies is restarted.
    victim = after["adopt-0"]
    os.kill(victim["pid"], signal.SIGKILL)
    wait_for(lambda: (r := _replicas(cli, "adopt").get("adopt-0")) and r["pid"] != victim["pid"]
             and r["state"] == "healthy", timeout=90)
    # The router looking (`isle router status`) adopts as well.
    second = cli.supervisor("adopt")
    replicas = {n: r["pid"] for n, r in _replicas(cli, "adopt").items()}
    os.kill(second["pid"], signal.SIGKILL)  # type: ignore[index]
    wait_for(lambda: not alive(second), timeout=30)
    cli.run("isle", "router", "status")
    third = cli.supervisor("adopt")
    assert alive(third) and third["pid"] != second["pid"]  # type: ignore[index]
    wait_for(lambda: _answers(port), timeout=60)
    assert {n: r["pid"] for n, r in _replicas(cli, "adopt").items()} == replicas
    figure(
        "local deployment supervisor SIGKILLed (2 replicas, --port balancer), then `depl info`",
        f"replicas kept running; the look started a supervisor that adopted both (same PIDs); --port balancer "
        f"serving again {serving_after:.1f}s after `depl info` returned; an adopted replica SIGKILLed later "
        "was restarted; "
        "a second supervisor SIGKILLed was replaced at `isle router status`",
        "adopted or stopped at the next look, never orphaned",
    )
    cli.run("depl", "rm", "--proj", PROJ, "--name", "adopt")
    assert not any(pid_alive(r["pid"], r["start_time"]) for r in before.values())
    assert deployment_processes(cli.home) == []


def test_a_replica_alive_but_unhealthy_past_the_threshold_is_restarted(cli: Cli, figure: Any) -> None:
    threshold = 4.0
    cli.run("depl", "new", "--proj", PROJ, "--name", "hang", "--nb", "echo.ipynb", "-n", "1",
            ATOLL_CONTAINER_MANAGER__HEALTHCHECK__UNHEALTHY_AFTER=str(threshold),
            ATOLL_CONTAINER_MANAGER__HEALTHCHECK__INTERVAL="0.5",
            ATOLL_CONTAINER_MANAGER__HEALTHCHECK__TIMEOUT="0.5",
            ATOLL_CONTAINER_MANAGER__HEALTHCHECK__RETRIES="2")
    stuck = _replicas(cli, "hang")["hang-0"]
    os.kill(stuck["pid"], signal.SIGSTOP)  # alive, but its health check hangs
    stopped = time.monotonic()
    try:
        wait_for(lambda: (r := _replicas(cli, "hang").get("hang-0")) and r["pid"] != stuck["pid"], timeout=90)
        restarted = time.monotonic() - stopped
    finally:
        if pid_alive(stuck["pid"], stuck["start_time"]):
            os.kill(stuck["pid"], signal.SIGCONT)
    assert restarted >= threshold - 1  # its last good answer was at most one interval before the stop
    assert not pid_alive(stuck["pid"], stuck["start_time"])  # stopped, not left behind
    wait_for(lambda: _replicas(cli, "hang")["hang-0"]["state"] == "healthy", timeout=90)
    info = cli.json("depl", "info", "--proj", PROJ, "--name", "hang")
    assert info["availability"] == "1/1" and info["replicas"][0]["restarts"] == 1
    log = (cli.home / "run" / "services" / PROJ / "hang" / "supervisor.log").read_text()
    assert "hang-0 unhealthy for" in log
    figure(
        f"local replica SIGSTOPped (health checks hang; healthcheck.unhealthy_after {threshold:g} s)",
        f"restarted {restarted:.1f}s after the stop (old process killed), healthy again",
        "restarted past the threshold",
    )
    cli.run("depl", "rm", "--proj", PROJ, "--name", "hang")
    assert deployment_processes(cli.home) == []
