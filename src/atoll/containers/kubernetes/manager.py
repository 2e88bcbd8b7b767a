"""``container_manager.type: kubernetes`` (alias ``kube``): the container plug point on a cluster.

Thin glue between the shared behaviour of :class:`~atoll.containers.base.ContainerManager`
and this package: builds are the swarm builds pushed to ``docker.target_registry``
(nodes pull them, tasks run ``image@digest``); trainings are Jobs
(:mod:`.jobs`), deployments Deployments (:mod:`.rollouts`), the IDE a pod
(:mod:`.ide`). Inputs always reach a task by fetch staging (an init
container), the store settings as a Secret (with a deployment's replica
secret: its pods answer predictions only to the router that sends it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from atoll.config import Config
from atoll.containers.base import (
    BuildRequest, ContainerManager, IdeHandle, IdeLaunch, LogSink, ReplicaStatus, Rollout, StagedTask,
    Staging, TaskSpec, TaskStatus, split_task_id,
)
from atoll.containers.kubernetes.client import KubeClient
from atoll.containers.kubernetes.ide import KubeIde
from atoll.containers.kubernetes.jobs import KubeTrainings
from atoll.containers.kubernetes.manifests import pull_secret_name
from atoll.containers.kubernetes.objects import image_pull_secret, pinned_image
from atoll.containers.kubernetes.rollouts import KubeDeployments
from atoll.containers.kubernetes.stores import cluster_store_config
from atoll.containers.spec import TASK_USER
from atoll.domain.records import BuildVersion
from atoll.errors import ConfigError, UsageError
from atoll.files.base import FileStore
from atoll.metadata.base import MetadataStore
from atoll.task.stores import with_replica


def _generation_label(generation: int) -> str:
    return f"g{generation}"


class KubernetesContainerManager(ContainerManager):
    """Runs trainings, deployments and the IDE on a Kubernetes cluster."""

    type = "kubernetes"

    def __init__(self, config: Config, metadata: MetadataStore, files: FileStore) -> None:
        super().__init__(config, metadata, files)
        if not config.docker.target_registry:
            raise ConfigError("container_manager.type kubernetes needs docker.target_registry: the nodes pull "
                              "the images Atoll builds from there")

    @cached_property
    def kube(self) -> KubeClient:
        return KubeClient(self.config)

    @cached_property
    def trainings(self) -> KubeTrainings:
        return KubeTrainings(self.kube, self.config)

    @cached_property
    def deployments(self) -> KubeDeployments:
        return KubeDeployments(self.kube, self.config)

    @cached_property
    def ide(self) -> KubeIde:
        return KubeIde(self.kube, self.config)

    def close(self) -> None:
        kube = self.__dict__.pop("kube", None)
        if kube is not None:
            kube.close()

    # Staging: pods fetch their inputs; the store settings are the cluster's view.

    def default_staging(self) -> Staging:
        return "fetch"

    def task_store_config(self, spec: TaskSpec) -> dict[str, Any]:
        def in_network() -> dict[str, Any]:
            from atoll.backends import task_store_config

            return task_store_config(self.config, self.metadata, in_network=True)

        return cluster_store_config(self.config, dict(spec.store_config), in_network)

    def _ensure_pull_secret(self) -> None:
        """The ``kubernetes.image_pull_secret`` chest as a dockerconfigjson Secret the pods refer to."""
        chest = self.config.container_manager.kubernetes.image_pull_secret
        if not chest:
            return
        from atoll.credentials import read_chest

        user, password = read_chest(self.config, chest, "container_manager.kubernetes.image_pull_secret",
                                    fallback=self.metadata)
        self.kube.ensure_namespace()
        self.kube.apply(image_pull_secret(pull_secret_name(chest), self.kube.namespace,
                                          str(self.config.docker.target_registry), user, password))

    def _for_cluster(self, spec: TaskSpec, store_config: dict[str, Any] | None = None) -> TaskSpec:
        self._ensure_pull_secret()
        if self.config.container_manager.staging == "host":
            raise UsageError("container_manager.staging: host cannot work on Kubernetes (pods do not see this "
                             "host's files); unset it or set fetch")
        if store_config is None:  # (stage_task's settings already carry a replica's part)
            store_config = self.task_store_config(spec)
            if spec.replica:  # the replica secret (and the server's limits) travel in the store Secret
                store_config = with_replica(store_config, spec.replica)
        return replace(spec, store_config=store_config)

    # Builds: the swarm builds, pushed to the target registry.

    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        from atoll.containers.swarm.build import build_image
        from atoll.containers.swarm.engine import connect

        client = connect(self.config)
        try:
            record = build_image(client, self.config, request, log, self.metadata)
        finally:
            client.close()
        pinned_image(record.digest, f"build {request.project.name}:{request.tag}")
        record.container_manager = self.type
        return record

    def build_key(self, build: BuildVersion) -> tuple[str, str] | None:
        return ("digest", build.digest) if build.digest else None

    def delete_build(self, build: BuildVersion) -> None:
        """Remove the local image; the registry keeps its copy (nodes may still run it)."""
        from atoll.containers.swarm.engine import connect
        from atoll.containers.swarm.images import remove_image

        if build.image:
            client = connect(self.config)
            try:
                remove_image(client, self.config, build.image)
            finally:
                client.close()

    # Trainings

    def launch_task(self, spec: TaskSpec, task_id: str, staged: StagedTask) -> None:
        self.trainings.start(self._for_cluster(spec, staged.store_config))

    def task_status(self, task_id: str) -> TaskStatus:
        project, name = split_task_id(task_id)
        return self.trainings.status(project, name)

    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        project, name = split_task_id(task_id)
        return self.trainings.logs(project, name, follow=follow)

    def stop_task(self, task_id: str) -> None:
        project, name = split_task_id(task_id)
        self.trainings.stop(project, name)

    def discard_task(self, task_id: str) -> None:
        project, name = split_task_id(task_id)
        self.trainings.discard(project, name)

    # Deployments

    def running_generation(self, project: str, name: str) -> int | None:
        label = self.deployments.running_generation(project, name)
        return int(label[1:]) if label and label[1:].isdigit() else None

    def start_generation(self, spec: TaskSpec, generation: int, previous: int | None, timeout: float,
                         log: LogSink) -> None:
        if spec.port is not None and spec.replica:
            log(f"note: the --port {spec.port} Service reaches the replicas directly, with no balancer to check "
                "API keys: they refuse predictions through it (403); predict through the router")
        self.deployments.start(self._for_cluster(spec), _generation_label(generation), timeout)

    def rollout_state(self, project: str, name: str, generation: int) -> Rollout:
        view = self.deployments.rollout(project, name, _generation_label(generation))
        if view.state == "done":
            self.deployments.keep_only(project, name, _generation_label(generation))
        return Rollout(view.state, view.replicas, view.error, view.log_tail)

    def roll_back(self, project: str, name: str, previous: int, failed: int) -> None:
        self.deployments.roll_back(project, name, _generation_label(failed))

    def discard_service(self, project: str, name: str) -> None:
        self.deployments.discard(project, name)

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        return self.deployments.status(project, name)

    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        return self.deployments.logs(project, name, follow)

    # IDE: a pod this host usually cannot reach directly, so the base's
    # loopback readiness probe does not apply; the pod's readiness does.

    def ide_uid(self, edit_dir: Path | None) -> int | None:
        """Every pod runs as :data:`TASK_USER` (``runAsNonRoot``), the IDE's too."""
        return TASK_USER[0]

    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        if not token:
            raise UsageError("the IDE needs a token")
        address = self.ide.start(self._for_cluster(spec), token)
        return IdeHandle(url=address, task_id=self.ide.objects(spec.project.name).base)

    def launch_ide(self, spec: TaskSpec, staged: StagedTask, port: int, token: str) -> IdeLaunch:
        self.ide.start(self._for_cluster(spec, staged.store_config), token)
        return IdeLaunch(base_url=f"http://127.0.0.1:{port}", task_id=self.ide.objects(spec.project.name).base)

    def ide_exit(self, project: str) -> str | None:
        return self.ide.exit_reason(project)

    def ide_log_tail(self, project: str) -> str:
        return self.ide.log_tail(project)

    def discard_ide(self, project: str) -> None:
        self.ide.discard(project)


__all__ = ["KubernetesContainerManager"]
