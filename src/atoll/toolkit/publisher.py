"""``Publisher``: turn the files a training wrote into a recorded model version.

A training notebook writes its model files into ``tmp_path()`` and calls::

    Publisher()(details={"metrics": {"accuracy": 0.97}})

which checks the files against the model's ``model_files``, uploads them and
only then writes the version record (files first, record last), with
snapshots of the training (as it is now: RUNNING) and of the dataset it used.
Defaults: the version is named after the training, the model is the
project's only model, the dataset is the only one staged for that model.

Inside the IDE (no training), the version gets a random name unless given
one, and is also staged into the session, so the prediction notebook can be
tried right away with ``model_path()``.

The modelled framework's keywords work too: ``src_path`` (a directory, or one
file, instead of ``tmp_path()``), ``uses_dataset=False`` (no dataset snapshot),
``uses_pretrained``/``pretrained_with`` (our ``pretrained``) and a per-call
``lightweight``; a path given as the first positional argument is ``src_path``,
as that framework's first parameter was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atoll.domain.names import is_valid_name
from atoll.errors import NotFoundError, UsageError
from atoll.toolkit.paths import (
    Meta,
    dataset_meta,
    meta_dir,
    staged_datasets,
    staged_versions,
    task_root,
    tmp_path,
    training_meta,
)
from atoll.toolkit.requirements import default_model


class Publisher:
    """Publishes the files in ``tmp_path()`` as a model version (see the module doc).

    Args:
        lightweight: keep the (small) files in the metadata database instead
            of the file store, so serving loads them without the file manager.
    """

    def __init__(self, lightweight: bool = False) -> None:
        self.lightweight = lightweight

    def __call__(
        self,
        details: dict[str, Any] | str | os.PathLike[str] | None = None,
        version_name: str | None = None,
        model_name: str | None = None,
        dataset_name: str | None = None,
        pretrained: str | None = None,
        compress: bool = False,
        *,
        src_path: str | os.PathLike[str] | None = None,
        uses_dataset: bool = True,
        uses_pretrained: bool = False,
        pretrained_with: str | None = None,
        lightweight: bool | None = None,
    ) -> Meta:
        """Publish and return the version record (a JSON-ready dict whose keys also read as attributes).

        Args:
            details: free-form details (metrics, parameters...). A path here
                is taken as ``src_path`` (the modelled framework's first parameter).
            src_path: the directory holding the model files, or the one file
                to publish (default: ``tmp_path()``).
            uses_dataset: False records no dataset, even when one is staged.
            uses_pretrained: link the version to the pre-trained version the
                training was given (``pretrained_with``, else the only one staged).
            pretrained_with / pretrained: ``MODEL:VERSION`` it was trained from.
            lightweight: overrides ``Publisher(lightweight=...)`` for this call.

        Raises:
            UsageError: bad names, ambiguous model/dataset, details not a dict.
            ValidationError: the files break the model's ``model_files``.
            AlreadyExistsError: the model already has a version of that name.
            NotFoundError: the model, dataset, source path or pretrained version does not exist.
        """
        from atoll.domain.names import random_name
        from atoll.domain.records import Dataset, Model, ModelVersion, Training
        from atoll.files.artifacts import publish_artifact
        from atoll.task.stores import task_stores

        if isinstance(details, (str, os.PathLike)):
            if src_path is not None:
                raise UsageError("give the source path once: positionally or as src_path=")
            details, src_path = None, details
        if details is not None and not isinstance(details, dict):
            raise UsageError(f"details must be a dict, got {type(details).__name__}")
        if not uses_dataset and dataset_name is not None:
            raise UsageError("dataset_name names a dataset but uses_dataset=False")
        pretrained = self._pretrained(pretrained, uses_pretrained, pretrained_with)
        in_training = (meta_dir() / "training.json").is_file()
        metadata, files = task_stores()
        model = default_model(model_name)
        train: Training | None = None
        if in_training:
            meta = training_meta()
            train = metadata.get(Training, meta["name"], meta["proj"])
            name = version_name or train.name
        else:
            name = version_name or random_name()
        if not is_valid_name(name):
            raise UsageError(f"invalid model version name {name!r}")
        dataset = self._dataset(metadata, model, dataset_name, Dataset) if uses_dataset else None
        if pretrained is not None:
            pre_model, sep, pre_version = pretrained.partition(":")
            if not sep:
                raise UsageError(f"pretrained {pretrained!r}: expected MODEL:VERSION")
            metadata.get(ModelVersion, pre_version, pre_model)  # NotFoundError names it
        spec = metadata.get(Model, model)
        record = ModelVersion(
            name=name,
            model=model,
            details=details or {},
            compressed=compress,
            dataset=dataset,
            train=train,
            pretrained=pretrained,
        )
        with _source_dir(src_path) as source:
            published = publish_artifact(
                metadata, files, record, source, spec.model_files, compress=compress,
                lightweight=self.lightweight if lightweight is None else lightweight,
            )
        if not in_training:
            from atoll.task.staging import stage_artifact

            stage_artifact(files, published, task_root())
        return Meta(published.public_dump())

    @staticmethod
    def _pretrained(pretrained: str | None, uses_pretrained: bool, pretrained_with: str | None) -> str | None:
        """``MODEL:VERSION`` the version was trained from, whichever way the call named it."""
        if pretrained is not None and pretrained_with is not None and pretrained != pretrained_with:
            raise UsageError("pretrained and pretrained_with name different versions; give one")
        named = pretrained or pretrained_with
        if named is not None or not uses_pretrained:
            return named
        staged = staged_versions()
        if len(staged) != 1:
            listed = ", ".join(f"{m}:{v}" for m, v in staged) or "none"
            raise UsageError(f"uses_pretrained: {len(staged)} versions are staged ({listed}); pass pretrained_with=")
        return f"{staged[0][0]}:{staged[0][1]}"

    @staticmethod
    def _dataset(metadata: Any, model: str, dataset_name: str | None, dataset_cls: Any) -> Any:
        """The dataset snapshot: the named one, else the only one staged for ``model``."""
        if dataset_name is not None:
            if not is_valid_name(dataset_name):
                raise UsageError(f"invalid dataset name {dataset_name!r}")
            return metadata.get(dataset_cls, dataset_name, model)
        staged = [ds for m, ds in staged_datasets() if m == model]
        if not staged:
            return None
        if len(staged) > 1:
            raise UsageError(
                f"several datasets of {model} are staged ({', '.join(staged)}); pass dataset_name="
            )
        try:
            return metadata.get(dataset_cls, staged[0], model)
        except NotFoundError:  # removed since: keep the snapshot the task was given
            return dataset_cls.model_validate(dataset_meta(model, staged[0]))


@contextmanager
def _source_dir(src_path: str | os.PathLike[str] | None) -> Iterator[Path]:
    """The directory to publish: ``tmp_path()``, ``src_path``, or a scratch directory holding the one file given."""
    if src_path is None:
        yield Path(tmp_path())
        return
    source = Path(src_path)
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise NotFoundError(f"src_path {str(source)!r}: no such file or directory")
    with tempfile.TemporaryDirectory(prefix="atoll-publish-") as scratch:
        copy = Path(scratch) / source.name
        shutil.copy2(source, copy)
        yield Path(scratch)


__all__ = ["Publisher"]
