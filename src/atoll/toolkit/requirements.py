"""Stage a dataset or model version on demand, from inside a task.

A training given ``--dataset`` finds its files staged before it starts; a
notebook that decides at run time (or an IDE session) calls
:func:`require_dataset` / :func:`require_version` to fetch one from the
stores into the same layout (``data/<model>.<ds>/``, ``model/<model>.<v>/``
plus the record under ``atoll/meta``), then uses ``data_path``/``model_path``
as usual.
"""

from __future__ import annotations

from atoll.domain.names import is_valid_name
from atoll.errors import NotFoundError, UsageError
from atoll.toolkit.paths import project_meta, task_root


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
    from atoll.task.staging import stage_artifact
    from atoll.task.stores import task_stores

    model = default_model(model)
    metadata, files = task_stores()
    record = metadata.get(Dataset, _check(name, "dataset"), model)
    return str(stage_artifact(files, record, task_root()))


def require_version(name: str, model: str | None = None) -> str:
    """Stage model version ``model:name`` into this task and return its directory.

    Raises:
        NotFoundError: no such version, or its files are missing from the store.
    """
    from atoll.domain.records import ModelVersion
    from atoll.task.staging import stage_artifact
    from atoll.task.stores import task_stores

    model = default_model(model)
    metadata, files = task_stores()
    record = metadata.get(ModelVersion, _check(name, "model version"), model)
    if not record.stored:
        raise NotFoundError(f"model version {record.ref} was recorded without files; nothing to stage")
    return str(stage_artifact(files, record, task_root()))


__all__ = ["default_model", "require_dataset", "require_version"]
