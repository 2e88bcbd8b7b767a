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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atoll.domain.names import is_valid_name
from atoll.errors import NotFoundError, UsageError
from atoll.toolkit.paths import (
    dataset_meta,
    meta_dir,
    staged_datasets,
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
        details: dict[str, Any] | None = None,
        version_name: str | None = None,
        model_name: str | None = None,
        dataset_name: str | None = None,
        pretrained: str | None = None,
        compress: bool = False,
    ) -> dict[str, Any]:
        """Publish and return the version record (as JSON-ready dict).

        Raises:
            UsageError: bad names, ambiguous model/dataset, details not a dict.
            ValidationError: the files break the model's ``model_files``.
            AlreadyExistsError: the model already has a version of that name.
            NotFoundError: the model, dataset or pretrained version does not exist.
        """
        from atoll.domain.names import random_name
        from atoll.domain.records import Dataset, Model, ModelVersion, Training
        from atoll.files.artifacts import publish_artifact
        from atoll.task.stores import task_stores

        if details is not None and not isinstance(details, dict):
            raise UsageError(f"details must be a dict, got {type(details).__name__}")
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
        dataset = self._dataset(metadata, model, dataset_name, Dataset)
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
        published = publish_artifact(
            metadata, files, record, Path(tmp_path()), spec.model_files, compress=compress,
            lightweight=self.lightweight,
        )
        if not in_training:
            from atoll.task.staging import stage_artifact

            stage_artifact(files, published, task_root())
        return published.public_dump()

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


__all__ = ["Publisher"]
