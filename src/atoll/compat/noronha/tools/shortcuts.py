"""``noronha.tools.shortcuts``: where a task's staged files and records are (:mod:`atoll.toolkit.paths`).

Noronha's parameter names (``file_name``, ``version``, ``ignore``) over Atoll's
functions. Records come back as dicts (Atoll's JSON records), not documents.
"""

from __future__ import annotations

from typing import Any

from atoll.errors import NotFoundError
from atoll.toolkit import paths as _paths
from atoll.toolkit import requirements as _requirements


def tmp_path(file_name: str = "") -> str:
    """Scratch directory a training writes the files it publishes into (or ``file_name`` inside it)."""
    return _paths.tmp_path(file_name)


def data_path(file_name: str = "", model: str | None = None, dataset: str | None = None) -> str:
    """Directory of a staged dataset, or ``file_name`` inside it."""
    return _paths.data_path(file_name, model, dataset)


def model_path(file_name: str = "", model: str | None = None, version: str | None = None) -> str:
    """Directory of a staged model version, or ``file_name`` inside it."""
    return _paths.model_path(file_name, model, version)


def dataset_meta(model: str | None = None, dataset: str | None = None, ignore: bool = False) -> dict[str, Any]:
    """The record of a staged dataset; ``ignore``: ``{}`` when none matches."""
    try:
        return _paths.dataset_meta(model, dataset)
    except NotFoundError:
        if ignore:
            return {}
        raise


def movers_meta(model: str | None = None, version: str | None = None, ignore: bool = False) -> dict[str, Any]:
    """The record of a staged model version; ``ignore``: ``{}`` when none matches."""
    # Alias of atoll.toolkit's version_meta (the toolkit gains `movers_meta` itself with issue 13 item 4).
    try:
        return _paths.version_meta(model, version)
    except NotFoundError:
        if ignore:
            return {}
        raise


def train_meta() -> dict[str, Any]:
    """The record of the running training."""
    # Alias of atoll.toolkit's training_meta (the toolkit gains `train_meta` itself with issue 13 item 4).
    return _paths.training_meta()


def require_dataset(dataset: str, model: str | None = None) -> str:
    """Stage a dataset into this task on demand; returns its directory."""
    return _requirements.require_dataset(dataset, model)


def require_movers(version: str, model: str | None = None) -> str:
    """Stage a model version into this task on demand; returns its directory."""
    # Alias of atoll.toolkit's require_version (the toolkit gains `require_movers` itself with issue 13 item 4).
    return _requirements.require_version(version, model)


__all__ = [
    "data_path",
    "dataset_meta",
    "model_path",
    "movers_meta",
    "require_dataset",
    "require_movers",
    "tmp_path",
    "train_meta",
]
