"""Fetch staging, on board: the task fetches its own inputs from the file store.

With ``ATOLL_STAGING=fetch`` (``container_manager.staging: fetch``) a task
starts with ``atoll/meta`` naming its datasets and model versions but empty
``data`` and ``model`` directories; the runner fetches the files (checked
against their recorded size and digest: BLAKE3, or sha256 for files recorded
so; the image has the ``blake3`` package) before the first cell runs, using the
store settings the task received as a secret. ``python -m atoll.runner fetch``
does only that (the IDE runs it before Jupyter starts).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from atoll.task.layout import STAGING_ENV, TaskLayout

if TYPE_CHECKING:
    from atoll.files.base import FileStore


def fetch_asked() -> bool:
    """True when this task was staged for fetching its own inputs."""
    return os.environ.get(STAGING_ENV) == "fetch"


def fetch_if_asked(layout: TaskLayout, files: FileStore | None = None) -> None:
    """In fetch mode, fetch every input ``atoll/meta`` names that is not in place yet.

    Raises:
        NotFoundError / ValidationError: stored files are missing or corrupt.
    """
    if not fetch_asked():
        return
    from atoll.task.staging import fetch_inputs

    if files is None:
        from atoll.task.stores import task_stores

        files = task_stores()[1]
    for path in fetch_inputs(layout, files):
        print(f"atoll: fetched {path.parent.name}/{path.name}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m atoll.runner fetch``: fetch the inputs, exit 0 (1 on failure)."""
    if argv:
        print(f"usage: python -m atoll.runner fetch (unexpected {argv})", file=sys.stderr)
        return 2
    from atoll.errors import AtollError

    try:
        fetch_if_asked(TaskLayout.current())
    except AtollError as exc:
        print(f"atoll: error: cannot fetch the task's inputs: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


__all__ = ["fetch_asked", "fetch_if_asked", "main"]
