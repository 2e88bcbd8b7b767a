"""Where a task finds its staged files and records.

Every task (training, deployment replica, IDE) sees the same layout under the
task root, which is ``$ATOLL_TASK_DIR`` on the local runtime and ``/`` inside a
container::

    app/                               project code (cwd)
    atoll/meta/project.json            the project record
    atoll/meta/build.json              the build version it runs on
    atoll/meta/training.json           the training (training tasks)
    atoll/meta/deployment.json         the deployment (replicas)
    atoll/meta/datasets/<model>.<dataset>.json
    atoll/meta/versions/<model>.<version>.json
    data/<model>.<dataset>/            staged dataset files (read-only)
    model/<model>.<version>/           staged model-version files (read-only)
    atoll/tmp/                         scratch for files a training publishes

The layout itself is the task contract (:mod:`atoll.task.layout`).
Names never contain dots, so ``<model>.<name>`` splits unambiguously. When a
notebook omits the model or dataset/version and exactly one is staged, that one
is used; otherwise the error lists what is staged so the fix is obvious.
Dependencies: stdlib and orjson only (this module runs inside every task).

Names the modelled framework's notebooks use are here too:
:func:`movers_meta` (our :func:`version_meta`) and :func:`train_meta` (our
:func:`training_meta`) return the record as a :class:`Meta`, a dict whose keys
also read as attributes (``movers_meta().details["metrics"]`` and
``movers_meta().details.metrics`` both work), as that framework's documents did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.errors import NotFoundError, UsageError
from atoll.task.layout import TaskLayout, task_root
from atoll.task.meta import list_entries as _staged
from atoll.task.meta import read_json as _read_json


class Meta(dict):  # type: ignore[type-arg]
    """A record as a dict whose keys also read as attributes; nested dicts come back as Meta too.

    A missing key read as an attribute raises AttributeError (``meta.get(key)``
    for an optional one). Equal to, and serialized as, the plain dict.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            value = self[key]
        except KeyError:
            raise AttributeError(f"the record has no field {key!r}") from None
        return Meta(value) if isinstance(value, dict) and not isinstance(value, Meta) else value


def meta_dir() -> Path:
    """Directory holding the JSON records given to the task."""
    return TaskLayout.current().meta_dir


def _join(base: Path, file: str) -> str:
    return str(base / file) if file else str(base)


def _pick(pairs: list[tuple[str, str]], model: str | None, name: str | None, kind: str) -> tuple[str, str]:
    """Choose one staged (model, name) pair, or say clearly why none fits."""
    matches = [(m, n) for m, n in pairs if (model is None or m == model) and (name is None or n == name)]
    if len(matches) == 1:
        return matches[0]
    staged = ", ".join(f"{m}:{n}" for m, n in pairs) or "none"
    if model and name:
        wanted = f"{kind} {model}:{name}"
    elif name:
        wanted = f"{kind} {name}"
    elif model:
        wanted = f"{kind} of model {model}"
    else:
        wanted = kind
    if not matches:
        raise NotFoundError(f"no {wanted} is staged in this task (staged: {staged})")
    raise UsageError(f"several {kind}s are staged (staged: {staged}); name the model and the {kind}")


def staged_datasets() -> list[tuple[str, str]]:
    """(model, dataset) pairs staged under ``data/``."""
    return _staged(TaskLayout.current().data_dir)


def staged_versions() -> list[tuple[str, str]]:
    """(model, version) pairs staged under ``model/``."""
    return _staged(TaskLayout.current().model_dir)


def _staged_path(
    pairs: list[tuple[str, str]],
    kind: str,
    directory: Callable[[TaskLayout, str, str], Path],
    model: str | None,
    name: str | None,
    file: str,
) -> str:
    """The directory of the one staged (model, name) pair that fits, or ``file`` inside it."""
    m, n = _pick(pairs, model, name, kind)
    return _join(directory(TaskLayout.current(), m, n), file)


def data_path(file: str = "", model: str | None = None, dataset: str | None = None) -> str:
    """Path of a staged dataset's directory, or of ``file`` inside it.

    Raises:
        NotFoundError: no staged dataset matches.
        UsageError: several match and the call did not say which.
    """
    return _staged_path(staged_datasets(), "dataset", TaskLayout.dataset_dir, model, dataset, file)


def model_path(file: str = "", model: str | None = None, version: str | None = None) -> str:
    """Path of a staged model version's directory, or of ``file`` inside it.

    Raises:
        NotFoundError: no staged version matches.
        UsageError: several match and the call did not say which.
    """
    return _staged_path(staged_versions(), "model version", TaskLayout.version_dir, model, version, file)


def tmp_path(file: str = "") -> str:
    """Scratch directory (created on demand) where a training writes files to publish."""
    base = TaskLayout.current().tmp_dir
    base.mkdir(parents=True, exist_ok=True)
    return _join(base, file)


def mount_path(target: str, file: str = "") -> str:
    """Where the task sees ``--mount SRC:<target>``: ``target`` itself in a container; on the
    local runtime (no container) the link to ``SRC`` at ``<task dir>/<target>``."""
    if not target.startswith("/"):
        raise UsageError(f"mount_path({target!r}): give the absolute DST of the --mount")
    return _join(task_root() / target.lstrip("/"), file)


def dataset_meta(model: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """The record of a dataset given to the task (see :func:`data_path` for the choice)."""
    base = meta_dir() / "datasets"
    m, d = _pick(_staged(base, ".json"), model, dataset, "dataset")
    return _read_json(base / f"{m}.{d}.json", "dataset")


def version_meta(model: str | None = None, version: str | None = None) -> dict[str, Any]:
    """The record of a model version given to the task (see :func:`model_path`)."""
    base = meta_dir() / "versions"
    m, v = _pick(_staged(base, ".json"), model, version, "model version")
    return _read_json(base / f"{m}.{v}.json", "model version")


def training_meta() -> dict[str, Any]:
    """The record of the running training."""
    return _read_json(meta_dir() / "training.json", "training")


def movers_meta(model: str | None = None, version: str | None = None, ignore: bool = False) -> Meta:
    """The record of a staged model version, as the modelled framework's ``movers_meta`` returns it.

    Same choice as :func:`version_meta`; with ``ignore`` an empty :class:`Meta`
    instead of an error when none (or several) fit.

    Raises:
        NotFoundError: no staged version matches (unless ``ignore``).
        UsageError: several match and the call did not say which (unless ``ignore``).
    """
    try:
        return Meta(version_meta(model, version))
    except (NotFoundError, UsageError):
        if ignore:
            return Meta()
        raise


def train_meta() -> Meta:
    """The running training's record (:func:`training_meta`), as the modelled framework's ``train_meta``.

    Raises:
        NotFoundError: the task is not a training.
    """
    return Meta(training_meta())


def deployment_meta() -> dict[str, Any]:
    """The record of the deployment this replica belongs to."""
    return _read_json(meta_dir() / "deployment.json", "deployment")


def project_meta() -> dict[str, Any]:
    """The record of the task's project."""
    return _read_json(meta_dir() / "project.json", "project")


def build_meta() -> dict[str, Any]:
    """The record of the build version the task runs on."""
    return _read_json(meta_dir() / "build.json", "build")


__all__ = [
    "Meta",
    "build_meta",
    "data_path",
    "dataset_meta",
    "deployment_meta",
    "meta_dir",
    "model_path",
    "mount_path",
    "movers_meta",
    "project_meta",
    "staged_datasets",
    "staged_versions",
    "task_root",
    "tmp_path",
    "train_meta",
    "training_meta",
    "version_meta",
]
