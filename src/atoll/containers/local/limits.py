"""What the local runtime enforces of a resource profile: a memory limit and CPU affinity.

A local task is a process tree, not a container, so only what a process can be
given before it starts applies (set in the child between ``fork`` and ``exec``,
inherited by everything it starts — the notebook's kernel included):

``memory_limit``
    ``RLIMIT_DATA`` (MB → bytes): the process's private writable memory — heap,
    anonymous mappings, thread stacks; what ``malloc``/NumPy allocate. Not
    ``RLIMIT_AS``: the address space also counts memory that is only reserved
    (every thread's malloc arena, OpenBLAS buffers, shared libraries), so a
    Python process importing NumPy reserves far more than it uses and would fail
    under a limit sized to what it really needs. Over the limit an allocation
    fails: NumPy raises ``MemoryError`` and the training ends FAILED with it.
    The limit is per process (a kernel and the runner each get it), not a total.
``cpu_limit``
    affinity to ``ceil(cpu_limit)`` CPUs (the first ones this process may use):
    whole cores, not a time share.

The limits are set by a ``preexec_fn``: it only calls ``setrlimit`` and
``sched_setaffinity`` of modules imported beforehand (no lock another thread could
hold at ``fork``), and the processes that start tasks (the CLI, the deployment
supervisor) run no other threads then.

``cpu_request``, ``memory_request`` and ``gpu`` are not enforced
(:attr:`LocalContainerManager.unenforced_resources`, named in the record's note).
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Callable, Mapping
from typing import Any

from atoll.config import ResourceProfile

MB = 1024 * 1024


def process_limits(profile: ResourceProfile | None) -> dict[str, int]:
    """``{"memory_bytes", "cpus"}`` (what is set) of a profile: plain JSON for the supervisor's spec."""
    if profile is None:
        return {}
    out: dict[str, int] = {}
    if profile.memory_limit is not None:
        out["memory_bytes"] = int(profile.memory_limit) * MB
    if profile.cpu_limit is not None:
        out["cpus"] = max(1, math.ceil(profile.cpu_limit))
    return out


def apply_limits(limits: Mapping[str, Any]) -> None:
    """Limit the calling process (and what it starts): in a child before ``exec``."""
    memory = limits.get("memory_bytes")
    if memory:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        soft = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, soft))
    cpus = limits.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[: int(cpus)])


def preexec(limits: Mapping[str, Any] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` applying ``limits`` in the child (None: nothing to apply)."""
    if not limits:
        return None
    frozen = dict(limits)
    return lambda: apply_limits(frozen)


__all__ = ["apply_limits", "preexec", "process_limits"]
