"""Trainings on the swarm runtime: one-off containers of the engine.

A training is a container ``<ns>-train-<proj>-<name>`` running ``python -m
atoll.runner train`` on the build's recorded image id/digest, with the task
layout mounted read-only and the store settings as a read-only file mount.
Its task id is ``<proj>/train/<name>``.

The *engine* says how it ended: when the container has exited, its state
(``ExitCode``, ``OOMKilled``) and log are saved in the stage directory
(``atoll/exit.json``, ``atoll/task.log``) and the container is removed (kept
when ``keep`` is set, e.g. ``ATOLL_KEEP_CONTAINERS=1``). So a container killed
for memory ends FAILED with "killed: out of memory (limit N MB)" even when
the runner inside never got to say anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.config import ResourceProfile
from atoll.containers.base import (
    ContainerManager,
    StagedTask,
    TaskSpec,
    TaskStatus,
    describe_exit,
    split_task_id,
    wait_until,
)
from atoll.containers.swarm.build import runnable_ref
from atoll.containers.swarm.engine import (
    LABEL_KIND, LABEL_NAMESPACE, engine_errors, ensure_network, get_or_none, labels, memory_bytes, nano_cpus,
    split_lines,
)
from atoll.containers.swarm.stage import mounts, task_binds, task_env, task_user, user_env, user_mounts
from atoll.domain.records import TaskState, Training
from atoll.errors import AtollError, NotFoundError

if TYPE_CHECKING:
    from docker.models.containers import Container

    from docker import DockerClient

_RUNNING = ("created", "running", "restarting", "paused")
_STOP_GRACE = 10  # seconds between SIGTERM (the runner saves its notebook) and SIGKILL


def container_resources(profile: ResourceProfile | None) -> dict[str, Any]:
    """``containers.run`` keyword arguments for a resource profile (swap off: OOM kills, never swaps)."""
    if profile is None:
        return {}
    out: dict[str, Any] = {}
    if profile.memory_limit is not None:
        out["mem_limit"] = memory_bytes(profile.memory_limit)
        out["memswap_limit"] = memory_bytes(profile.memory_limit)
    if profile.memory_request is not None:
        out["mem_reservation"] = memory_bytes(profile.memory_request)
    if profile.cpu_limit is not None:
        out["nano_cpus"] = nano_cpus(profile.cpu_limit)
    if profile.gpu:
        from docker.types import DeviceRequest

        out["device_requests"] = [DeviceRequest(count=profile.gpu, capabilities=[["gpu"]])]
    return out


def container_state(container: Container | None) -> str | None:
    """None while a container runs; otherwise why not (``not started``, ``exit code 1``...)."""
    if container is None:
        return "not started"
    if container.status in _RUNNING:
        return None
    code = int((container.attrs.get("State") or {}).get("ExitCode") or 0)
    return describe_exit(code) if code else f"exited ({container.status})"


class SwarmContainers(ContainerManager):
    """What trainings and the IDE share: the engine client and plain containers."""

    client: DockerClient
    keep: bool

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    def run_container(self, spec: TaskSpec, staged: StagedTask, name: str, kind: str, command: list[str],
                      extra_binds: Sequence[tuple[str, str, bool]] = (), **kwargs: Any) -> Container:
        """Start a detached container of the build for a staged task (store settings as a file mount)."""
        binds = [*task_binds(spec, staged, store_file=True), *extra_binds]
        user = task_user(spec, staged, binds)
        kwargs["environment"] = {**kwargs.get("environment", {}), **user_env(user)}

        def run() -> Container:
            network = ensure_network(self.client, self.config)
            with engine_errors(self.config, f"starting {kind} {spec.project.name}:{spec.name}"):
                return self.client.containers.run(
                    runnable_ref(spec.build),
                    command,
                    name=name,
                    detach=True,
                    init=True,
                    working_dir="/app",
                    labels=labels(self.config, kind, spec.project.name, spec.name),
                    mounts=[*mounts(binds), *user_mounts(spec)],
                    network=network,
                    user=f"{user[0]}:{user[1]}",
                    **container_resources(spec.profile),
                    **kwargs,
                )

        try:
            return run()
        except NotFoundError as exc:
            # The node drops its part of an overlay network nobody uses any more; a
            # container attaching at that moment finds it gone. Once more, afresh.
            if "network" not in str(exc):
                raise
            self.remove_container(name)
            time.sleep(1)
            return run()

    def container(self, name: str) -> Container | None:
        return get_or_none(self.config, f"inspecting container {name}", lambda: self.client.containers.get(name))

    def remove_container(self, name: str) -> None:
        """Remove a container by name (missing is fine; a removal already in progress is awaited)."""
        from docker.errors import APIError, NotFound

        with engine_errors(self.config, f"removing container {name}"):
            try:
                self.client.containers.get(name).remove(force=True)
            except NotFound:
                pass
            except APIError as exc:
                # Two removers (the end-of-task finalizer and `train rm`/cancel) can
                # race; the engine answers 409 "already in progress" to the second.
                if exc.status_code != 409 or "in progress" not in str(exc):
                    raise
                wait_until(lambda: self.container(name) is None, 30, every=0.2)


class SwarmTasks(SwarmContainers):
    """The training primitives of the swarm manager."""

    def container_name(self, task_id: str) -> str:
        project, name = split_task_id(task_id)
        return f"{self.namespace}-train-{project}-{name}"

    def launch_task(self, spec: TaskSpec, task_id: str, staged: StagedTask) -> None:
        """Start the training's container detached (leftovers of an earlier one are replaced)."""
        self.reap()
        self.remove_container(self.container_name(task_id))
        self.run_container(spec, staged, self.container_name(task_id), "train",
                           ["python", "-m", "atoll.runner", "train"], environment=task_env(spec, staged))

    def _exit_file(self, task_id: str) -> Path:
        return self.training_dir(task_id) / "atoll" / "exit.json"

    def _log_file(self, task_id: str) -> Path:
        return self.training_dir(task_id) / "atoll" / "task.log"

    def finalize(self, task_id: str, container: Container) -> TaskStatus:
        """Save an ended container's state and log, amend the record on OOM, remove the container."""
        state = container.attrs.get("State") or {}
        code = int(state.get("ExitCode") or 0)
        limit = (container.attrs.get("HostConfig") or {}).get("Memory") or 0
        error: str | None = None
        if state.get("OOMKilled"):
            error = "killed: out of memory" + (f" (limit {limit // (1024 * 1024)} MB)" if limit else "")
        elif code != 0:
            error = describe_exit(code)
        with engine_errors(self.config, f"reading the log of {container.name}"):
            log = container.logs(stdout=True, stderr=True)
        path = self._log_file(task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(log)
        self._exit_file(task_id).write_bytes(orjson.dumps({"exit_code": code, "error": error}))
        if state.get("OOMKilled"):
            self._amend_oom(task_id, error or "killed: out of memory")
        if not self.keep:
            self.remove_container(str(container.name))
        return TaskStatus(task_id, running=False, exit_code=code, error=error)

    def _amend_oom(self, task_id: str, error: str) -> None:
        """Say in the record that the engine killed the task for memory (the runner could not)."""
        from atoll.task.records import update_training

        project, name = split_task_id(task_id)

        def change(record: Training) -> bool:
            # Not ended yet: reconcile records it FAILED with the engine's reason itself.
            if record.task.state != TaskState.FAILED or "out of memory" in (record.task.error or ""):
                return False
            record.task.error = f"{record.task.error} ({error})" if record.task.error else error
            return True

        try:
            update_training(self.metadata, project, name, change)
        except AtollError:
            pass  # the record may be gone; the engine's verdict is still in exit.json

    def task_status(self, task_id: str) -> TaskStatus:
        exit_file = self._exit_file(task_id)
        if exit_file.exists():
            data = orjson.loads(exit_file.read_bytes())
            return TaskStatus(task_id, running=False, exit_code=data.get("exit_code"), error=data.get("error"))
        container = self.container(self.container_name(task_id))
        if container is None:
            if not self.training_dir(task_id).exists():
                raise NotFoundError(f"no swarm task {task_id} (no container, no stage directory)")
            return TaskStatus(task_id, running=False, error="the task container vanished")
        if container.status in _RUNNING:
            return TaskStatus(task_id, running=True)
        return self.finalize(task_id, container)

    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        container = self.container(self.container_name(task_id))
        if container is None:
            path = self._log_file(task_id)
            if not path.exists():
                raise NotFoundError(f"no log for swarm task {task_id}")
            yield from path.read_text(errors="replace").splitlines()
            return
        with engine_errors(self.config, f"reading the log of {container.name}"):
            stream = container.logs(stdout=True, stderr=True, stream=True, follow=follow)
            yield from split_lines(stream)
        if follow:
            self.task_status(task_id)  # the container has ended: save its verdict, remove it

    def stop_task(self, task_id: str) -> None:
        container = self.container(self.container_name(task_id))
        if container is not None and container.status in _RUNNING:
            with engine_errors(self.config, f"stopping {container.name}"):
                container.stop(timeout=_STOP_GRACE)
                container.reload()
            self.finalize(task_id, container)  # nobody polls a cancelled training: save and remove now

    def discard_task(self, task_id: str) -> None:
        self.remove_container(self.container_name(task_id))

    def reap(self) -> None:
        """Finalize every ended training container of this namespace (nobody may be watching them)."""
        with engine_errors(self.config, "listing training containers"):
            ended = self.client.containers.list(
                all=True,
                filters={"label": [f"{LABEL_KIND}=train", f"{LABEL_NAMESPACE}={self.namespace}"],
                         "status": "exited"},
            )
        for container in ended:
            project = container.labels.get("io.atoll.project")
            name = container.labels.get("io.atoll.name")
            if project and name and not self.keep:
                task_id = f"{project}/train/{name}"
                if not self._exit_file(task_id).exists():
                    self.finalize(task_id, container)


__all__ = ["SwarmContainers", "SwarmTasks", "container_resources", "container_state"]
