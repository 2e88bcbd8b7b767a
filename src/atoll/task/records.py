"""Safe updates of a training record while its task runs.

Several writers touch a training record while it runs (the runner,
``progress()`` in the kernel, ``atoll train cancel``, the container manager
noticing an OOM kill), so every update re-reads the record and retries on a
revision conflict instead of overwriting someone else's write.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from atoll.errors import ConflictError

if TYPE_CHECKING:
    from atoll.domain.records import Training
    from atoll.metadata.base import MetadataStore


def update_training(
    metadata: MetadataStore,
    proj: str,
    name: str,
    change: Callable[[Training], bool | None],
    attempts: int = 10,
) -> Training:
    """Re-read the training, apply ``change`` and write it, retrying on conflicts.

    ``change`` returns False to skip the write (e.g. the record already ended).

    Raises:
        NotFoundError: the training is gone.
        ConflictError: it kept changing through every attempt.
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


__all__ = ["update_training"]
