"""Run a prediction notebook in-process: the body of every deployment replica.

``python -m atoll.runner serve`` (or ``python -m atoll.runner.serve``) reads
the notebook, injects the deployment's parameters with papermill's
``parameterize_notebook`` and executes each code cell's source in one module
namespace, in this process. No Jupyter kernel is involved, so a replica starts
as fast as its imports allow and a prediction never crosses a kernel
round-trip: the last cell's ``OnlinePredict(predict)()`` simply blocks here
serving requests.

IPython syntax has no meaning outside a kernel: ``%magic`` and ``!shell``
lines (and ``%%cell`` magics) are skipped with a warning on stderr.

Exit codes: 0 when the server stopped normally, 1 when a cell raised (the
cell index and error go to stderr), 2 for a bad invocation (missing notebook,
malformed JSON), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

import orjson

from atoll.errors import AtollError
from atoll.runner.fetch import fetch_if_asked
from atoll.task.layout import TaskLayout

_INJECTED_TAG = "injected-parameters"


class CellError(Exception):
    """A notebook cell raised; carries the cell index (in the notebook as written)."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(f"cell {index} failed: {type(error).__name__}: {error}")
        self.index = index
        self.error = error


def _warn(message: str) -> None:
    print(f"atoll serve: warning: {message}", file=sys.stderr, flush=True)


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def strip_magics(source: str, index: int) -> str:
    """Drop IPython-only lines (``%``, ``%%``, ``!``), warning once per line.

    The line is replaced by ``pass`` at its indentation so the cell's
    structure (an ``if`` whose body was one magic) stays valid Python.
    """
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        _warn(f"cell {index}: skipped: cell magic {lines[0].strip()!r} needs a Jupyter kernel")
        return ""
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            _warn(f"cell {index}: skipped IPython line {stripped[:60]!r}")
            out.append(line[: len(line) - len(stripped)] + "pass")
        else:
            out.append(line)
    return "\n".join(out)


def load_cells(path: Path, params: dict[str, Any]) -> list[tuple[int, str]]:
    """The code cells to run as ``(index in the notebook as written, source)``.

    Parameters go through papermill only when there are some: importing
    papermill and nbformat costs seconds, which a replica without parameters
    should not pay on every start.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SystemExit(_usage(f"cannot read the notebook {path}: {exc.strerror}")) from exc
    try:
        nb = orjson.loads(raw)
        cells = nb["cells"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise SystemExit(_usage(f"{path} is not a Jupyter notebook: {exc}")) from exc
    if params:
        import nbformat
        from papermill.parameterize import parameterize_notebook

        node = nbformat.from_dict(nb)
        node.metadata.setdefault(
            "kernelspec", {"name": "python3", "language": "python", "display_name": "Python 3"}
        )
        node.metadata.setdefault("language_info", {"name": "python"})
        node.metadata.setdefault("papermill", {})
        for cell in node.cells:  # papermill reads tags without checking they exist
            cell.metadata.setdefault("tags", [])
        cells = parameterize_notebook(node, params, kernel_name="python3", language="python").cells
    out: list[tuple[int, str]] = []
    injected = 0
    for position, cell in enumerate(cells):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if _INJECTED_TAG in tags:
            injected = 1
            index = position  # the injected cell is numbered where it sits
        else:
            index = position - injected
        if cell.get("cell_type") == "code":
            out.append((index, _source(cell)))
    return out


def run_cells(cells: list[tuple[int, str]], filename: str) -> dict[str, Any]:
    """Execute the cells in one fresh ``__main__`` module, in order.

    The module replaces ``sys.modules['__main__']`` so objects defined in the
    notebook pickle and unpickle as they do in a kernel.

    Raises:
        CellError: a cell raised (SystemExit and KeyboardInterrupt pass through).
    """
    module = types.ModuleType("__main__")
    module.__dict__["__file__"] = filename
    module.__dict__["display"] = _display
    sys.modules["__main__"] = module
    for index, source in cells:
        code_text = strip_magics(source, index)
        if not code_text.strip():
            continue
        try:
            code = compile(code_text, f"<{filename} cell {index}>", "exec")
            exec(code, module.__dict__)  # noqa: S102 - running the user's notebook is the point
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise CellError(index, exc) from exc
    return module.__dict__


def _display(*objs: Any, **_: Any) -> None:
    """Stand-in for IPython's ``display`` outside a kernel: print the objects."""
    for obj in objs:
        print(repr(obj), flush=True)


def _usage(message: str) -> int:
    print(f"atoll serve: error: {message}", file=sys.stderr, flush=True)
    return 2


def _deployment_meta(layout: TaskLayout) -> dict[str, Any]:
    """The deployment record (notebook, params); {} when not staged."""
    try:
        data = orjson.loads(layout.record_file("deployment").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m atoll.runner serve",
        description="Execute a prediction notebook in this process; its last cell serves.",
    )
    parser.add_argument(
        "--notebook",
        help="path of the notebook (relative to the app dir); default: the deployment record's notebook",
    )
    parser.add_argument("--params", help="JSON object of parameters; default: the deployment record's params")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the notebook; return the process exit code."""
    args = parse_args(argv)
    layout = TaskLayout.current()
    meta = _deployment_meta(layout)
    app_dir = layout.app_dir
    notebook = args.notebook or meta.get("notebook")
    if not notebook:
        return _usage("no notebook: pass --notebook or stage atoll/meta/deployment.json")
    path = Path(notebook)
    if not path.is_absolute():
        path = app_dir / path
    if args.params is not None:
        try:
            params = orjson.loads(args.params)
        except orjson.JSONDecodeError as exc:
            return _usage(f"--params: malformed JSON: {exc}")
    else:
        params = meta.get("params") or {}
    if not isinstance(params, dict):
        return _usage("the parameters must be a JSON object")
    try:
        fetch_if_asked(layout)
    except AtollError as exc:
        print(f"atoll serve: error: cannot fetch the task's inputs: {exc}", file=sys.stderr, flush=True)
        return 1
    if app_dir.is_dir():
        os.chdir(app_dir)
        sys.path.insert(0, str(app_dir))
    try:
        cells = load_cells(path, params)
    except SystemExit as exc:
        return int(exc.code or 2)
    try:
        run_cells(cells, str(path))
    except CellError as exc:
        traceback.print_exception(exc.error, file=sys.stderr)
        print(f"atoll serve: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
