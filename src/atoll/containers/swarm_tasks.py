"""One-off containers of the swarm runtime: trainings and the IDE.

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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.config import Config, ResourceProfile
from atoll.containers.base import IdeHandle, TaskSpec, TaskStatus, http_ok
from atoll.containers.local import describe_exit
from atoll.containers.staging import remove_tree, task_dir_for
from atoll.containers.swarm_build import runnable_ref
from atoll.containers.swarm_engine import (
    LABEL_KIND,
    LABEL_NAMESPACE,
    engine_errors,
    ensure_network,
    get_or_none,
    labels,
    memory_bytes,
    nano_cpus,
    split_lines,
)
from atoll.containers.swarm_stage import STORE_SECRET_PATH, StagedTask, stage_container_task
from atoll.domain.records import TaskState, Training
from atoll.errors import AtollError, ConflictError, ExecutionError, NotFoundError, UsageError

if TYPE_CHECKING:
    from docker.models.containers import Container

    from atoll.files.base import FileStore
    from atoll.metadata.base import MetadataStore
    from docker import DockerClient

IDE_PORT = 8888
IDE_START_TIMEOUT = 120.0
JUPYTER_CONFIG_PATH = "/run/secrets/jupyter_server_config.json"
_RUNNING = ("created", "running", "restarting", "paused")


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


def _task_env(spec: TaskSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(spec.env)
    env.update(
        {
            "ATOLL_TASK_DIR": "/",
            "ATOLL_STORE_CONFIG": STORE_SECRET_PATH,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class SwarmTasks:
    """Trainings and IDEs as plain containers of the engine."""

    def __init__(self, client: DockerClient, config: Config, metadata: MetadataStore, files: FileStore,
                 keep: bool = False) -> None:
        self.client = client
        self.config = config
        self.metadata = metadata
        self.files = files
        self.keep = keep

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    # Trainings

    def container_name(self, task_id: str) -> str:
        proj, name = self._split(task_id)
        return f"{self.namespace}-train-{proj}-{name}"

    @staticmethod
    def _split(task_id: str) -> tuple[str, str]:
        parts = task_id.split("/")
        if len(parts) != 3 or parts[1] != "train" or any(p in ("", ".", "..") for p in parts):
            raise NotFoundError(f"unknown swarm task id {task_id!r}")
        return parts[0], parts[2]

    def stage_dir(self, task_id: str) -> Path:
        proj, name = self._split(task_id)
        return task_dir_for("train", proj, name)

    def start_training(self, spec: TaskSpec) -> str:
        """Stage the task and start its container detached; return ``<proj>/train/<name>``."""
        if spec.kind != "train":
            raise UsageError(f"start_task runs one-off trainings, not {spec.kind!r} tasks")
        self.reap()
        task_id = f"{spec.project.name}/train/{spec.name}"
        name = self.container_name(task_id)
        image = runnable_ref(spec.build)
        self._remove_container(name)
        staged = stage_container_task(spec, self.stage_dir(task_id), self.files)
        mounts = staged.mounts()
        from docker.types import Mount

        mounts.append(Mount(STORE_SECRET_PATH, str(staged.store_file), type="bind", read_only=True))
        network = ensure_network(self.client, self.config)
        with engine_errors(self.config, f"starting training {spec.project.name}:{spec.name}"):
            self.client.containers.run(
                image,
                ["python", "-m", "atoll.runner", "train"],
                name=name,
                detach=True,
                init=True,
                working_dir="/app",
                environment=_task_env(spec),
                labels=labels(self.config, "train", spec.project.name, spec.name),
                mounts=mounts,
                network=network,
                **container_resources(spec.profile),
            )
        return task_id

    def _container(self, name: str) -> Container | None:
        return get_or_none(self.config, f"inspecting container {name}", lambda: self.client.containers.get(name))

    def _remove_container(self, name: str) -> None:
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
                self._wait_gone(name)

    def _wait_gone(self, name: str, timeout: float = 30) -> None:
        from docker.errors import NotFound

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.client.containers.get(name)
            except NotFound:
                return
            time.sleep(0.2)

    def _exit_file(self, task_id: str) -> Path:
        return self.stage_dir(task_id) / "atoll" / "exit.json"

    def _log_file(self, task_id: str) -> Path:
        return self.stage_dir(task_id) / "atoll" / "task.log"

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
            self._remove_container(str(container.name))
        return TaskStatus(task_id, running=False, exit_code=code, error=error)

    def _amend_oom(self, task_id: str, error: str) -> None:
        """Say in the record that the engine killed the task for memory (the runner could not)."""
        from atoll.runner.stores import update_training

        proj, name = self._split(task_id)

        def change(record: Training) -> bool:
            # Not ended yet: reconcile records it FAILED with the engine's reason itself.
            if record.task.state != TaskState.FAILED or "out of memory" in (record.task.error or ""):
                return False
            record.task.error = f"{record.task.error} ({error})" if record.task.error else error
            return True

        try:
            update_training(self.metadata, proj, name, change)
        except AtollError:
            pass  # the record may be gone; the engine's verdict is still in exit.json

    def status(self, task_id: str) -> TaskStatus:
        exit_file = self._exit_file(task_id)
        if exit_file.exists():
            data = orjson.loads(exit_file.read_bytes())
            return TaskStatus(task_id, running=False, exit_code=data.get("exit_code"), error=data.get("error"))
        container = self._container(self.container_name(task_id))
        if container is None:
            if not self.stage_dir(task_id).exists():
                raise NotFoundError(f"no swarm task {task_id} (no container, no stage directory)")
            return TaskStatus(task_id, running=False, error="the task container vanished")
        if container.status in _RUNNING:
            return TaskStatus(task_id, running=True)
        return self.finalize(task_id, container)

    def logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        container = self._container(self.container_name(task_id))
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
            self.status(task_id)  # the container has ended: save its verdict, remove it

    def stop(self, task_id: str, grace: float = 10.0) -> None:
        container = self._container(self.container_name(task_id))
        if container is not None and container.status in _RUNNING:
            with engine_errors(self.config, f"stopping {container.name}"):
                container.stop(timeout=int(grace))
                container.reload()
            self.finalize(task_id, container)  # nobody polls a cancelled training: save and remove now

    def remove(self, task_id: str) -> None:
        self._remove_container(self.container_name(task_id))
        remove_tree(self.stage_dir(task_id))

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

    # IDE

    def ide_name(self, project: str) -> str:
        return f"{self.namespace}-ide-{project}"

    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        """Jupyter Lab in a container, its port published on 127.0.0.1 only, token in a file mount.

        Raises:
            ConflictError: the project's IDE already runs.
            ExecutionError: Jupyter did not answer (with its log tail).
        """
        from docker.types import Mount

        project = spec.project.name
        name = self.ide_name(project)
        if self._container(name) is not None:
            raise ConflictError(
                f"the IDE of project {project} already runs (stop it with `atoll note --stop --proj {project}`)"
            )
        port = spec.port or self.config.ide.port
        image = runnable_ref(spec.build)
        root = task_dir_for("ide", project, "ide")
        staged: StagedTask = stage_container_task(spec, root, self.files)
        jupyter = root / "secret" / "jupyter_server_config.json"
        jupyter.write_bytes(orjson.dumps({
            "IdentityProvider": {"token": token},
            "ServerApp": {"ip": "0.0.0.0", "port": IDE_PORT, "port_retries": 0, "open_browser": False,
                          "root_dir": "/app", "allow_root": True, "allow_remote_access": True},
        }))
        jupyter.chmod(0o600)
        mounts = staged.mounts()
        mounts.append(Mount(STORE_SECRET_PATH, str(staged.store_file), type="bind", read_only=True))
        mounts.append(Mount(JUPYTER_CONFIG_PATH, str(jupyter), type="bind", read_only=True))
        network = ensure_network(self.client, self.config)
        with engine_errors(self.config, f"starting the IDE of {project}"):
            container = self.client.containers.run(
                image,
                ["python", "-m", "jupyterlab", f"--config={JUPYTER_CONFIG_PATH}"],
                name=name,
                detach=True,
                init=True,
                working_dir="/app",
                environment=_task_env(spec, {"JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime"}),
                labels=labels(self.config, "ide", project, "ide"),
                mounts=mounts,
                network=network,
                ports={f"{IDE_PORT}/tcp": ("127.0.0.1", port)},
                **container_resources(spec.profile),
            )
        deadline = time.monotonic() + IDE_START_TIMEOUT
        while time.monotonic() < deadline:
            container.reload()
            if container.status not in _RUNNING:
                tail = container.logs(tail=20).decode(errors="replace")
                self.stop_ide(project)
                raise ExecutionError(f"Jupyter Lab exited with code {container.attrs['State']['ExitCode']}",
                                     log_tail=tail)
            if http_ok(f"http://127.0.0.1:{port}/api/status", token):
                return IdeHandle(url=f"http://127.0.0.1:{port}/lab?token={token}", task_id=name)
            time.sleep(0.5)
        tail = container.logs(tail=20).decode(errors="replace")
        self.stop_ide(project)
        raise ExecutionError(f"Jupyter Lab did not answer within {IDE_START_TIMEOUT:g}s", log_tail=tail)

    def stop_ide(self, project: str) -> None:
        self._remove_container(self.ide_name(project))
        remove_tree(task_dir_for("ide", project, "ide"))


__all__ = ["SwarmTasks", "container_resources"]
