"""The in-process notebook runner of deployment replicas (``python -m atoll.runner serve``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import write_notebook

from atoll.runner.serve import CellError, load_cells, run_cells, strip_magics


def test_magics_are_skipped_with_a_warning_and_indentation_kept(capsys: pytest.CaptureFixture[str]) -> None:
    source = "%matplotlib inline\nif True:\n    !pip list\nx = 1"
    assert strip_magics(source, 3) == "pass\nif True:\n    pass\nx = 1"
    assert strip_magics("%%time\nx = 1", 4) == ""
    err = capsys.readouterr().err
    assert "cell 3: skipped IPython line '%matplotlib inline'" in err
    assert "cell 4: skipped: cell magic '%%time'" in err


@pytest.fixture(autouse=True)
def _keep_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_cells installs the notebook as ``__main__``: give pytest its own back afterwards."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


def test_parameters_are_injected_and_cells_numbered_as_written(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", ["result = greeting * 2", "raise KeyError('missing')"])
    cells = load_cells(path, {"greeting": "hey"})
    namespace_cells = cells[:3]  # parameters, injected parameters, result
    assert "greeting = \"hey\"" in namespace_cells[1][1]
    assert [index for index, _ in cells] == [0, 1, 1, 2]  # the injected cell sits after cell 0
    with pytest.raises(CellError) as info:
        run_cells(cells, str(path))
    assert info.value.index == 2
    assert "cell 2 failed: KeyError" in str(info.value)


def test_without_parameters_papermill_is_not_needed(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nb.ipynb", ["y = greeting.upper()"])
    namespace = run_cells(load_cells(path, {}), str(path))
    assert namespace["y"] == "HELLO"
    assert namespace["__name__"] == "__main__"


def test_a_failing_cell_exits_non_zero_with_the_cell_index(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    write_notebook(tmp_path / "app" / "nb.ipynb", ["import json", "json.loads('{oops')"])
    done = subprocess.run(
        [sys.executable, "-m", "atoll.runner", "serve", "--notebook", "nb.ipynb"],
        env={**os.environ, "ATOLL_TASK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "atoll serve: error: cell 2 failed: JSONDecodeError" in done.stderr


def test_a_missing_notebook_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "atoll.runner", "serve", "--notebook", "nope.ipynb"],
        env={**os.environ, "ATOLL_TASK_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot read the notebook" in done.stderr
