"""A training's notebook is checked before any record exists (issue 12: no record for a bad notebook)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from atoll.api import projects, trainings
from atoll.api.context import AtollContext
from atoll.domain.records import BuildVersion, Training
from atoll.errors import UsageError


def _notebook(path: Path, tagged: bool) -> None:
    nb = new_notebook()
    cell = new_code_cell("C = 1.0")
    if tagged:
        cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell("print(C)")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture
def build_dir(ctx: AtollContext, tmp_path: Path) -> Path:
    root = tmp_path / "build"
    app = root / "app"
    app.mkdir(parents=True)
    (app / "text.ipynb").write_text("this is not JSON")
    (app / "json.ipynb").write_text('{"cells": "nope"}')
    (app / "bytes.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    _notebook(app / "untagged.ipynb", tagged=False)
    _notebook(app / "tagged.ipynb", tagged=True)
    projects.new_project(ctx, "proj")
    ctx.metadata.create(BuildVersion(name="latest", proj="proj", location=str(root)))
    return root


@pytest.mark.parametrize("notebook", ["text.ipynb", "json.ipynb", "bytes.ipynb"])
def test_a_file_that_is_not_a_notebook_is_refused_without_a_record(
    ctx: AtollContext, build_dir: Path, notebook: str
) -> None:
    with pytest.raises(UsageError, match="not a Jupyter notebook") as info:
        trainings.new_training(ctx, notebook, proj="proj", name="t1")
    assert info.value.exit_code == 2
    assert ctx.metadata.list(Training) == []


def test_params_need_a_parameters_cell(ctx: AtollContext, build_dir: Path) -> None:
    with pytest.raises(UsageError, match="no cell tagged 'parameters'"):
        trainings.new_training(ctx, "untagged.ipynb", proj="proj", name="t1", params={"C": 2})
    assert ctx.metadata.list(Training) == []
    # Without --params the same notebook is fine, and a tagged one takes them.
    location = str(build_dir)
    assert trainings._check_notebook(location, "untagged.ipynb", None) == "untagged.ipynb"
    assert trainings._check_notebook(location, "tagged.ipynb", {"C": 2}) == "tagged.ipynb"
