"""Shared fixtures of the local-runtime tests.

``iris`` builds the iris example once per test session in a throwaway
``ATOLL_HOME`` (sqlite metadata, local file store): the model, project,
dataset and build every training test reuses. uv's cache keeps even the
first environment cheap; later builds with the same requirements reuse it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from atoll.api import builds, datasets, models, projects
from atoll.api.context import AtollContext
from atoll.config import load_config
from atoll.domain.records import BuildVersion
from atoll.testing.conformance.containers import write_notebook

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"

IRIS_MODEL_FILES = [{"name": "clf.pkl", "required": True, "max_mb": 10}]
IRIS_DATA_FILES = [{"name": "measures.csv", "required": True}, {"name": "species.csv", "required": True}]


@dataclass
class IrisSession:
    home: Path
    project_dir: Path
    ctx: AtollContext
    build: BuildVersion
    first_build_seconds: float
    notes: dict[str, float] = field(default_factory=dict)


def copy_example(dest: Path) -> Path:
    """The iris example plus the notebooks the tests need (a failing one, a slow one)."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    write_notebook(
        dest / "notebooks" / "fail.ipynb",
        [
            "import pickle\nfrom atoll.toolkit import Publisher, tmp_path",
            "with open(tmp_path('clf.pkl'), 'wb') as f:\n    pickle.dump({'fake': True}, f)\nPublisher()()",
            "print('about to fail')\nratio = 1 / divisor",
            "print('never reached')",
        ],
        params="divisor = 0",
    )
    write_notebook(
        dest / "notebooks" / "slow.ipynb",
        ["import time\nprint('slow start', flush=True)", "for _ in range(int(seconds * 10)):\n    time.sleep(0.1)"],
        params="seconds = 120",
    )
    return dest


@pytest.fixture(scope="session")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisSession]:
    """The iris example recorded and built once in a session-wide ATOLL_HOME."""
    tmp = tmp_path_factory.mktemp("iris")
    home = tmp / "home"
    saved = os.environ.get("ATOLL_HOME")
    os.environ["ATOLL_HOME"] = str(home)
    project_dir = copy_example(tmp / "iris")
    ctx = AtollContext(load_config(project_dir), cwd=project_dir)
    try:
        models.new_model(ctx, "iris-clf", "iris classifier", model_files=IRIS_MODEL_FILES, data_files=IRIS_DATA_FILES)
        projects.new_project(ctx, "iris", models=["iris-clf"], home_dir=str(project_dir))
        datasets.new_dataset(ctx, "iris-clf", "iris", path=project_dir / "datasets" / "iris")
        started = time.monotonic()
        build = builds.build_project(ctx, "iris", source="home", log=lambda _line: None)
        yield IrisSession(home, project_dir, ctx, build, time.monotonic() - started)
    finally:
        ctx.close()
        if saved is None:
            os.environ.pop("ATOLL_HOME", None)
        else:
            os.environ["ATOLL_HOME"] = saved
