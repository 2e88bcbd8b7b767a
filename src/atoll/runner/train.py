"""Execute a training notebook: ``python -m atoll.runner train``.

Runs in the task directory's ``app`` (cwd) with the build's environment. It
reads ``atoll/meta/training.json``, marks the record RUNNING, executes the
notebook with papermill's ``atoll`` engine (parameters injected after the
``parameters``-tagged cell, output streamed to stdout, progress pushed after
every code cell, at most every 0.5 s plus the final one), stores the executed
notebook under ``trainings/<project>/<name>/output.ipynb`` whatever the
outcome, then marks the record FINISHED, FAILED (error + failing cell) or
CANCELLED (SIGTERM from ``atoll train cancel``).

Exit codes: 0 finished, 1 the notebook failed, 2 bad task layout, 143 cancelled.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.runner.fetch import fetch_if_asked
from atoll.task.layout import task_root

if TYPE_CHECKING:
    from atoll.domain.records import Training

PROGRESS_INTERVAL = 0.5


class Cancelled(BaseException):
    """Raised in the runner when it receives SIGTERM (``atoll train cancel``)."""


class _NotStarted(BaseException):
    """Stops papermill before the first cell: the record ended before it could run."""


class ProgressReporter:
    """Pushes progress to the record, throttled, never going backwards."""

    def __init__(self, metadata: Any, proj: str, name: str, interval: float = PROGRESS_INTERVAL) -> None:
        self.metadata = metadata
        self.proj = proj
        self.name = name
        self.interval = interval
        self.last_write = 0.0
        self.pending: float | None = None

    def __call__(self, fraction: float, cell_index: int) -> None:
        self.pending = fraction
        if time.monotonic() - self.last_write >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending is None or self.metadata is None:
            return
        fraction, self.pending = self.pending, None
        from atoll.domain.records import TaskState
        from atoll.task.records import update_training

        def change(record: Training) -> bool:
            if record.task.state != TaskState.RUNNING or record.task.progress >= fraction:
                return False
            record.task.progress = fraction
            return True

        try:
            update_training(self.metadata, self.proj, self.name, change)
        except Exception as exc:  # noqa: BLE001 - progress is best effort; the run goes on
            print(f"atoll: warning: cannot record progress: {exc}", file=sys.stderr, flush=True)
        self.last_write = time.monotonic()


def _source_cell_index(output_nb: Path, executed_index: int) -> int:
    """Index of the failing cell in the notebook as written (papermill adds one cell)."""
    try:
        import nbformat

        nb = nbformat.read(str(output_nb), as_version=4)
    except Exception:  # noqa: BLE001 - unreadable output: report papermill's index
        return executed_index
    injected = [
        i
        for i, cell in enumerate(nb.cells)
        if "injected-parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    return executed_index - 1 if injected and injected[0] < executed_index else executed_index


def _remove_published_versions(metadata: Any, files: Any, proj: str, name: str) -> None:
    """A training that did not finish leaves no model version behind."""
    from atoll.domain.records import ModelVersion

    try:
        from atoll.files.artifacts import delete_artifact_files

        for version in metadata.list(ModelVersion, filter={"train.proj": proj, "train.name": name}):
            if version.stored:
                delete_artifact_files(files, version)
            metadata.delete(ModelVersion, version.name, version.model)
            print(f"atoll: removed model version {version.ref}: its training did not finish", flush=True)
    except Exception as exc:  # noqa: BLE001 - reported; the record still gets its final state
        print(f"atoll: warning: cannot remove versions of the failed training: {exc}", file=sys.stderr)


def _on_sigterm(signum: int, frame: object) -> None:
    raise Cancelled()


def _configure_logging() -> None:
    """Papermill's warnings go to the task log; cell output is written raw to stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("atoll: %(message)s"))
    papermill_log = logging.getLogger("papermill")
    papermill_log.handlers[:] = [handler]
    papermill_log.setLevel(logging.WARNING)
    papermill_log.propagate = False


class _TaskStart:
    """Opens the task's stores and marks the record RUNNING, in a thread.

    Importing and connecting the stores takes most of a second; it runs while
    papermill imports and starts the kernel, and the runner joins it before
    the first cell (so RUNNING is recorded before any cell runs or reports).
    """

    def __init__(self, proj: str, name: str) -> None:
        self.proj = proj
        self.name = name
        self.metadata: Any = None
        self.files: Any = None
        self.running = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name="atoll-task-start", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            from atoll.domain.records import TaskState, utcnow
            from atoll.task.records import update_training
            from atoll.task.stores import task_stores

            self.metadata, self.files = task_stores()

            def start(record: Training) -> bool:
                if record.task.state.ended:  # cancelled before it started
                    return False
                record.task.state = TaskState.RUNNING
                record.task.start_time = utcnow()
                record.task.progress = 0.0
                return True

            record = update_training(self.metadata, self.proj, self.name, start)
            self.running = record.task.state == TaskState.RUNNING
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by wait()
            self.error = exc

    def wait(self) -> bool:
        """True once the record is RUNNING; False if it ended first; raises the stores' error."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.running


def run_training(task_dir: Path) -> int:
    """Execute the training staged in ``task_dir``; return the exit code."""
    import orjson

    from atoll.task.layout import TaskLayout

    layout = TaskLayout(task_dir)
    meta_path = layout.record_file("training")
    try:
        meta = orjson.loads(meta_path.read_bytes())
        proj, name, notebook = meta["proj"], meta["name"], meta["notebook"]
        params = meta.get("params") or {}
        profile = meta.get("resource_profile") or {}
    except (OSError, KeyError, ValueError, AttributeError) as exc:
        print(f"atoll: error: cannot read the training record {meta_path}: {exc}", file=sys.stderr)
        return 2

    out_path = task_dir / "atoll" / "output.ipynb"
    out_path.unlink(missing_ok=True)
    task = _TaskStart(proj, name)
    reporter = ProgressReporter(None, proj, name)
    started = time.monotonic()
    announced = False

    def announce() -> None:
        nonlocal started, announced
        announced, started = True, time.monotonic()
        print(f"atoll: executing {notebook} with parameters {orjson.dumps(params).decode()}", flush=True)

    def before_first_cell() -> None:
        if not task.wait():
            raise _NotStarted()
        reporter.metadata = task.metadata
        fetch_if_asked(layout, task.files)
        announce()

    failure: BaseException | None = None
    try:
        import papermill

        from atoll.runner import KERNEL_NAME
        from atoll.runner.engine import ENGINE_NAME

        papermill.execute_notebook(
            str(Path(notebook)),
            str(out_path),
            parameters=params,
            engine_name=ENGINE_NAME,
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            log_output=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            cwd=str(Path.cwd()),
            on_progress=reporter,
            on_start=before_first_cell,
        )
    except _NotStarted:
        pass
    except (Cancelled, Exception) as exc:  # noqa: BLE001 - any failure becomes FAILED with its message
        failure = exc
    # The record first: a store failure or a cancel before the start wins, as
    # when the stores were opened before papermill.
    try:
        running = task.wait()
    except BaseException:
        out_path.unlink(missing_ok=True)  # nothing ran: leave no notebook behind
        raise
    if not running:
        out_path.unlink(missing_ok=True)
        print("atoll: the training was cancelled before it started", flush=True)
        return 143
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the bookkeeping even if cancelled now
    if not announced:
        announce()
    limit = profile.get("memory_limit") if isinstance(profile, dict) else None
    hint = f" (over the memory_limit of resource profile {profile.get('name')}: {limit} MB)" if limit else ""
    return _conclude(task, reporter, out_path, proj, name, failure, started, hint)


def _conclude(
    task: _TaskStart,
    reporter: ProgressReporter,
    out_path: Path,
    proj: str,
    name: str,
    failure: BaseException | None,
    started: float,
    memory_hint: str = "",
) -> int:
    """Report the outcome, store the executed notebook, record the final state; the exit code.

    ``memory_hint`` is added to a ``MemoryError`` (the task's memory limit, when it has one).
    """
    from atoll.domain.records import TaskState
    from atoll.task.outputs import output_key
    from atoll.task.records import update_training

    metadata, files = task.metadata, task.files
    state, error, failed_cell, code = TaskState.FINISHED, None, None, 0
    if isinstance(failure, Cancelled):
        state, error, code = TaskState.CANCELLED, "cancelled by the user", 143
    elif failure is not None:
        from papermill.exceptions import PapermillExecutionError

        code = 1
        state = TaskState.FAILED
        if isinstance(failure, PapermillExecutionError):
            error = f"{failure.ename}: {failure.evalue}" + (memory_hint if failure.ename == "MemoryError" else "")
            failed_cell = _source_cell_index(out_path, failure.cell_index)
            print(f"atoll: cell {failed_cell} failed: {error}", file=sys.stderr, flush=True)
        else:
            error = f"{type(failure).__name__}: {failure}"
            traceback.print_exception(failure)
    last_progress, reporter.pending = reporter.pending, None  # written with the final state below
    if state != TaskState.FINISHED:
        _remove_published_versions(metadata, files, proj, name)

    stored: str | None = None
    if out_path.is_file():
        try:
            stored = output_key(proj, name)
            files.upload(out_path, stored)
        except Exception as exc:  # noqa: BLE001 - reported; the outcome is still recorded
            stored = None
            print(f"atoll: warning: cannot store the executed notebook: {exc}", file=sys.stderr, flush=True)

    def finish(record: Training) -> None:
        if (
            last_progress is not None
            and record.task.state == TaskState.RUNNING
            and record.task.progress < last_progress
        ):
            record.task.progress = last_progress
        if stored:
            record.output_notebook = stored
        if record.task.state.ended and record.task.state != state:
            return  # e.g. cancel already recorded: keep it, just add the notebook
        record.task.state = state
        record.task.error = error
        record.task.failed_cell = failed_cell
        if state == TaskState.FINISHED:
            record.task.progress = 1.0

    final = update_training(metadata, proj, name, finish)
    elapsed = time.monotonic() - started
    print(f"atoll: training {proj}:{name} {final.task.state.value} in {elapsed:.1f}s", flush=True)
    if final.task.state == TaskState.CANCELLED:
        return 143
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m atoll.runner train``."""
    if argv:
        print(f"usage: python -m atoll.runner train (unexpected {argv})", file=sys.stderr)
        return 2
    task_dir = task_root()
    signal.signal(signal.SIGTERM, _on_sigterm)
    _configure_logging()
    try:
        return run_training(task_dir)
    except Cancelled:
        return 143
    except Exception as exc:  # noqa: BLE001 - the record could not be read or written
        traceback.print_exc()
        print(f"atoll: error: {exc}", file=sys.stderr, flush=True)
        return 1


__all__ = ["ProgressReporter", "main", "run_training"]
