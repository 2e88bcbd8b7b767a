"""The stores as seen from inside a task, and safe updates of the task's record.

A task gets its store settings (credentials included) from the 0600 file
named by ``ATOLL_STORE_CONFIG``; they are opened once per process. Several
writers touch a training record while it runs (the runner, ``progress()`` in
the kernel, ``atoll train cancel``), so every update re-reads the record and
retries on a revision conflict instead of overwriting someone else's write.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.errors import ConflictError, NotFoundError, UsageError

if TYPE_CHECKING:
    from atoll.domain.records import Training
    from atoll.files.base import FileStore
    from atoll.metadata.base import MetadataStore

STORE_CONFIG_ENV = "ATOLL_STORE_CONFIG"


def read_store_config() -> dict[str, Any]:
    """The store settings handed to this task.

    Raises:
        NotFoundError: not running inside an Atoll task (no ``ATOLL_STORE_CONFIG``).
    """
    path = os.environ.get(STORE_CONFIG_ENV)
    if not path:
        raise NotFoundError(f"not inside an Atoll task: {STORE_CONFIG_ENV} is not set")
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise NotFoundError(f"cannot read the task's store settings {path}: {exc.strerror}") from exc
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"the task's store settings {path} are not valid JSON") from exc
    if not isinstance(data, dict):
        raise UsageError(f"the task's store settings {path} are not a JSON object")
    return data


@lru_cache(maxsize=1)
def task_stores() -> tuple[MetadataStore, FileStore]:
    """``(metadata, files)`` of this task, opened once."""
    from atoll.backends import open_task_stores

    return open_task_stores(read_store_config())


def update_training(
    metadata: MetadataStore,
    proj: str,
    name: str,
    change: Callable[[Training], bool | None],
    attempts: int = 10,
) -> Training:
    """Re-read the training, apply ``change`` and write it, retrying on conflicts.

    ``change`` returns False to skip the write (e.g. the record already ended).
    """
    from atoll.domain.records import Training, utcnow

    for attempt in range(attempts):
        record = metadata.get(Training, name, proj)
        if change(record) is False:
            return record
        record.task.update_time = utcnow()
        try:
            return metadata.update(record)
        except ConflictError:
            time.sleep(0.02 * (attempt + 1))
    raise ConflictError(f"training {proj}:{name} kept changing; gave up updating it")


__all__ = ["STORE_CONFIG_ENV", "read_store_config", "task_stores", "update_training"]
