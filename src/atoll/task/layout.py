"""Where things are inside a task, and the environment variables that say so.

Every task (training, deployment replica, IDE) sees the same layout under its
root: ``/`` inside a container, ``$ATOLL_TASK_DIR`` on the local runtime::

    app/                                  project code (the build); cwd
    atoll/meta/project.json               the project record
    atoll/meta/build.json                 the build version it runs on
    atoll/meta/training.json | deployment.json
    atoll/meta/datasets/<model>.<dataset>.json
    atoll/meta/versions/<model>.<version>.json
    data/<model>.<dataset>/               dataset files (read-only)
    model/<model>.<version>/              model-version files (read-only)
    atoll/tmp/                            scratch a training publishes from
    atoll/secret/store.json               store settings incl. credentials (0600)

In a container the store settings are a secret mounted elsewhere; the task
always finds them through the *path* in ``ATOLL_STORE_CONFIG``. With
``ATOLL_STAGING=fetch`` the ``data`` and ``model`` directories start empty
and the runner fetches what ``atoll/meta`` names from the file store first.

Standard library only: this module is imported inside every task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import overload

TASK_DIR_ENV = "ATOLL_TASK_DIR"  # the task root ("/" in containers)
STORE_CONFIG_ENV = "ATOLL_STORE_CONFIG"  # path of the store settings (a secret)
STAGING_ENV = "ATOLL_STAGING"  # "fetch": the task fetches its inputs itself
NORONHA_COMPAT_ENV = "ATOLL_NORONHA_COMPAT"  # "0": `import noronha` fails (container_manager.noronha_compat off)

APP_DIR = "/app"
META_DIR = "/atoll/meta"
DATA_DIR = "/data"
MODEL_DIR = "/model"


def task_root() -> Path:
    """The task root: ``$ATOLL_TASK_DIR`` when set, else ``/`` (containers)."""
    return Path(os.environ.get(TASK_DIR_ENV) or "/")


def artifact_entry(model: str, name: str) -> str:
    """Directory / file stem of a dataset or model version: ``<model>.<name>``.

    Names never contain dots, so the entry splits back unambiguously.
    """
    return f"{model}.{name}"


class _Under:
    """A read-only :class:`TaskLayout` attribute: the path ``parts`` under the layout's root."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, layout: None, owner: type[TaskLayout]) -> _Under: ...
    @overload
    def __get__(self, layout: TaskLayout, owner: type[TaskLayout] | None = None) -> Path: ...
    def __get__(self, layout: TaskLayout | None, owner: type[TaskLayout] | None = None) -> Path | _Under:
        return self if layout is None else layout.root.joinpath(*self.parts)  # on the class: itself, like a property


@dataclass(frozen=True)
class TaskLayout:
    """The paths of one task's layout under ``root`` (a host dir, or ``/`` in a container)."""

    root: Path

    @classmethod
    def current(cls) -> TaskLayout:
        """The layout of the task this process runs in."""
        return cls(task_root())

    app_dir = _Under("app")
    meta_dir = _Under("atoll", "meta")
    data_dir = _Under("data")
    model_dir = _Under("model")
    tmp_dir = _Under("atoll", "tmp")
    secret_dir = _Under("atoll", "secret")
    store_file = _Under("atoll", "secret", "store.json")

    def record_file(self, key: str) -> Path:
        """``atoll/meta/<key>.json`` (project, build, task, training, deployment)."""
        return self.meta_dir / f"{key}.json"

    def dataset_dir(self, model: str, dataset: str) -> Path:
        return self.data_dir / artifact_entry(model, dataset)

    def version_dir(self, model: str, version: str) -> Path:
        return self.model_dir / artifact_entry(model, version)

    def dataset_meta_file(self, model: str, dataset: str) -> Path:
        return self.meta_dir / "datasets" / f"{artifact_entry(model, dataset)}.json"

    def version_meta_file(self, model: str, version: str) -> Path:
        return self.meta_dir / "versions" / f"{artifact_entry(model, version)}.json"


__all__ = [
    "APP_DIR",
    "DATA_DIR",
    "META_DIR",
    "MODEL_DIR",
    "NORONHA_COMPAT_ENV",
    "STAGING_ENV",
    "STORE_CONFIG_ENV",
    "TASK_DIR_ENV",
    "TaskLayout",
    "artifact_entry",
    "task_root",
]
