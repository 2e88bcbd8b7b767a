"""The roll-out rule every manager follows, on top of its deployment primitives.

A deploy is a new *generation*: the manager starts its replicas (all at once
for a new deployment, one at a time in place of the old ones for a redeploy)
and :func:`roll_out` follows :meth:`~atoll.containers.base.ContainerManager.rollout_state`
on one deadline. A new deployment that never gets healthy leaves nothing; a
redeploy that never gets healthy is rolled back and the old replicas keep serving.
:func:`start_roll_out` and :func:`settle_roll_out` split the same rule for a
roll-out nobody waits for (``depl new -b``): start it, then settle it one look
at a time (done: the older generations' files go; failed: undone as above).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from atoll.containers.spec import LogSink, PendingRollout, ReplicaStatus, Rollout, TaskSpec
from atoll.errors import ExecutionError
from atoll.task.deadline import wait_until
from atoll.task.staging import remove_tree


class Deployer(Protocol):
    """The part of :class:`~atoll.containers.base.ContainerManager` a roll-out uses."""

    def service_lock(self, project: str, name: str) -> AbstractContextManager[object]: ...
    def running_generation(self, project: str, name: str) -> int | None: ...
    def start_generation(
        self, spec: TaskSpec, generation: int, previous: int | None, timeout: float, log: LogSink
    ) -> None: ...
    def rollout_state(self, project: str, name: str, generation: int) -> Rollout: ...
    def rollout_budget(self, spec: TaskSpec, timeout: float, previous: int | None) -> float: ...
    def roll_back(self, project: str, name: str, previous: int, failed: int) -> None: ...
    def discard_service(self, project: str, name: str) -> None: ...
    def service_status(self, project: str, name: str) -> list[ReplicaStatus]: ...
    def generation_root(self, project: str, name: str, generation: int) -> Path: ...
    def drop_generations(self, project: str, name: str, keep: int | None) -> None: ...


def roll_out(manager: Deployer, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
    """Start or roll over ``spec``'s replicas; see :meth:`ContainerManager.deploy`."""
    project, name = spec.project.name, spec.name
    with manager.service_lock(project, name):
        generation, previous = _start(manager, spec, timeout, log)
        seen: dict[str, str] = {}

        def progress() -> Rollout | None:
            state = manager.rollout_state(project, name, generation)
            for replica in state.replicas:
                if seen.get(replica.name) != replica.state:
                    seen[replica.name] = replica.state
                    log(f"replica {replica.name}: {replica.state}")
            return state if state.state != "running" else None

        budget = manager.rollout_budget(spec, timeout, previous)
        try:
            outcome = wait_until(progress, budget, every=0.1)
        except BaseException:  # Ctrl-C, SIGTERM: a new deployment leaves nothing running
            if previous is None:
                _undo(manager, project, name, previous, generation)
            else:  # the local supervisor, seeing its deployer gone, restores the old replicas itself
                manager.roll_back(project, name, previous, generation)
            raise
        if outcome is not None and outcome.state == "done":
            manager.drop_generations(project, name, keep=generation)
            return manager.service_status(project, name)
        error = outcome.error if outcome else f"the roll-out did not finish within {budget:g}s"
        tail = outcome.log_tail if outcome else ""
        _undo(manager, project, name, previous, generation)
        if previous is not None:
            raise ExecutionError(
                f"redeploying {project}:{name} failed, the previous replicas keep serving: {error}",
                log_tail=tail,
            )
        raise ExecutionError(f"deployment {project}:{name} did not start: {error}", log_tail=tail)


def _start(manager: Deployer, spec: TaskSpec, timeout: float, log: LogSink) -> tuple[int, int | None]:
    """Start a new generation (the service lock held); return it and the one it replaces."""
    project, name = spec.project.name, spec.name
    previous = manager.running_generation(project, name)
    if previous is None:
        manager.discard_service(project, name)  # leftovers of a crashed runtime
        manager.drop_generations(project, name, keep=None)
    # Time-ordered and unique, so a failed generation's number is never reused.
    generation = max(int(time.time() * 1000), (previous or 0) + 1)
    try:
        manager.start_generation(spec, generation, previous, timeout, log)
    except BaseException:
        _undo(manager, project, name, previous, generation)
        raise
    return generation, previous


def start_roll_out(manager: Deployer, spec: TaskSpec, timeout: float, log: LogSink) -> PendingRollout:
    """Start or roll over ``spec``'s replicas and return at once; see :meth:`ContainerManager.start_deploy`."""
    spec = dataclasses.replace(spec, detached=True)
    with manager.service_lock(spec.project.name, spec.name):
        generation, previous = _start(manager, spec, timeout, log)
    return PendingRollout(generation, previous, time.time() + manager.rollout_budget(spec, timeout, previous))


def settle_roll_out(manager: Deployer, project: str, name: str, pending: PendingRollout) -> Rollout:
    """One look at a roll-out :func:`start_roll_out` started; see :meth:`ContainerManager.settle_deploy`."""
    with manager.service_lock(project, name):
        outcome = manager.rollout_state(project, name, pending.generation)
        if outcome.state == "running" and time.time() > pending.deadline:
            outcome = Rollout("failed", outcome.replicas, "the roll-out did not finish in time")
        if outcome.state == "done":
            manager.drop_generations(project, name, keep=pending.generation)
        elif outcome.state == "failed":
            _undo(manager, project, name, pending.previous, pending.generation)
        return outcome


def _undo(manager: Deployer, project: str, name: str, previous: int | None, failed: int) -> None:
    if previous is None:
        manager.discard_service(project, name)
        manager.drop_generations(project, name, keep=None)
    else:
        manager.roll_back(project, name, previous, failed)
        remove_tree(manager.generation_root(project, name, failed))


__all__ = ["Deployer", "roll_out", "settle_roll_out", "start_roll_out"]
