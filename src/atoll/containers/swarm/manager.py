"""The ``swarm`` container manager: builds are images, tasks run on a Docker engine / Swarm.

``container_manager.type: swarm``. :class:`SwarmContainerManager` writes only
the primitives of :class:`~atoll.containers.base.ContainerManager` (staging,
the roll-out rule, readiness waiting and the IDE's token are the base's), one
module per part: :mod:`.build` (images), :mod:`.tasks` (trainings),
:mod:`.services` (deployments), :mod:`.ide`, on :mod:`.engine` and :mod:`.stage`.

Trainings, replicas and the IDE all run the build's recorded image id or
digest, never its tag.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from atoll.containers.base import BuildRequest, LogSink, Staging, TaskSpec
from atoll.containers.swarm.ide import SwarmIde
from atoll.containers.swarm.services import SwarmServices
from atoll.containers.swarm.stage import blank_file, container_store_config
from atoll.containers.swarm.tasks import SwarmTasks
from atoll.domain.records import BuildVersion

if TYPE_CHECKING:
    from atoll.config import Config
    from docker import DockerClient

KEEP_ENV = "ATOLL_KEEP_CONTAINERS"
_EMBEDDED_FILE_STORES = ("local", "memory")


class SwarmContainerManager(SwarmTasks, SwarmServices, SwarmIde):
    """Runs builds and tasks on a Docker engine that is a swarm manager."""

    type = "swarm"
    unenforced_resources = frozenset({"auto_scale"})  # Swarm has no autoscaler

    def unenforced(self, kind: str) -> frozenset[str]:
        """Plus ``cpu_request`` for trainings and the IDE: a plain container has no CPU reservation."""
        return super().unenforced(kind) | (frozenset() if kind == "deploy" else frozenset({"cpu_request"}))

    @cached_property
    def client(self) -> DockerClient:  # type: ignore[override]
        """The engine client, connected on first use.

        Raises:
            BackendUnavailableError: the daemon does not answer.
        """
        from atoll.containers.swarm.engine import connect

        return connect(self.config)

    @property
    def keep(self) -> bool:  # type: ignore[override]
        """Keep ended training containers (for debugging): ``ATOLL_KEEP_CONTAINERS=1`` or DEBUG logging."""
        return os.environ.get(KEEP_ENV) == "1" or self.config.logger.level == "DEBUG"

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()

    # Builds

    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        """Build the project image (or pull a pre-built one); the record holds its id and digest."""
        from atoll.containers.swarm.build import build_image

        return build_image(self.client, self.config, request, log, self.metadata)

    def delete_build(self, build: BuildVersion) -> None:
        """Remove the build's tag (an image still used by a container stays)."""
        from atoll.containers.swarm.images import remove_image

        if build.image:
            remove_image(self.client, self.config, build.image)

    # Staging

    def default_staging(self) -> Staging:
        """``host`` while a store is embedded (a SQLite file, a local directory), else ``fetch``."""
        return swarm_default_staging(self.config)

    def task_store_config(self, spec: TaskSpec) -> dict[str, Any]:
        """The store settings as seen from the overlay network: native islands by service
        name, embedded stores at their mount points."""
        settings = spec.store_config
        if self.config.metadata.native or self.config.file_store.native:
            from atoll.backends import task_store_config

            settings = task_store_config(self.config, self.metadata, in_network=True)
        return container_store_config(settings, blank_file())[0]


def swarm_default_staging(config: Config) -> Staging:
    """``host`` while a store is embedded (a SQLite file, a local directory), else ``fetch``
    (also what the swarm router island follows: :mod:`atoll.islands.router_keys`)."""
    embedded_db = not config.metadata.native and config.metadata_url.startswith("sqlite:")
    embedded_files = not config.file_store.native and config.file_store.type in _EMBEDDED_FILE_STORES
    return "host" if embedded_db or embedded_files else "fetch"


def swarm_staging(config: Config) -> Staging:
    """``container_manager.staging``, else :func:`swarm_default_staging`."""
    configured = config.container_manager.staging
    return configured if configured is not None else swarm_default_staging(config)


__all__ = ["KEEP_ENV", "SwarmContainerManager", "swarm_default_staging", "swarm_staging"]
