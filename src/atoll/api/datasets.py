"""Datasets: files for training one model, checked against its ``data_files``.

Publishing goes through :mod:`atoll.files.artifacts` (files first, record
last, rollback on failure). :func:`new_artifact` and :func:`update_artifact`
upload and change a dataset or a model version alike (shared with
:mod:`atoll.api.versions`); removal is :func:`atoll.api.records.remove_artifact`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from atoll.api.context import AtollContext
from atoll.api.models import get_model
from atoll.api.records import (
    Confirm,
    Filter,
    and_filters,
    build,
    drop_damaged,
    fresh_name,
    remove_artifact,
    require_confirmation,
)
from atoll.domain.names import validate_name
from atoll.domain.records import ArtifactRecord, Dataset, FileSpec, Model, ModelVersion, Record, utcnow
from atoll.errors import UsageError
from atoll.files.lightweight import is_lightweight

A = TypeVar("A", bound=ArtifactRecord)


def publish(
    ctx: AtollContext,
    record: A,
    path: str | Path | None,
    specs: list[FileSpec],
    *,
    skip_upload: bool = False,
    replace: bool = False,
    **options: Any,
) -> A:
    """Check and store the files of ``path``, then write ``record`` (create, or update with ``replace``).

    Without ``path`` (only allowed with ``skip_upload``) just the record is written.
    ``options`` (``compress``, ``lightweight``, ``follow_symlinks``) go on to
    :func:`~atoll.files.artifacts.publish_artifact` as they are.

    Raises:
        UsageError: no path given without skip_upload, or it is not a directory.
        ValidationError: the files break the model's file specs (missing
            required file, file over max_mb, unexpected entries).
    """
    if path is None:
        if not skip_upload:
            raise UsageError("--path is required (or use --skip-upload to record files kept elsewhere)")
        record = record.model_copy(update={"stored": False, "files": [], "store_key": None})
        return ctx.metadata.update(record) if replace else ctx.metadata.create(record)
    src = Path(path).expanduser()
    if not src.is_dir():
        raise UsageError(f"--path {path}: not a directory")
    from atoll.files.artifacts import publish_artifact

    return publish_artifact(
        ctx.metadata, ctx.files, record, src.resolve(), specs, skip_upload=skip_upload, replace=replace, **options
    )


def _file_specs(model: Model, kind: type[ArtifactRecord]) -> list[FileSpec]:
    """What a dataset (``data_files``) or a model version (``model_files``) of ``model`` is checked against."""
    return model.data_files if kind is Dataset else model.model_files


def new_artifact(
    ctx: AtollContext,
    kind: type[A],
    model: str,
    name: str | None,
    details: dict[str, Any] | None,
    path: str | Path | None,
    *,
    compress: bool,
    skip_upload: bool,
    lightweight: bool,
    follow_symlinks: bool,
    fields: Callable[[], dict[str, Any]] = dict,
) -> A:
    """Upload a new dataset or model version of ``model`` from ``path`` (random name when omitted).

    ``fields()`` gives the record's further fields; it runs once the model
    and the name are checked.
    """
    spec = get_model(ctx, model)
    name = fresh_name(ctx, kind, model, name)
    record = build(kind, name=name, model=model, details=details or {}, compressed=compress, **fields())
    return publish(
        ctx, record, path, _file_specs(spec, kind), compress=compress, skip_upload=skip_upload,
        lightweight=lightweight, follow_symlinks=follow_symlinks,
    )


def update_artifact(
    ctx: AtollContext,
    current: A,
    path: str | Path | None,
    *,
    details: dict[str, Any] | None,
    compress: bool | None,
    skip_upload: bool,
    follow_symlinks: bool,
    fields: dict[str, Any] | None = None,
) -> A:
    """Write ``current`` with the given fields changed (None keeps one); a new ``path`` replaces the stored files."""
    changes: dict[str, Any] = {"modified_at": utcnow()}
    if details is not None:
        changes["details"] = details
    if compress is not None:
        changes["compressed"] = compress
    changes.update(fields or {})
    base = current.model_dump()
    base.update({key: value for key, value in current if isinstance(value, Record)})  # keep snapshots as records
    record = build(type(current), **{**base, **changes})
    if path is None and not skip_upload:
        return ctx.metadata.update(record)
    specs = _file_specs(get_model(ctx, record.model), type(record))
    return publish(
        ctx, record, path, specs, compress=record.compressed, skip_upload=skip_upload, replace=True,
        lightweight=is_lightweight(record.store_key) and not skip_upload,  # an update stays where it was
        follow_symlinks=follow_symlinks,
    )


def new_dataset(
    ctx: AtollContext,
    model: str,
    name: str | None = None,
    details: dict[str, Any] | None = None,
    path: str | Path | None = None,
    compress: bool = False,
    skip_upload: bool = False,
    lightweight: bool = False,
    follow_symlinks: bool = False,
) -> Dataset:
    """Upload a dataset of ``model`` from the directory ``path`` (random name when omitted).

    ``lightweight`` keeps the files in the metadata database (small files only).

    Raises:
        NotFoundError: no such model.
        AlreadyExistsError: the model has a dataset of that name.
        ValidationError: the files break the model's ``data_files``.
    """
    return new_artifact(
        ctx, Dataset, model, name, details, path,
        compress=compress, skip_upload=skip_upload, lightweight=lightweight, follow_symlinks=follow_symlinks,
    )


def get_dataset(ctx: AtollContext, model: str, name: str) -> Dataset:
    validate_name(model, "model name")
    validate_name(name, "dataset name")
    return ctx.metadata.get(Dataset, name, model)


def list_datasets(
    ctx: AtollContext, model: str | None = None, filter: Filter | None = None
) -> list[Dataset]:
    if model is not None:
        validate_name(model, "model name")
    return ctx.metadata.list(Dataset, scope=model, filter=and_filters(filter))


def update_dataset(
    ctx: AtollContext,
    model: str,
    name: str,
    details: dict[str, Any] | None = None,
    path: str | Path | None = None,
    compress: bool | None = None,
    skip_upload: bool = False,
    follow_symlinks: bool = False,
) -> Dataset:
    """Change the given fields; a new ``path`` replaces the stored files.

    Raises:
        NotFoundError: no such dataset.
        ConflictError: it changed meanwhile.
    """
    return update_artifact(
        ctx, get_dataset(ctx, model, name), path,
        details=details, compress=compress, skip_upload=skip_upload, follow_symlinks=follow_symlinks,
    )


def dataset_users(ctx: AtollContext, model: str, name: str) -> list[str]:
    """Names of the model versions whose dataset snapshot is this dataset."""
    versions = ctx.metadata.list(ModelVersion, scope=model, filter={"dataset.name": name})
    return [v.name for v in versions]


def delete_dataset(ctx: AtollContext, model: str, name: str, confirm: Confirm | None = None) -> Dataset:
    """Remove a dataset and its files; refuses while versions came from it, unless confirmed.

    The versions keep their snapshot of the dataset.

    Raises:
        NotFoundError: no such dataset.
        ConflictError: versions reference it and the removal was not confirmed.
    """
    validate_name(model, "model name")
    validate_name(name, "dataset name")
    damaged = drop_damaged(ctx, Dataset, name, model)
    if damaged is not None:
        return damaged
    dataset = get_dataset(ctx, model, name)
    users = dataset_users(ctx, model, name)
    if users:
        question = f"dataset {dataset.ref} was used by model versions {', '.join(users)}; remove it?"
        require_confirmation(
            confirm,
            question,
            f"dataset {dataset.ref} is referenced by model versions: {', '.join(users)} "
            "(confirm, or use --skip-questions)",
        )
    remove_artifact(ctx, dataset)
    return dataset
