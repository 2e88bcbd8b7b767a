"""Stage a dataset or model version on demand, from inside a task.

A training given ``--dataset`` finds its files staged before it starts; a
notebook that decides at run time (or an IDE session) calls
:func:`require_dataset` / :func:`require_version` to fetch one from the
stores into the same layout (``data/<model>.<ds>/``, ``model/<model>.<v>/``
plus the record under ``atoll/meta``), then uses ``data_path``/``model_path``
as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atoll.domain.names import is_valid_name
from atoll.errors import NotFoundError, UsageError
from atoll.toolkit.paths import project_meta, task_root

if TYPE_CHECKING:
    from atoll.domain.records import ArtifactRecord


def default_model(model: str | None) -> str:
    """``model``, else the project's only model.

    Raises:
        UsageError: no model given and the project has none or several.
    """
    if model is not None:
        if not is_valid_name(model):
            raise UsageError(f"invalid model name {model!r}")
        return model
    models = list(project_meta().get("models") or [])
    if len(models) == 1:
        return str(models[0])
    listed = ", ".join(models) or "none"
    raise UsageError(f"name the model: the project has {len(models)} models ({listed})")


def _check(name: str, what: str) -> str:
    if not isinstance(name, str) or not is_valid_name(name):
        raise UsageError(f"invalid {what} name {name!r}")
    return name


def require_dataset(name: str, model: str | None = None) -> str:
    """Stage dataset ``model:name`` into this task and return its directory.

    Raises:
        NotFoundError: no such dataset, or its files are missing from the store.
    """
    from atoll.domain.records import Dataset

    return _stage(Dataset, name, model, "dataset")


def require_version(name: str, model: str | None = None) -> str:
    """Stage model version ``model:name`` into this task and return its directory.

    Raises:
        NotFoundError: no such version, or its files are missing from the store.
    """
    from atoll.domain.records import ModelVersion

    return _stage(ModelVersion, name, model, "model version", files_needed=True)


def require_movers(version: str, model: str | None = None) -> str:
    """:func:`require_version` under the modelled framework's name (``require_movers(version, model)``)."""
    return require_version(version, model)


def _stage(kind: type[ArtifactRecord], name: str, model: str | None, what: str, files_needed: bool = False) -> str:
    """Stage the ``kind`` record ``model:name``; without ``files_needed`` one recorded without
    files (kept elsewhere) stages as an empty directory."""
    from atoll.task.staging import stage_artifact
    from atoll.task.stores import task_stores

    model = default_model(model)
    metadata, files = task_stores()
    record = metadata.get(kind, _check(name, what), model)
    if files_needed and not record.stored:
        raise NotFoundError(f"{what} {record.ref} was recorded without files; nothing to stage")
    return str(stage_artifact(files, record, task_root()))


__all__ = ["default_model", "require_dataset", "require_movers", "require_version"]
