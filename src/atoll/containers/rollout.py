"""The roll-out rule every manager follows, on top of its deployment primitives.

A deploy is a new *generation*: the manager starts its replicas (all at once
for a new deployment, one at a time in place of the old ones for a redeploy)
and :func:`roll_out` follows :meth:`~atoll.containers.base.ContainerManager.rollout_state`
on one deadline. A new deployment that never gets healthy leaves nothing; a
redeploy that never gets healthy is rolled back and the old replicas keep serving.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from atoll.containers.spec import LogSink, ReplicaStatus, Rollout, TaskSpec
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


def _undo(manager: Deployer, project: str, name: str, previous: int | None, failed: int) -> None:
    if previous is None:
        manager.discard_service(project, name)
        manager.drop_generations(project, name, keep=None)
    else:
        manager.roll_back(project, name, previous, failed)
        remove_tree(manager.generation_root(project, name, failed))


__all__ = ["Deployer", "roll_out"]
