"""The fault suite: each test injects one fault and records a figure; the table is printed at
the end of the session by tests/conftest.py (and copied into README.md, "Fault suite").

Reproduce: ``flock /tmp/atoll-heavy.lock .venv/bin/pytest tests/faults -q``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from atoll.api import models, projects
from atoll.api.context import AtollContext
from atoll.config import load_config
from atoll.containers.local.build import _write_kernelspec
from atoll.domain.records import BuildVersion, TaskState, Training
from atoll.runner import KERNEL_NAME
from runtime.deploy_helpers import write_notebook
from support.processes import kill_all, processes_of

# The name under which a figure travels in the test's report (``user_properties``): the table is
# printed by tests/conftest.py, which the pytest-xdist controller loads (it never loads this file).
FIGURE = "fault figure"

PUBLISH_CELL = """import pickle
from atoll.toolkit import Publisher, tmp_path
with open(tmp_path('clf.pkl'), 'wb') as f:
    pickle.dump({'model': True}, f)
Publisher()()"""


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Any:
    """``figure(fault, measured, target)``: one row of the fault table."""

    def record(fault: str, measured: str, target: str) -> None:
        request.node.user_properties.append((FIGURE, (fault, measured, target)))
        print(f"\n[fault] {fault}: {measured} (target: {target})")

    return record


@dataclass
class Site:
    """A throwaway ATOLL_HOME (SQLite + local file store) with model ``m`` and project ``faults``
    whose build is the test environment plus a directory of notebooks (no `proj build` needed)."""

    home: Path
    tmp: Path
    ctx: AtollContext

    def wait_training(self, name: str, state: TaskState | None = None, timeout: float = 120) -> Training:
        from atoll.api import trainings

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = trainings.get_training(self.ctx, name, "faults")
            if (state is None and record.task.state.ended) or record.task.state == state:
                return record
            time.sleep(0.1)
        raise AssertionError(f"training {name} not {state or 'ended'} within {timeout}s")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("faults")
    home = tmp / "home"
    saved = os.environ.get("ATOLL_HOME")
    os.environ["ATOLL_HOME"] = str(home)
    app = tmp / "build" / "app"
    write_notebook(
        app / "wait.ipynb",
        [
            "import os, time\nfor _ in range(1200):\n    if os.path.exists(go):\n        break\n    time.sleep(0.1)",
            PUBLISH_CELL,
        ],
        params="go = ''",
    )
    ctx = AtollContext(load_config(tmp), cwd=tmp)
    try:
        models.new_model(ctx, "m", model_files=[{"name": "clf.pkl", "required": True}],
                         data_files=[{"name": "data.csv", "required": True}])
        projects.new_project(ctx, "faults", models=["m"])
        env_dir = Path(sys.executable).parent.parent
        # A local build's environment carries the runner's kernelspec; give the test environment
        # the same one (what `proj build` writes into every build environment).
        if not (env_dir / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json").exists():
            _write_kernelspec(env_dir)
        ctx.metadata.create(BuildVersion(name="latest", proj="faults", location=str(tmp / "build"),
                                         details={"env_dir": str(env_dir)}))
        yield Site(home, tmp, ctx)
    finally:
        for record in ctx.metadata.list(Training, scope="faults"):
            if not record.task.state.ended and record.task_id:
                ctx.containers.stop_task(record.task_id)
        deadline = time.monotonic() + 20
        while processes_of(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers = processes_of(home)
        kill_all(leftovers)
        ctx.close()
        if saved is None:
            os.environ.pop("ATOLL_HOME", None)
        else:
            os.environ["ATOLL_HOME"] = saved
        assert leftovers == [], "processes were left running"
