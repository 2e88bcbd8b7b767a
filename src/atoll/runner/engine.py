"""Papermill engine ``atoll``: nbclient execution plus per-cell progress reports.

Papermill's base :class:`~papermill.engines.Engine` wraps the notebook in a
:class:`~papermill.engines.NotebookExecutionManager` whose ``cell_complete``
hook runs after every cell. The ``atoll`` engine uses a manager subclass that
also reports ``code cells done / code cells total`` to a callback, so the
runner can push progress to the training record while the notebook runs.

Use it as ``papermill.execute_notebook(..., engine_name="atoll",
on_progress=callback)``; ``on_progress(fraction, cell_index)`` is called
after each code cell (the injected-parameters cell included). ``on_start()``
is called once, with the kernel up, before the first cell: the runner opens
its stores while the kernel starts and waits for them there. If it raises,
no cell runs and the exception ends the execution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ProgressCallback = Callable[[float, int], None]
StartCallback = Callable[[], None]

ENGINE_NAME = "atoll"


class ProgressExecutionManager(NotebookExecutionManager):  # type: ignore[misc]
    """Execution manager that reports the fraction of code cells completed."""

    def __init__(
        self,
        nb: Any,
        *,
        on_progress: ProgressCallback | None = None,
        on_start: StartCallback | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(nb, **kwargs)
        self.on_progress = on_progress
        self.on_start = on_start
        self.cells_started = on_start is None
        self.code_cells = sum(1 for cell in nb.cells if cell.get("cell_type") == "code")
        self.code_cells_done = 0

    def cell_start(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        if not self.cells_started and self.on_start is not None:
            self.on_start()  # may raise: then no cell runs (see cell_complete)
            self.cells_started = True
        super().cell_start(cell, cell_index=cell_index, **kwargs)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        if not self.cells_started:  # on_start raised: papermill still calls this for the first cell
            return
        super().cell_complete(cell, cell_index=cell_index, **kwargs)
        if cell.get("cell_type") != "code":
            return
        self.code_cells_done += 1
        if self.on_progress is not None and self.code_cells:
            self.on_progress(min(1.0, self.code_cells_done / self.code_cells), cell_index or 0)


class AtollEngine(NBClientEngine):  # type: ignore[misc]
    """nbclient execution with a :class:`ProgressExecutionManager`."""

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str | None,
        output_path: str | None = None,
        progress_bar: bool = False,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        on_progress: ProgressCallback | None = None,
        on_start: StartCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        # Same sequence as papermill's Engine.execute_notebook, with our manager.
        nb_man = ProgressExecutionManager(
            nb,
            on_progress=on_progress,
            on_start=on_start,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


def register() -> None:
    """Make ``engine_name="atoll"`` available to papermill (idempotent)."""
    papermill_engines.register(ENGINE_NAME, AtollEngine)


register()

__all__ = [
    "ENGINE_NAME",
    "AtollEngine",
    "ProgressCallback",
    "ProgressExecutionManager",
    "StartCallback",
    "register",
]
