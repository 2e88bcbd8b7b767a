"""``progress(fraction)``: report how far a training got, from inside its notebook.

The runner already reports progress per executed cell; a notebook with one
long cell (a training loop) calls this to say more. Outside a training (in the
IDE, or a plain Jupyter) it does nothing, so the same notebook runs anywhere.
"""

from __future__ import annotations

import sys

from atoll.errors import UsageError
from atoll.toolkit.paths import meta_dir, training_meta

_warned = False


def progress(fraction: float) -> None:
    """Set the running training's progress to ``fraction`` (0 to 1).

    Raises:
        UsageError: ``fraction`` is not a number between 0 and 1.
    """
    global _warned
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise UsageError(f"progress must be a number between 0 and 1, got {fraction!r}")
    if not (meta_dir() / "training.json").is_file():
        if not _warned:
            print("atoll: progress() outside a training: nothing recorded", file=sys.stderr)
            _warned = True
        return
    from atoll.domain.records import TaskState, Training
    from atoll.task.records import update_training
    from atoll.task.stores import task_stores

    meta = training_meta()
    metadata, _files = task_stores()

    def change(record: Training) -> bool:
        if record.task.state != TaskState.RUNNING:
            return False
        record.task.progress = float(fraction)
        return True

    update_training(metadata, meta["proj"], meta["name"], change)


__all__ = ["progress"]
