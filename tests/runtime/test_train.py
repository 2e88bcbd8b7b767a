"""Trainings on the local runtime: real runner processes, real kernels, real stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import kill_all, processes_of, wait_for

from atoll.api import trainings
from atoll.containers.local.process import pid_alive
from atoll.domain.records import ModelVersion, TaskState, Training
from atoll.errors import AlreadyExistsError, ConflictError, NotFoundError, UsageError

pytestmark = pytest.mark.slow


@pytest.fixture
def session(iris: Any) -> Iterator[Any]:
    """The shared iris session; every process a test started is gone afterwards."""
    yield iris
    for record in iris.ctx.metadata.list(Training, scope="iris"):
        if not record.task.state.ended and record.task_id:
            iris.ctx.containers.stop_task(record.task_id)
    deadline = time.monotonic() + 20  # kernels notice their runner is gone within seconds
    while processes_of(iris.home) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = [pid for pid in processes_of(iris.home) if pid_alive(pid, None)]
    kill_all(leftovers)
    assert leftovers == [], "training processes were left running"


def _wait(session: Any, name: str, timeout: float = 240) -> Training:
    record = session.ctx.metadata.get(Training, name, "iris")
    return trainings.wait_training(session.ctx, record, timeout=timeout)


def _wait_running(session: Any, name: str) -> Training:
    def running() -> Training | None:
        record = trainings.get_training(session.ctx, name, "iris")
        return record if record.task.state == TaskState.RUNNING and record.task.progress > 0 else None

    return wait_for(running, timeout=120, every=0.2)


def test_iris_training_publishes_a_version(session: Any) -> None:
    ctx = session.ctx
    lines: list[str] = []
    seen: list[float] = []
    started = time.monotonic()
    record = trainings.new_training(
        ctx, "notebooks/train.ipynb", proj="iris", name="svc-linear",
        params={"C": 0.5, "kernel": "linear"}, datasets=["iris-clf:iris"],
    )
    assert record.task.state == TaskState.WAITING and record.task_id
    final = trainings.wait_training(
        ctx, record, on_line=lines.append, on_progress=lambda r: seen.append(r.task.progress), timeout=240
    )
    session.notes["iris_training_seconds"] = time.monotonic() - started

    assert final.task.state == TaskState.FINISHED, final.task.error
    assert final.task.progress == 1.0
    assert final.task.start_time is not None
    assert any(0 < p < 1 for p in seen), f"no intermediate progress was recorded: {seen}"
    assert any("cross-validated metrics" in line for line in lines)
    assert final.params == {"C": 0.5, "kernel": "linear"}
    assert [d.name for d in final.datasets] == ["iris"]

    version = ctx.metadata.get(ModelVersion, "svc-linear", "iris-clf")
    assert [f.name for f in version.files] == ["clf.pkl"]
    metrics = version.details["metrics"]
    assert set(metrics) == {"accuracy", "f1_macro"} and metrics["accuracy"] > 0.9
    assert version.train is not None and version.train.name == "svc-linear"
    assert version.train.task.state == TaskState.RUNNING  # snapshot taken while it ran
    assert version.dataset is not None and version.dataset.name == "iris"

    assert final.output_notebook == "trainings/iris/svc-linear/output.ipynb"
    stored = session.home / "files" / final.output_notebook
    executed = json.loads(stored.read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "C = 0.5" in "".join(injected[0]["source"])
    assert trainings.notebook_location(ctx, final) == str(stored)
    task_dir = session.home / "tasks" / "iris" / "train" / "svc-linear"
    assert (task_dir / "atoll" / "exit_code").read_text().strip() == "0"
    assert (task_dir / "atoll" / "secret" / "store.json").stat().st_mode & 0o077 == 0


def test_failing_notebook_records_cell_and_leaves_no_version(session: Any) -> None:
    ctx = session.ctx
    record = trainings.new_training(ctx, "notebooks/fail.ipynb", proj="iris", name="boom")
    final = _wait(session, "boom")
    assert final.task.state == TaskState.FAILED
    assert final.task.error == "ZeroDivisionError: division by zero"
    assert final.task.failed_cell == 3  # index in the notebook as written (0 = parameters cell)
    assert not ctx.metadata.exists(ModelVersion, "boom", "iris-clf"), "a failed training left a version"
    assert final.output_notebook and ctx.files.exists(final.output_notebook)
    task_dir = session.home / "tasks" / "iris" / "train" / record.name
    assert (task_dir / "atoll" / "exit_code").read_text().strip() == "1"
    log = "\n".join(trainings.training_logs(ctx, "boom", "iris"))
    assert "about to fail" in log and "never reached" not in log


def test_cancel_stops_the_training(session: Any) -> None:
    ctx = session.ctx
    trainings.new_training(ctx, "notebooks/slow.ipynb", proj="iris", name="to-cancel")
    running = _wait_running(session, "to-cancel")
    with pytest.raises(ConflictError, match="RUNNING"):
        trainings.remove_training(ctx, "to-cancel", "iris")
    cancelled = trainings.cancel_training(ctx, "to-cancel", "iris")
    assert cancelled.task.state == TaskState.CANCELLED
    assert not ctx.containers.task_status(running.task_id or "").running
    final = wait_for(lambda: (r := ctx.metadata.get(Training, "to-cancel", "iris")).output_notebook and r, 30)
    assert final.task.state == TaskState.CANCELLED  # the runner's own bookkeeping kept it
    with pytest.raises(ConflictError, match="already ended"):
        trainings.cancel_training(ctx, "to-cancel", "iris")
    trainings.remove_training(ctx, "to-cancel", "iris")
    assert not (session.home / "tasks" / "iris" / "train" / "to-cancel").exists()
    assert not ctx.files.exists("trainings/iris/to-cancel/output.ipynb")


def _runner_pid(shell_pid: int) -> int:
    children = Path(f"/proc/{shell_pid}/task/{shell_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_killed_task_is_recorded_failed(session: Any) -> None:
    ctx = session.ctx
    trainings.new_training(ctx, "notebooks/slow.ipynb", proj="iris", name="oom-victim")
    _wait_running(session, "oom-victim")
    task_dir = session.home / "tasks" / "iris" / "train" / "oom-victim"
    shell_pid = json.loads((task_dir / "atoll" / "pid").read_text())["pid"]
    os.kill(_runner_pid(shell_pid), signal.SIGKILL)
    failed = wait_for(
        lambda: (r := trainings.get_training(ctx, "oom-victim", "iris")).task.state.ended and r, timeout=30
    )
    assert failed.task.state == TaskState.FAILED
    assert failed.task.error is not None and "task ended unexpectedly (killed by SIGKILL" in failed.task.error
    # the orphaned kernel notices its parent is gone and exits
    wait_for(lambda: not processes_of(session.home), timeout=30)


def test_new_training_validates_before_recording(session: Any) -> None:
    ctx = session.ctx
    before = ctx.metadata.count(Training, scope="iris")
    with pytest.raises(NotFoundError, match="not part of the build"):
        trainings.new_training(ctx, "notebooks/missing.ipynb", proj="iris", name="v1")
    with pytest.raises(NotFoundError):
        trainings.new_training(ctx, "notebooks/train.ipynb", proj="iris", name="v2", datasets=["iris-clf:nope"])
    with pytest.raises(UsageError, match="MODEL:DATASET"):
        trainings.new_training(ctx, "notebooks/train.ipynb", proj="iris", name="v3", datasets=["iris"])
    with pytest.raises(NotFoundError, match="no build"):
        trainings.new_training(ctx, "notebooks/train.ipynb", proj="iris", name="v4", tag="nope")
    with pytest.raises(UsageError, match="reserved"):
        trainings.new_training(ctx, "notebooks/train.ipynb", proj="iris", name="v5", env={"ATOLL_TASK_DIR": "/"})
    with pytest.raises(UsageError, match="relative"):
        trainings.new_training(ctx, "../train.ipynb", proj="iris", name="v6")
    assert ctx.metadata.count(Training, scope="iris") == before
    ctx.metadata.create(
        Training(name="taken", proj="iris", notebook="notebooks/train.ipynb", bvers=session.build)
    )
    with pytest.raises(AlreadyExistsError):
        trainings.new_training(ctx, "notebooks/train.ipynb", proj="iris", name="taken")
    ctx.metadata.delete(Training, "taken", "iris")


def _cli(session: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATOLL_HOME": str(session.home)}
    return subprocess.run(
        [sys.executable, "-m", "atoll.cli.main", *args],
        cwd=session.project_dir, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_cli_train_new_exit_codes(session: Any) -> None:
    ok = _cli(session, "train", "new", "--proj", "iris", "--name", "cli-ok", "--nb", "notebooks/train.ipynb",
              "--params", '{"C": 2.0}', "--dataset", "iris-clf:iris", "--env", "EXTRA=1")
    assert ok.returncode == 0, ok.stderr
    assert "cross-validated metrics" in ok.stdout
    assert "FINISHED" in ok.stderr
    info = _cli(session, "-o", "json", "train", "info", "--proj", "iris", "--name", "cli-ok")
    assert info.returncode == 0, info.stderr
    record = json.loads(info.stdout)
    assert record["task"]["state"] == "FINISHED" and record["env_keys"] == ["EXTRA"]

    bad = _cli(session, "train", "new", "--proj", "iris", "--name", "cli-bad", "--nb", "notebooks/fail.ipynb")
    assert bad.returncode == 1
    assert "failed in cell 3: ZeroDivisionError: division by zero" in bad.stderr

    listed = _cli(session, "-o", "json", "train", "list", "--proj", "iris", "--filter", '{"task.state": "FAILED"}')
    assert listed.returncode == 0, listed.stderr
    assert "cli-bad" in [r["name"] for r in json.loads(listed.stdout)]
    logs = _cli(session, "train", "logs", "--proj", "iris", "--name", "cli-ok")
    assert "cross-validated metrics" in logs.stdout
    malformed = _cli(session, "train", "new", "--proj", "iris", "--nb", "notebooks/train.ipynb", "--params", "{C")
    assert malformed.returncode == 2 and "--params" in malformed.stderr
