"""Lay out a task directory on the local runtime (DESIGN.md §4).

Every local task (training, deployment replica, IDE) runs in a directory with
the same layout a container gets through mounts::

    app -> <build snapshot>/app        project code (or the --edit directory); cwd
    atoll/meta/project.json            records given to the task
    atoll/meta/build.json
    atoll/meta/training.json | deployment.json     (from ``TaskSpec.meta``)
    atoll/meta/datasets/<model>.<ds>.json
    atoll/meta/versions/<model>.<version>.json
    data/<model>.<ds>/                 staged dataset files (read-only)
    model/<model>.<version>/           staged model-version files (read-only)
    atoll/tmp/                         scratch a training publishes from
    atoll/secret/store.json            store settings incl. credentials (0600)

The task finds its root through ``ATOLL_TASK_DIR`` and the store settings
through ``ATOLL_STORE_CONFIG`` (a path, never the credentials themselves).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.config import atoll_home
from atoll.containers.base import TaskSpec
from atoll.domain.records import ArtifactRecord, BuildVersion, Dataset, ModelVersion, Record
from atoll.errors import NotFoundError

if TYPE_CHECKING:
    from atoll.files.base import FileStore

TASK_DIR_ENV = "ATOLL_TASK_DIR"
STORE_CONFIG_ENV = "ATOLL_STORE_CONFIG"

# Variables a task inherits from the caller's environment; everything else
# (notably ATOLL_* config overrides that may carry credentials) stays out.
_INHERITED_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL")


def build_app_dir(build: BuildVersion) -> Path:
    """The immutable code snapshot of a local build."""
    if not build.location:
        raise NotFoundError(
            f"build {build.ref} has no local location (built by {build.container_manager!r}?)"
        )
    return Path(build.location) / "app"


def build_env_dir(build: BuildVersion) -> Path:
    """The virtual environment of a local build."""
    env = build.details.get("env_dir")
    if env:
        return Path(env)
    if not build.env_hash:
        raise NotFoundError(f"build {build.ref} has no local environment")
    return atoll_home() / "envs" / build.env_hash


def build_python(build: BuildVersion) -> Path:
    """The Python interpreter of a local build's environment.

    Raises:
        NotFoundError: the environment was removed (rebuild the project).
    """
    python = build_env_dir(build) / "bin" / "python"
    if not python.exists():
        raise NotFoundError(
            f"the environment of build {build.ref} is gone ({python}); rebuild with `atoll proj build`"
        )
    return python


def task_dir_for(kind: str, project: str, name: str) -> Path:
    """Where a task of ``kind`` (train, deploy, ide) named ``name`` lives."""
    return atoll_home() / "tasks" / project / kind / name


def task_environment(
    build: BuildVersion, task_dir: Path, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment variables of a local task.

    The build's environment comes first on PATH; the task finds its layout
    through ``ATOLL_TASK_DIR`` and its store settings through the *path* in
    ``ATOLL_STORE_CONFIG``. No credential is ever put in a value here.
    """
    env_dir = build_env_dir(build)
    env = {key: os.environ[key] for key in _INHERITED_ENV if key in os.environ}
    env.update({key: value for key, value in os.environ.items() if key.startswith("LC_")})
    env.update(
        {
            "PATH": os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", os.defpath)]),
            "VIRTUAL_ENV": str(env_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONNOUSERSITE": "1",
            TASK_DIR_ENV: str(task_dir),
            STORE_CONFIG_ENV: str(task_dir / "atoll" / "secret" / "store.json"),
            "ATOLL_HOME": str(atoll_home()),
            # Keep the user's own kernels and Jupyter settings out of the task.
            "JUPYTER_DATA_DIR": str(task_dir / "atoll" / "jupyter"),
        }
    )
    env.update(extra_env or {})
    return env


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def _dump(record: Record | Mapping[str, Any]) -> Any:
    return record.public_dump() if isinstance(record, Record) else dict(record)


def make_writable(path: Path) -> None:
    """Undo the read-only bits staging set, so a directory can be replaced or removed."""
    if not path.exists() or path.is_symlink():
        return
    for root, dirs, files in os.walk(path):
        os.chmod(root, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP)
        for name in files:
            file = Path(root, name)
            if not file.is_symlink():
                os.chmod(file, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP)
        for name in dirs:
            sub = Path(root, name)
            if not sub.is_symlink():
                os.chmod(sub, stat.S_IRWXU)


def remove_tree(path: Path) -> None:
    """Remove a (possibly read-only) directory tree; missing is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if path.exists():
        make_writable(path)
        shutil.rmtree(path, ignore_errors=False)


def _make_read_only(path: Path) -> None:
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.chmod(Path(root, name), stat.S_IRUSR | stat.S_IRGRP)
        for name in dirs:
            os.chmod(Path(root, name), stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    os.chmod(path, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)


def stage_artifact(files: FileStore, record: ArtifactRecord, root: Path) -> Path:
    """Stage one dataset or model version (meta JSON + read-only files) under ``root``.

    Re-staging replaces what was there; the files are fetched into a temporary
    sibling first, so a failed fetch leaves no half directory behind.

    Raises:
        NotFoundError / ValidationError: the stored files are missing or corrupt.
    """
    if isinstance(record, Dataset):
        meta_sub, files_sub = "datasets", "data"
    elif isinstance(record, ModelVersion):
        meta_sub, files_sub = "versions", "model"
    else:  # pragma: no cover - programming error
        raise TypeError(f"cannot stage a {type(record).__name__}")
    entry = f"{record.model}.{record.name}"
    target = root / files_sub / entry
    tmp = root / files_sub / f".{entry}.partial"
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    try:
        if record.stored and record.files:
            from atoll.files.artifacts import fetch_artifact

            fetch_artifact(files, record, tmp)
        _make_read_only(tmp)
        remove_tree(target)
        tmp.rename(target)
    except BaseException:
        remove_tree(tmp)
        raise
    _write_json(root / "atoll" / "meta" / meta_sub / f"{entry}.json", record.public_dump())
    return target


def write_store_config(root: Path, store_config: Mapping[str, Any]) -> Path:
    """Write the store settings where only the task's user can read them (0600)."""
    secret_dir = root / "atoll" / "secret"
    secret_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(secret_dir, stat.S_IRWXU)
    path = secret_dir / "store.json"
    tmp = secret_dir / ".store.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(dict(store_config)))
    os.replace(tmp, path)
    return path


def stage_task_dir(spec: TaskSpec, root: Path, files: FileStore, store_config: Mapping[str, Any]) -> Path:
    """Write the DESIGN §4 layout for ``spec`` under ``root`` and return ``root``.

    ``app`` links to the build's immutable code snapshot (or to
    ``spec.edit_dir`` for an IDE started with ``--edit``). Staging again into
    an existing root refreshes the records and staged files.

    Raises:
        NotFoundError: the build snapshot or a stored artifact is missing.
    """
    root.mkdir(parents=True, exist_ok=True)
    source = spec.edit_dir if spec.edit_dir is not None else build_app_dir(spec.build)
    if not source.is_dir():
        raise NotFoundError(f"the code of build {spec.build.ref} is missing ({source}); rebuild the project")
    app = root / "app"
    if app.is_symlink() or app.is_file():
        app.unlink()
    elif app.exists():
        remove_tree(app)
    app.symlink_to(source.resolve(), target_is_directory=True)

    meta = root / "atoll" / "meta"
    _write_json(meta / "project.json", spec.project.public_dump())
    _write_json(meta / "build.json", spec.build.public_dump())
    for key, value in spec.meta.items():
        _write_json(meta / f"{key}.json", _dump(value))
    for dataset in spec.datasets:
        stage_artifact(files, dataset, root)
    for version in spec.versions:
        stage_artifact(files, version, root)
    (root / "atoll" / "tmp").mkdir(parents=True, exist_ok=True)
    write_store_config(root, store_config)
    return root


__all__ = [
    "STORE_CONFIG_ENV",
    "TASK_DIR_ENV",
    "build_app_dir",
    "build_env_dir",
    "build_python",
    "make_writable",
    "remove_tree",
    "stage_artifact",
    "stage_task_dir",
    "task_dir_for",
    "task_environment",
    "write_store_config",
]
