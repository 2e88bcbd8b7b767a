"""Trainings: one parameterized execution of a notebook on a build version.

``new_training`` checks everything first (build, notebook, datasets,
pretrained versions, parameters), writes the record WAITING with its
snapshots, then asks the container manager to start the task; the on-board
runner moves the record to RUNNING and FINISHED/FAILED. A task that dies
without reporting (SIGKILL, out of memory, a crashed host process) is caught
by :func:`reconcile`, which every read goes through, and recorded FAILED.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from atoll.api.builds import get_build, task_options, task_spec
from atoll.api.context import AtollContext
from atoll.api.projects import get_project, resolve_project_name
from atoll.api.records import Filter, build, drop_damaged, fresh_name, remove_record
from atoll.domain.names import validate_name
from atoll.domain.records import Dataset, ModelVersion, TaskState, Training
from atoll.errors import (
    AlreadyExistsError,
    AtollError,
    ConflictError,
    NotFoundError,
    UsageError,
)
from atoll.task.outputs import output_key
from atoll.task.records import update_training

_NO_LINE = object()
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables a user must not override: they wire the task to its layout and stores.
_RESERVED_ENV = frozenset({"ATOLL_TASK_DIR", "ATOLL_STORE_CONFIG", "ATOLL_HOME", "PATH", "VIRTUAL_ENV"})


def parse_ref(ref: str, option: str, what: str) -> tuple[str, str]:
    """``"model:name"`` → ``("model", "name")``, both validated."""
    model, sep, name = ref.partition(":")
    if not sep:
        raise UsageError(f"{option} {ref!r}: expected MODEL:{what.upper().replace(' ', '_')}")
    return validate_name(model, "model name"), validate_name(name, f"{what} name")


def _check_env(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not _ENV_KEY.fullmatch(key):
            raise UsageError(f"--env {key}: not a valid environment variable name")
        if key in _RESERVED_ENV:
            raise UsageError(f"--env {key}: reserved by Atoll")
    return env


def _check_notebook(build_location: str | None, notebook: str, params: dict[str, Any] | None = None) -> str:
    """The notebook path, relative to the project root, checked against the build's files.

    Where the build's files are on this machine (local builds), the notebook is
    read before any record exists: it must be a Jupyter notebook, and given
    ``params`` it must have a cell tagged ``parameters`` (papermill would
    otherwise run it with its defaults and only warn).
    """
    rel = Path(notebook)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UsageError(f"--nb {notebook}: give a path relative to the project root")
    if rel.suffix != ".ipynb":
        raise UsageError(f"--nb {notebook}: not a notebook (.ipynb)")
    if build_location is not None:
        path = Path(build_location) / "app" / rel
        if not path.is_file():
            raise NotFoundError(f"notebook {notebook} is not part of the build (rebuild after adding it?)")
        cells = _notebook_cells(path, notebook)
        if params and not any("parameters" in _tags(cell) for cell in cells):
            raise UsageError(
                f"--params: notebook {notebook} has no cell tagged 'parameters' to receive them "
                "(tag one in Jupyter: View > Cell Toolbar > Tags)"
            )
    return rel.as_posix()


def _notebook_cells(path: Path, notebook: str) -> list[Any]:
    """The cells of a notebook file; UsageError when it is not one."""
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UsageError(f"--nb {notebook}: not a Jupyter notebook (not JSON: {str(exc)[:80]})") from None
    except OSError as exc:
        raise UsageError(f"--nb {notebook}: cannot read it: {exc.strerror}") from exc
    if not (isinstance(data, dict) and isinstance(data.get("cells"), list) and isinstance(data.get("nbformat"), int)):
        raise UsageError(f"--nb {notebook}: not a Jupyter notebook (no 'cells' and 'nbformat')")
    return data["cells"]


def _tags(cell: Any) -> list[Any]:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return tags if isinstance(tags, list) else []


def new_training(
    ctx: AtollContext,
    notebook: str,
    proj: str | None = None,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    tag: str = "latest",
    env: dict[str, str] | None = None,
    datasets: list[str] | None = None,
    pretrained: list[str] | None = None,
    resource_profile: str | None = None,
    mounts: list[str] | None = None,
) -> Training:
    """Record a training and start it (detached); return the record with its task id.

    Raises:
        NotFoundError: project, build, notebook, dataset or version missing.
        AlreadyExistsError: the project has a training of that name.
        UsageError: malformed names, references, parameters, env or mounts; an unknown resource profile.
    """
    profile, mount_list = task_options(ctx, "train", resource_profile, mounts)
    project = get_project(ctx, proj)
    name = fresh_name(ctx, Training, project.name, name)
    if ctx.metadata.exists(Training, name, project.name):
        raise AlreadyExistsError(
            f"training {project.name}:{name} already exists (remove it or pick another name)"
        )
    if params is not None and not isinstance(params, dict):
        raise UsageError("--params must be a JSON object")
    env = _check_env(dict(env or {}))
    bvers = get_build(ctx, project.name, tag)
    notebook = _check_notebook(bvers.location if bvers.container_manager == "local" else None, notebook, params)
    ds_records = []
    for ref in datasets or []:
        model, ds = parse_ref(ref, "--dataset", "dataset")
        ds_records.append(ctx.metadata.get(Dataset, ds, model))
    versions = []
    for ref in pretrained or []:
        model, version = parse_ref(ref, "--pretrained", "version")
        versions.append(ctx.metadata.get(ModelVersion, version, model))

    record = ctx.metadata.create(
        build(
            Training,
            name=name,
            proj=project.name,
            notebook=notebook,
            params=params or {},
            env_keys=sorted(env),
            bvers=bvers,
            datasets=ds_records,
            pretrained=[v.ref for v in versions],
            container_manager=ctx.config.container_manager.type,
            resource_profile=profile,
            mounts=mount_list,
        )
    )
    spec = task_spec(
        ctx, "train", project, bvers, name, resource_profile,
        notebook=notebook, env=env, datasets=ds_records, versions=versions, mounts=mount_list,
        meta={"training": record.public_dump()},
    )
    try:
        task_id = ctx.containers.start_task(spec)
    except BaseException as exc:
        _mark(ctx, record, TaskState.FAILED, f"the task could not start: {exc}")
        raise
    return update_training(ctx.metadata, project.name, name, lambda r: setattr(r, "task_id", task_id))


def _mark(ctx: AtollContext, record: Training, state: TaskState, error: str | None) -> Training:
    """Move a training that has not ended to ``state`` (an ended one is left alone)."""

    def change(current: Training) -> bool:
        if current.task.state.ended:
            return False
        current.task.state = state
        current.task.error = error
        return True

    return update_training(ctx.metadata, record.proj, record.name, change)


def reconcile(ctx: AtollContext, record: Training) -> Training:
    """Record FAILED a training whose task ended without reporting (killed, OOM...)."""
    if record.task.state.ended or not record.task_id:
        return record
    try:
        status = ctx.containers.task_status(record.task_id)
    except NotFoundError:
        status = None
    if status is not None and status.running:
        return record
    current = ctx.metadata.get(Training, record.name, record.proj)  # the runner may just have finished
    if current.task.state.ended:
        return current
    why = status.error if status is not None and status.error else "its task is gone"
    if status is not None and status.exit_code is not None and not status.error:
        why = f"exit code {status.exit_code}"
    return _mark(ctx, current, TaskState.FAILED, f"task ended unexpectedly ({why})")


def get_training(ctx: AtollContext, name: str, proj: str | None = None) -> Training:
    """One training, reconciled with its task."""
    scope = resolve_project_name(ctx, proj)
    validate_name(name, "training name")
    return reconcile(ctx, ctx.metadata.get(Training, name, scope))


def list_trainings(
    ctx: AtollContext,
    proj: str | None = None,
    filter: Filter | None = None,
) -> list[Training]:
    """Trainings of a project, the unfinished ones reconciled with their tasks."""
    scope = resolve_project_name(ctx, proj)
    return [reconcile(ctx, t) for t in ctx.metadata.list(Training, scope=scope, filter=filter)]


def cancel_training(ctx: AtollContext, name: str, proj: str | None = None) -> Training:
    """Stop a running training and record it CANCELLED.

    Raises:
        ConflictError: the training already ended.
    """
    record = get_training(ctx, name, proj)
    if record.task.state.ended:
        raise ConflictError(f"training {record.ref} already ended ({record.task.state.value})")
    if record.task_id:
        ctx.containers.stop_task(record.task_id)
    final = _mark(ctx, record, TaskState.CANCELLED, "cancelled by the user")
    return final


def training_logs(
    ctx: AtollContext, name: str, proj: str | None = None, follow: bool = False
) -> Iterator[str]:
    """Lines the training's task printed; with ``follow`` until it ends."""
    record = get_training(ctx, name, proj)
    if not record.task_id:
        raise NotFoundError(f"training {record.ref} has no task (it never started)")
    return ctx.containers.task_logs(record.task_id, follow=follow)


def remove_training(ctx: AtollContext, name: str, proj: str | None = None, force: bool = False) -> Training:
    """Remove a training, its task directory and its stored notebook.

    Raises:
        ConflictError: it is still running and ``force`` is not set.
    """
    validate_name(name, "training name")
    damaged = drop_damaged(ctx, Training, name, resolve_project_name(ctx, proj))
    if damaged is not None:
        return damaged
    record = get_training(ctx, name, proj)
    if not record.task.state.ended and not force:
        raise ConflictError(
            f"training {record.ref} is {record.task.state.value}; cancel it first or confirm with -s"
        )
    removed = remove_record(ctx, Training, record.name, record.proj)
    ctx.files.delete(output_key(record.proj, record.name))
    return removed


def notebook_location(ctx: AtollContext, record: Training) -> str | None:
    """Where the executed notebook is stored, as a path when the file store is local."""
    if not record.output_notebook:
        return None
    if ctx.config.file_store.type == "local":
        return str(ctx.config.file_store_path / record.output_notebook)
    return f"{ctx.config.file_store.type}:{record.output_notebook}"


def wait_training(
    ctx: AtollContext,
    record: Training,
    on_line: Callable[[str], None] | None = None,
    on_progress: Callable[[Training], None] | None = None,
    poll: float = 0.5,
    timeout: float | None = None,
) -> Training:
    """Stream the task's log and its progress until the training ends; return the final record.

    The log is followed in a thread that only reads the log file; every store
    access stays in this thread.
    """
    lines: queue.Queue[Any] = queue.Queue()
    errors: list[BaseException] = []

    def pump() -> None:
        try:
            for line in ctx.containers.task_logs(record.task_id or "", follow=True):
                lines.put(line)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            errors.append(exc)
        finally:
            lines.put(None)

    reader = threading.Thread(target=pump, name="atoll-train-logs", daemon=True)
    if record.task_id:
        reader.start()
    else:
        lines.put(None)
    deadline = None if timeout is None else time.monotonic() + timeout
    logs_done = False
    last_poll = 0.0
    current = record
    while True:
        if logs_done:
            time.sleep(poll)
        else:
            try:
                item = lines.get(timeout=poll)
            except queue.Empty:
                item = _NO_LINE
            if item is None:
                logs_done = True
            elif isinstance(item, str) and on_line is not None:
                on_line(item)
        if logs_done or time.monotonic() - last_poll >= poll:
            last_poll = time.monotonic()
            current = reconcile(ctx, ctx.metadata.get(Training, record.name, record.proj))
            if on_progress is not None:
                on_progress(current)
            if current.task.state.ended and logs_done:
                break
        if deadline is not None and time.monotonic() > deadline:
            raise AtollError(f"training {record.ref} did not end within {timeout:.0f}s")
    if errors and not isinstance(errors[0], NotFoundError):
        raise errors[0]
    return current


__all__ = [
    "cancel_training",
    "get_training",
    "list_trainings",
    "new_training",
    "notebook_location",
    "parse_ref",
    "reconcile",
    "remove_training",
    "training_logs",
    "wait_training",
]
