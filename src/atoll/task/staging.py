"""Put a task's inputs in place: records, dataset and model-version files, store settings.

Used off-board by the container managers (host staging: Atoll writes the
whole layout) and on-board by the runner and the toolkit (fetch staging: the
task fetches the files its ``atoll/meta`` names; ``require_dataset``...).
Files are fetched into a temporary sibling and made read-only before they
take their place, so a failed fetch leaves no half directory behind.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.domain.records import ArtifactRecord, Dataset, ModelVersion, Record
from atoll.task.layout import TaskLayout
from atoll.task.meta import list_entries, read_json, write_json, write_private_json

if TYPE_CHECKING:
    from atoll.files.base import FileStore


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
    """Remove a (possibly read-only) directory tree, a file or a link; missing is fine."""
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


def _places(layout: TaskLayout, record: ArtifactRecord) -> tuple[Path, Path]:
    """(files directory, meta file) of a dataset or model version in ``layout``."""
    if isinstance(record, Dataset):
        return layout.dataset_dir(record.model, record.name), layout.dataset_meta_file(record.model, record.name)
    if isinstance(record, ModelVersion):
        return layout.version_dir(record.model, record.name), layout.version_meta_file(record.model, record.name)
    raise TypeError(f"cannot stage a {type(record).__name__}")  # pragma: no cover - programming error


def fetch_artifact_files(files: FileStore, record: ArtifactRecord, target: Path) -> Path:
    """Fetch the stored files of ``record`` into ``target`` (replaced, read-only).

    Raises:
        NotFoundError / ValidationError: the stored files are missing or corrupt.
    """
    tmp = target.with_name(f".{target.name}.partial")
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
    return target


def stage_artifact(files: FileStore, record: ArtifactRecord, root: Path) -> Path:
    """Stage one dataset or model version (files + meta JSON) in the layout under ``root``.

    Re-staging replaces what was there. Returns the files' directory.

    Raises:
        NotFoundError / ValidationError: the stored files are missing or corrupt.
    """
    target, meta = _places(TaskLayout(root), record)
    fetch_artifact_files(files, record, target)
    write_json(meta, record.public_dump())
    return target


def stage_layout(
    layout: TaskLayout,
    records: Mapping[str, Record | Mapping[str, Any]],
    artifacts: Iterable[ArtifactRecord],
    files: FileStore | None,
    store_config: Mapping[str, Any],
) -> TaskLayout:
    """Write a task's layout under ``layout.root`` (everything there before is replaced).

    Args:
        records: ``atoll/meta/<key>.json`` to write (project, build, training...).
        artifacts: datasets and model versions given to the task; their meta is always
            written, their files only when ``files`` is given (host staging).
        store_config: the store settings (written 0600 as ``atoll/secret/store.json``).

    Raises:
        NotFoundError / ValidationError: an artifact's stored files are missing or corrupt.
    """
    remove_tree(layout.root)
    layout.root.mkdir(parents=True)
    for key, value in records.items():
        write_json(layout.record_file(key), value.public_dump() if isinstance(value, Record) else dict(value))
    for directory in (layout.data_dir, layout.model_dir, layout.tmp_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for artifact in artifacts:
        target, meta = _places(layout, artifact)
        write_json(meta, artifact.public_dump())
        if files is not None:
            fetch_artifact_files(files, artifact, target)
    write_private_json(layout.store_file, dict(store_config))
    return layout


def fetch_inputs(layout: TaskLayout, files: FileStore) -> list[Path]:
    """Fetch every dataset and model version ``atoll/meta`` names that is not in place yet.

    The on-board half of fetch staging (``ATOLL_STAGING=fetch``). Returns the directories fetched.

    Raises:
        NotFoundError / ValidationError: stored files are missing or corrupt.
    """
    fetched = []
    for kind, cls, folder in (("dataset", Dataset, "datasets"), ("model version", ModelVersion, "versions")):
        for model, name in list_entries(layout.meta_dir / folder, ".json"):
            record: ArtifactRecord = cls.model_validate(read_json(layout.meta_dir / folder / f"{model}.{name}.json", kind))
            target, _ = _places(layout, record)
            if not target.exists():
                fetched.append(fetch_artifact_files(files, record, target))
    return fetched


__all__ = [
    "fetch_artifact_files",
    "fetch_inputs",
    "make_writable",
    "remove_tree",
    "stage_artifact",
    "stage_layout",
    "write_private_json",
]
