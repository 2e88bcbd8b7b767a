"""The ``local`` container manager: builds are venvs, tasks are plain processes.

The embedded default: no Docker, nothing to install. A build is an immutable
code snapshot plus a cached virtual environment (:mod:`.build`); a training
is a process in its own session (:mod:`.tasks`); a deployment's replicas are
kept running by a detached supervisor (:mod:`.services`, :mod:`.supervisor`);
the IDE is Jupyter Lab from the build's environment (:mod:`.ide`). Every task
runs in a host directory laid out like a container (:mod:`atoll.task.layout`).
Staging, the roll-out rule, readiness waiting and the IDE's token are
:class:`~atoll.containers.base.ContainerManager`'s.
"""

from __future__ import annotations

from pathlib import Path

from atoll.containers.base import BuildRequest, LogSink
from atoll.containers.local.ide import LocalIde
from atoll.containers.local.services import LocalServices
from atoll.containers.local.tasks import LocalTasks
from atoll.domain.records import BuildVersion
from atoll.task.staging import remove_tree


class LocalContainerManager(LocalTasks, LocalServices, LocalIde):
    """Runs builds and tasks as local processes (``container_manager.type: local``)."""

    type = "local"
    # Requests are scheduling hints with no scheduler here; a GPU cannot be fenced off a process.
    unenforced_resources = frozenset({"cpu_request", "memory_request", "gpu", "auto_scale"})

    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        """Snapshot the code and create (or reuse) the environment."""
        from atoll.containers.dockerfile import check_noronha_base
        from atoll.containers.local.build import build_local

        dockerfile = request.source_dir / "Dockerfile"
        if dockerfile.is_file():  # run by no Docker here, but its FROM says what the project expects
            check_noronha_base(dockerfile.read_text(errors="replace"), self.config)
        return build_local(request, log)

    def delete_build(self, build: BuildVersion) -> None:
        """Remove the code snapshot; environments are shared by requirements hash and kept as a cache."""
        if build.location:
            remove_tree(Path(build.location))


__all__ = ["LocalContainerManager"]
