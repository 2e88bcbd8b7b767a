"""Model versions: persisted models, checked against their model's ``model_files``.

A version snapshots the dataset and the training it came from (so it still
says what produced it after they change or go), and refers to a pretrained
version by ``model:version``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atoll.api.context import AtollContext
from atoll.api.datasets import get_dataset, new_artifact, remove_artifact, update_artifact
from atoll.api.records import Filter, Page, and_filters, drop_damaged, list_records
from atoll.domain.names import validate_name
from atoll.domain.records import ModelVersion, Training
from atoll.errors import UsageError


def parse_pretrained(ref: str) -> tuple[str, str]:
    """``"model:version"`` → ``("model", "version")``, both names validated."""
    model, sep, version = ref.partition(":")
    if not sep:
        raise UsageError(f"--pretrained {ref!r}: expected MODEL:VERSION")
    return validate_name(model, "model name"), validate_name(version, "model version name")


def _snapshots(
    ctx: AtollContext,
    model: str,
    dataset: str | None,
    train: str | None,
    proj: str | None,
    pretrained: str | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if dataset is not None:
        fields["dataset"] = get_dataset(ctx, model, dataset)
    if train is not None:
        from atoll.api.projects import resolve_project_name

        project = resolve_project_name(ctx, proj)
        validate_name(train, "training name")
        fields["train"] = ctx.metadata.get(Training, train, project)
    elif proj is not None:
        raise UsageError("--proj needs --train (the training whose record the version keeps)")
    if pretrained is not None:
        pre_model, pre_version = parse_pretrained(pretrained)
        ctx.metadata.get(ModelVersion, pre_version, pre_model)  # NotFoundError names it
        fields["pretrained"] = f"{pre_model}:{pre_version}"
    return fields


def new_version(
    ctx: AtollContext,
    model: str,
    name: str | None = None,
    details: dict[str, Any] | None = None,
    path: str | Path | None = None,
    dataset: str | None = None,
    train: str | None = None,
    proj: str | None = None,
    pretrained: str | None = None,
    compress: bool = False,
    skip_upload: bool = False,
    lightweight: bool = False,
    follow_symlinks: bool = False,
) -> ModelVersion:
    """Upload a model version from ``path`` (random name when omitted).

    ``lightweight`` keeps the files in the metadata database (small files only).

    Raises:
        NotFoundError: the model, dataset, training or pretrained version does not exist.
        AlreadyExistsError: the model has a version of that name.
        ValidationError: the files break the model's ``model_files``.
    """
    return new_artifact(
        ctx, ModelVersion, model, name, details, path,
        compress=compress, skip_upload=skip_upload, lightweight=lightweight, follow_symlinks=follow_symlinks,
        fields=lambda: _snapshots(ctx, model, dataset, train, proj, pretrained),
    )


def get_version(ctx: AtollContext, model: str, name: str) -> ModelVersion:
    validate_name(model, "model name")
    validate_name(name, "model version name")
    return ctx.metadata.get(ModelVersion, name, model)


def list_versions(
    ctx: AtollContext,
    model: str | None = None,
    dataset: str | None = None,
    train: str | None = None,
    proj: str | None = None,
    filter: Filter | None = None,
    page: Page | None = None,
) -> list[ModelVersion]:
    """Versions, optionally of one model, from one dataset / training / project; ``page`` picks order and part."""
    if model is not None:
        validate_name(model, "model name")
    extra: dict[str, Any] = {}
    if dataset is not None:
        extra["dataset.name"] = validate_name(dataset, "dataset name")
    if train is not None:
        extra["train.name"] = validate_name(train, "training name")
    if proj is not None:
        extra["train.proj"] = validate_name(proj, "project name")
    return list_records(ctx, ModelVersion, model, and_filters(extra, filter), page)


def update_version(
    ctx: AtollContext,
    model: str,
    name: str,
    details: dict[str, Any] | None = None,
    path: str | Path | None = None,
    dataset: str | None = None,
    train: str | None = None,
    proj: str | None = None,
    pretrained: str | None = None,
    compress: bool | None = None,
    skip_upload: bool = False,
    follow_symlinks: bool = False,
) -> ModelVersion:
    """Change the given fields; a new ``path`` replaces the stored files."""
    current = get_version(ctx, model, name)
    return update_artifact(
        ctx, current, path,
        details=details, compress=compress, skip_upload=skip_upload, follow_symlinks=follow_symlinks,
        fields=_snapshots(ctx, model, dataset, train, proj, pretrained),
    )


def delete_version(ctx: AtollContext, model: str, name: str) -> ModelVersion:
    """Remove a version and its files. Deployments keep their snapshot of it."""
    validate_name(model, "model name")
    validate_name(name, "model version name")
    damaged = drop_damaged(ctx, ModelVersion, name, model)
    if damaged is not None:
        return damaged
    version = get_version(ctx, model, name)
    remove_artifact(ctx, version)
    return version
