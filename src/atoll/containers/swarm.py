"""The ``swarm`` container manager: builds are images, tasks run on a Docker engine / Swarm.

``container_manager.type: swarm``. What each part does lives in its own module:

    swarm_engine     connection, docker error translation, names, labels
    images           the Atoll base image (``atoll image build-base``)
    swarm_build      project images (built, pushed, or pulled ``--pre-built``)
    swarm_stage      the task layout on the host + the mounts that deliver it
    swarm_tasks      trainings and the IDE as one-off containers
    swarm_services   deployments as replicated swarm services

Trainings, replicas and the IDE all run the build's recorded image id or
digest, never its tag.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING

from atoll.containers.base import (
    BuildRequest,
    ContainerManager,
    IdeHandle,
    LogSink,
    ReplicaStatus,
    TaskSpec,
    TaskStatus,
)
from atoll.domain.records import BuildVersion, Training

if TYPE_CHECKING:
    from atoll.containers.swarm_services import SwarmServices
    from atoll.containers.swarm_tasks import SwarmTasks
    from docker import DockerClient

KEEP_ENV = "ATOLL_KEEP_CONTAINERS"


class SwarmContainerManager(ContainerManager):
    """Runs builds and tasks on a Docker engine that is a swarm manager."""

    type = "swarm"

    @cached_property
    def client(self) -> DockerClient:
        """The engine client, connected on first use.

        Raises:
            BackendUnavailableError: the daemon does not answer.
        """
        from atoll.containers.swarm_engine import connect

        return connect(self.config)

    @property
    def keep(self) -> bool:
        """Keep ended training containers (for debugging): ``ATOLL_KEEP_CONTAINERS=1`` or DEBUG logging."""
        return os.environ.get(KEEP_ENV) == "1" or self.config.logger.level == "DEBUG"

    @cached_property
    def tasks(self) -> SwarmTasks:
        from atoll.containers.swarm_tasks import SwarmTasks

        return SwarmTasks(self.client, self.config, self.metadata, self.files, keep=self.keep)

    @cached_property
    def services(self) -> SwarmServices:
        from atoll.containers.swarm_services import SwarmServices

        return SwarmServices(self.client, self.config, self.files)

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()

    # Builds

    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        """Build the project image (or pull a pre-built one); the record holds its id and digest."""
        from atoll.containers.swarm_build import build_image

        return build_image(self.client, self.config, request, log)

    def remove_build(self, build: BuildVersion) -> None:
        """Remove the build's tag unless another build or a training still runs that image."""
        from atoll.containers.images import remove_image

        if not build.image or build.container_manager != "swarm":
            return
        others = [
            b for b in self.metadata.list(BuildVersion, scope=build.proj)
            if b.image_id == build.image_id and b.name != build.name
        ]
        users = self.metadata.count(Training, scope=build.proj, filter={"bvers.image_id": build.image_id})
        if not others and not users:
            remove_image(self.client, self.config, build.image)

    def _in_network(self, spec: TaskSpec) -> TaskSpec:
        """The spec with store settings as seen from the overlay network (native islands by service name)."""
        if not (self.config.metadata.native or self.config.file_store.native):
            return spec
        from atoll.backends import task_store_config

        return dataclasses.replace(spec, store_config=task_store_config(self.config, self.metadata, in_network=True))

    # One-off tasks

    def start_task(self, spec: TaskSpec) -> str:
        return self.tasks.start_training(self._in_network(spec))

    def task_status(self, task_id: str) -> TaskStatus:
        return self.tasks.status(task_id)

    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        return self.tasks.logs(task_id, follow)

    def stop_task(self, task_id: str) -> None:
        self.tasks.stop(task_id)

    def remove_task(self, task_id: str) -> None:
        self.tasks.remove(task_id)

    # Services

    def deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
        return self.services.deploy(self._in_network(spec), timeout, log)

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        return self.services.status(project, name)

    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        return self.services.logs(project, name, follow)

    def remove_service(self, project: str, name: str) -> None:
        self.services.remove(project, name)

    # IDE

    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        return self.tasks.start_ide(self._in_network(spec), token)

    def stop_ide(self, project: str) -> None:
        self.tasks.stop_ide(project)


__all__ = ["KEEP_ENV", "SwarmContainerManager"]
