"""``noronha.tools.shortcuts``: where a task's staged files and records are (:mod:`atoll.toolkit`).

``movers_meta``, ``train_meta``, ``require_movers`` are the toolkit's own.
Wrapped here only for Noronha's keyword names: ``file_name`` (ours: ``file``),
``require_dataset(dataset=...)`` (ours: ``name``) and ``dataset_meta(ignore=...)``.
Records are dicts whose keys also read as attributes (``meta.name``), not documents.
"""

from __future__ import annotations

from atoll.errors import NotFoundError, UsageError
from atoll.toolkit import paths as _paths
from atoll.toolkit import requirements as _requirements
from atoll.toolkit.paths import Meta, movers_meta, train_meta
from atoll.toolkit.requirements import require_movers


def tmp_path(file_name: str = "") -> str:
    """Scratch directory a training writes the files it publishes into (or ``file_name`` inside it)."""
    return _paths.tmp_path(file_name)


def data_path(file_name: str = "", model: str | None = None, dataset: str | None = None) -> str:
    """Directory of a staged dataset, or ``file_name`` inside it."""
    return _paths.data_path(file_name, model, dataset)


def model_path(file_name: str = "", model: str | None = None, version: str | None = None) -> str:
    """Directory of a staged model version, or ``file_name`` inside it."""
    return _paths.model_path(file_name, model, version)


def dataset_meta(model: str | None = None, dataset: str | None = None, ignore: bool = False) -> Meta:
    """The record of a staged dataset; ``ignore``: an empty record when none (or several) fit."""
    try:
        return Meta(_paths.dataset_meta(model, dataset))
    except (NotFoundError, UsageError):
        if ignore:
            return Meta()
        raise


def require_dataset(dataset: str, model: str | None = None) -> str:
    """Stage a dataset into this task on demand; returns its directory."""
    return _requirements.require_dataset(dataset, model)


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
