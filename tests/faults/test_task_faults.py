"""Faults around a training's task: its runner SIGKILLed, a stored file corrupted."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from atoll.api import datasets, trainings
from atoll.domain.records import Dataset, ModelVersion, TaskState, Training
from atoll.errors import AtollError
from support.processes import processes_of, wait_for

pytestmark = pytest.mark.slow


def _stored_files(site: Any) -> list[str]:
    return site.ctx.files.list("")


def _runner_pid(site: Any, name: str) -> int:
    task_dir = site.home / "tasks" / "faults" / "train" / name
    shell_pid = json.loads((task_dir / "atoll" / "pid").read_text())["pid"]
    children = Path(f"/proc/{shell_pid}/task/{shell_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_sigkilled_runner_is_failed_at_the_first_look_with_nothing_published(site: Any, figure) -> None:
    before = _stored_files(site)
    go = site.tmp / "go-killed"
    trainings.new_training(site.ctx, "wait.ipynb", proj="faults", name="killed", params={"go": str(go)})
    wait_for(lambda: trainings.get_training(site.ctx, "killed", "faults").task.progress > 0, timeout=120)
    runner = _runner_pid(site, "killed")
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{runner}").exists(), timeout=10)
    looks = 0
    while True:  # every look is a `train info`: how many until it says FAILED?
        looks += 1
        record = trainings.get_training(site.ctx, "killed", "faults")
        if record.task.state.ended or looks >= 100:
            break
        time.sleep(0.05)
    go.touch()  # were the kernel still executing, it would now publish
    wait_for(lambda: not processes_of(site.home), timeout=30)
    time.sleep(0.5)
    versions = site.ctx.metadata.list(ModelVersion, scope="m")
    stray = sorted(set(_stored_files(site)) - set(before))
    figure("training runner SIGKILLed", f"FAILED after {looks} look(s); {len(versions)} version(s), "
           f"{len(stray)} stray file(s)", "FAILED at the 1st look, 0 versions, 0 stray files")
    assert record.task.state == TaskState.FAILED and "SIGKILL" in (record.task.error or "")
    assert looks == 1
    assert versions == [] and stray == []


def test_a_flipped_byte_fails_the_task_naming_the_file(site: Any, figure, tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "data.csv").write_text("x,y\n" + "1,2\n" * 1000)
    dataset = datasets.new_dataset(site.ctx, "m", "flipped", path=src)
    stored = site.home / "files" / f"{dataset.store_key}data.csv"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x04
    stored.chmod(0o644)
    stored.write_bytes(bytes(data))

    with pytest.raises(AtollError, match="checksum mismatch for data.csv") as info:
        trainings.new_training(site.ctx, "wait.ipynb", proj="faults", name="on-flipped",
                               datasets=["m:flipped"], params={"go": "/nonexistent"})
    record = site.ctx.metadata.get(Training, "on-flipped", "faults")
    detected = record.task.state == TaskState.FAILED and "data.csv" in (record.task.error or "")
    figure("stored file with a flipped byte", "task FAILED naming data.csv" if detected else "NOT detected",
           "task FAILED naming the file")
    assert detected and "\n" not in str(info.value)
    assert site.ctx.metadata.exists(Dataset, "flipped", "m")
