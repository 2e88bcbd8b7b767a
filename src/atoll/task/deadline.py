"""One way to wait for something with a deadline.

Every "poll until ready or give up" in Atoll (a replica's health, the IDE
answering, a container going away, an island starting) goes through
:func:`wait_until`, so the deadline arithmetic is written once. Standard
library only: on-board code (runner, supervisor) may use it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    every: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
) -> T | None:
    """Call ``check`` until it returns something truthy, or ``timeout`` seconds pass.

    ``check`` runs at least once (also with ``timeout <= 0``), then every
    ``every`` seconds; the last sleep is cut so the call never overruns the
    deadline by more than one ``check``. ``sleep`` may return early (e.g. a
    wait on a process's pidfd).

    Returns:
        The first truthy value of ``check()``, or None when the deadline passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sleep(min(every, left))


__all__ = ["wait_until"]
