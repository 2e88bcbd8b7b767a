"""Models: definitions of what a model version and a training dataset hold.

Removing a model checks its dependents first (projects referring to it, its
datasets and versions) and refuses unless confirmed; confirmed, it removes
the versions and datasets with their stored files, drops the reference from
projects, and removes the model last, so an interrupted removal can be rerun.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from atoll.api.context import AtollContext
from atoll.api.records import (
    Confirm,
    Filter,
    build,
    create_named,
    parse_model,
    read_for_removal,
    remove_artifact,
    require_confirmation,
)
from atoll.domain.names import validate_name
from atoll.domain.records import Dataset, FileSpec, Model, ModelVersion, Project, utcnow
from atoll.errors import ValidationError

FileSpecInput = FileSpec | dict[str, Any]


def file_specs(items: Iterable[FileSpecInput | list[Any]] | None, what: str) -> list[FileSpec]:
    """Validate file specs given as FileSpecs, dicts or lists of dicts; names must be unique."""
    specs: list[FileSpec] = []
    for item in items or []:
        for one in item if isinstance(item, list) else [item]:
            specs.append(one if isinstance(one, FileSpec) else parse_model(FileSpec, one, what))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ValidationError(f"invalid {what}: file {spec.name!r} is declared twice")
        seen.add(spec.name)
    return specs


def new_model(
    ctx: AtollContext,
    name: str,
    desc: str = "",
    model_files: Iterable[FileSpecInput] | None = None,
    data_files: Iterable[FileSpecInput] | None = None,
) -> Model:
    """Record a new model definition.

    Raises:
        InvalidNameError / ValidationError: bad name or file spec (exit 2).
        AlreadyExistsError: a model of that name exists.
    """
    return create_named(ctx, Model, name, lambda: {
        "desc": desc or "",
        "model_files": file_specs(model_files, "--model-file"),
        "data_files": file_specs(data_files, "--data-file"),
    })


def get_model(ctx: AtollContext, name: str) -> Model:
    validate_name(name, "model name")
    return ctx.metadata.get(Model, name)


def list_models(ctx: AtollContext, filter: Filter | None = None) -> list[Model]:
    return ctx.metadata.list(Model, filter=filter)


def update_model(
    ctx: AtollContext,
    name: str,
    desc: str | None = None,
    model_files: Iterable[FileSpecInput] | None = None,
    data_files: Iterable[FileSpecInput] | None = None,
    no_model_files: bool = False,
    no_data_files: bool = False,
) -> Model:
    """Change the given fields only; ``no_*_files`` empties a schema.

    Raises:
        NotFoundError: no such model.
        UsageError: a schema is both given and cleared.
        ConflictError: someone else changed the model meanwhile.
    """
    if no_model_files and model_files:
        raise ValidationError("--model-file and --no-model-files cannot be combined")
    if no_data_files and data_files:
        raise ValidationError("--data-file and --no-data-files cannot be combined")
    model = get_model(ctx, name)
    changes: dict[str, Any] = {}
    if desc is not None:
        changes["desc"] = desc
    if no_model_files:
        changes["model_files"] = []
    elif model_files:
        changes["model_files"] = file_specs(model_files, "--model-file")
    if no_data_files:
        changes["data_files"] = []
    elif data_files:
        changes["data_files"] = file_specs(data_files, "--data-file")
    updated = build(Model, **{**model.model_dump(), **changes, "modified_at": utcnow()})
    return ctx.metadata.update(updated)


@dataclass
class ModelRemoval:
    """What removing a model took with it."""

    model: str
    projects: list[str] = field(default_factory=list)  # references dropped
    datasets: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)


def model_dependents(ctx: AtollContext, name: str) -> ModelRemoval:
    """Projects referring to the model, and its datasets and versions."""
    return ModelRemoval(
        model=name,
        projects=[p.name for p in ctx.metadata.list(Project) if name in p.models],
        datasets=[d.name for d in ctx.metadata.list(Dataset, scope=name)],
        versions=[v.name for v in ctx.metadata.list(ModelVersion, scope=name)],
    )


def delete_model(ctx: AtollContext, name: str, confirm: Confirm | None = None) -> ModelRemoval:
    """Remove a model, cascading to its versions, datasets, their files and project references.

    Raises:
        NotFoundError: no such model.
        ConflictError: it has dependents and ``confirm`` did not agree (the
            message names the projects and counts the datasets and versions).
    """
    validate_name(name, "model name")
    read_for_removal(ctx, Model, name)  # a damaged model is removed by its name like a sound one
    deps = model_dependents(ctx, name)
    if deps.projects or deps.datasets or deps.versions:
        parts = []
        if deps.projects:
            parts.append(f"is used by projects: {', '.join(deps.projects)}")
        if deps.datasets or deps.versions:
            parts.append(f"has {len(deps.datasets)} dataset(s) and {len(deps.versions)} version(s)")
        summary = f"model {name} " + " and ".join(parts)
        question = f"{summary}. Remove it with its datasets, versions and their files?"
        refusal = f"{summary} (confirm, or use --skip-questions to remove it with them)"
        require_confirmation(confirm, question, refusal)
    # Files are removed only now that every dependent is known and accepted.
    for version in ctx.metadata.list(ModelVersion, scope=name):
        remove_artifact(ctx, version)
    for dataset in ctx.metadata.list(Dataset, scope=name):
        remove_artifact(ctx, dataset)
    for project in ctx.metadata.list(Project):
        if name in project.models:
            kept = [m for m in project.models if m != name]
            ctx.metadata.update(project.model_copy(update={"models": kept, "modified_at": utcnow()}))
    ctx.metadata.delete(Model, name)
    return deps
