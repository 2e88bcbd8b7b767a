"""Islands on Kubernetes (``container_manager.type: kubernetes`` or ``kube``).

``atoll isle router|db|files|ui setup|status|stop`` and ``get-me-started``
apply the manifests of :mod:`atoll.containers.kubernetes.island_manifests` in
``container_manager.namespace``::

    router  Deployment (router.replicas pods) + Service (kubernetes.service_type) + Secret <name>-keys
            [+ <name>-tls] [+ PodDisruptionBudget]: :mod:`.kube_router`
    db      StatefulSet (PostgreSQL) + its claim data-<name>-0 + Secret + Service (ClusterIP)
    files   Deployment (S3 server) + PersistentVolumeClaim + Secret + Service (ClusterIP)
    ui      Deployment + Secret (token, store settings) + Service (kubernetes.service_type)

named ``<namespace>-isle-<island>`` (the names tasks use on swarm too). Images
are the swarm islands' images pushed to ``docker.target_registry``
(:mod:`.kube_images`); credentials are the islands' treasure chests of the
home store, handed to the pods as Secret files only.

``setup`` applies the objects and waits (``islands.setup_timeout``) until the
workload has rolled out; a pod that cannot start ends the wait with the reason
and what setup applied is deleted again. ``status`` reads the ready replicas
(``1/2 ready`` and which pod is down while one of two serves);
``stop`` deletes the island's workload, Service and Secrets (by its labels)
and keeps its volume claim. The URL is the Service's: NodePort, LoadBalancer,
or the ``kubectl port-forward`` line (ClusterIP; always for db and files).
The router's API keys and the deployments' replica secrets are the Secret
``<namespace>-isle-router-keys``, mounted as a directory;
:func:`publish_router_secrets` updates it when ``atoll key new/rm`` or ``depl
new/rm`` rewrite those files, and the kubelet refreshes the mounted files (a
new replica secret also rolls the router over at the ``depl new``'s setup:
sooner than that refresh). ``router.tls_cert``/``tls_key`` are the Secret
``<namespace>-isle-router-tls``.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from atoll.backends import DB_DATABASE, DB_USER
from atoll.config import Config
from atoll.containers.base import LogSink
from atoll.containers.kubernetes import island_manifests as manifests
from atoll.containers.kubernetes.island_manifests import (
    ready_replicas, rolled_out, spec_annotation, stamp_spec, workload_containers,
)
from atoll.containers.kubernetes.objects import SERVICE_PORT, Manifest, resources, selector
from atoll.containers.kubernetes.pods import is_ready, pod_problem
from atoll.errors import AtollError, BackendUnavailableError
from atoll.islands.base import Island, IslandStatus
from atoll.islands.db import DbIsland
from atoll.islands.files import FilesIsland
from atoll.islands.kube_images import push_island_image
from atoll.islands.router_keys import replica_secrets_document
from atoll.islands.swarm import SwarmServiceIsland
from atoll.islands.ui import SwarmUiIsland

if TYPE_CHECKING:
    from atoll.containers.kubernetes.client import KubeClient

KUBE_TYPES = ("kubernetes", "kube")
#: What ``stop`` deletes (found by the island's labels, with :attr:`KubeIsland.extra_kinds`); claims are kept.
REMOVED_KINDS = ("Deployment", "StatefulSet", "Service", "Secret")
#: An image reference for manifests whose objects are only named, never applied.
_POLL = 0.2
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class KubeIsland(Island):
    """An island as objects in the cluster. Subclasses name their swarm twin, manifests and address."""

    #: The swarm island that builds the same image (and keeps the same credentials, setting and checks).
    twin_class: ClassVar[type[SwarmServiceIsland]]
    workload_kind: ClassVar[str] = "Deployment"
    in_cluster_port: ClassVar[int] = SERVICE_PORT
    takes_profile: ClassVar[bool] = True
    #: Kinds only this island makes, and not always (the router's PodDisruptionBudget): ``stop`` deletes
    #: them, and ``setup`` deletes one it no longer makes.
    extra_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Config, kube: KubeClient | None = None, image: str | None = None) -> None:
        super().__init__(config)
        self._kube = kube
        self._image = image  # a pushed reference to use instead of building one (tests, pre-pushed images)

    # What subclasses define.

    def check_native(self) -> None:
        """Refuse when the configuration points this part of Atoll at a foreign service (as the twin does)."""
        self.twin().check_native()

    def twin(self) -> SwarmServiceIsland:
        """The swarm island that builds the same image (and keeps the same credentials)."""
        return self.twin_class(self.config)

    def manifests(self, image: str) -> list[Manifest]:
        """The objects to apply, credentials included (made on the first setup)."""
        raise NotImplementedError

    @property
    def local_port(self) -> int:
        """The port of this host the island's setting names (``router.port``, ``islands.db_port``...): the twin's."""
        return self.twin().port

    @property
    def host(self) -> str:
        """The host address the island's setting names (``router.host``, ``islands.host``...): the twin's."""
        return self.twin().host

    def address(self, host: str, port: int) -> str:
        """The URL of the island at ``host:port`` (no credentials)."""
        return f"http://{host}:{port}"

    @property
    def claim(self) -> str | None:
        """The volume claim holding the island's data (kept by ``stop``), None when stateless."""
        return None

    # Names.

    @property
    def object_name(self) -> str:
        return manifests.island_name(self.config, self.name)

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            from atoll.containers.kubernetes.client import KubeClient

            self._kube = KubeClient(self.config)
        return self._kube

    def image(self, log: LogSink) -> tuple[str, float | None]:
        """The island image in the target registry (built and pushed when missing); the build time."""
        if self._image is not None:
            return self._image, None
        return push_island_image(self.config, self.twin(), log)

    # The verbs.

    def build(self, log: LogSink) -> IslandStatus:
        """Build the island's image and push it to the registry (``atoll isle <name> build``)."""
        started = time.monotonic()
        ref, build_seconds = self.image(log)
        done = f"built in {build_seconds:.1f}s" if build_seconds is not None else "already built"
        status = self._status(False, None, f"the {self.name} island image {ref} is in the registry ({done})",
                              started)
        status.build_seconds = round(build_seconds, 2) if build_seconds is not None else None
        return status

    def setup(self) -> IslandStatus:
        """Apply the island's objects unless it runs on the same spec; wait until it has rolled out."""
        self.check_native()
        started = time.monotonic()
        ref, build_seconds = self.image(lambda line: None)
        docs = self.manifests(ref)
        current = self._workload()
        self._set_resources(docs, current)
        spec_hash = stamp_spec(docs, self.workload_kind)
        self.kube.ensure_namespace()
        self._ensure_pull_secret()
        # Same spec, serving: a pod short (a killed router) is its kubelet's to restart, not setup's to undo.
        if current is not None and spec_annotation(current) == spec_hash and (
                rolled_out(current) or ready_replicas(current)[0] >= 1):
            for doc in docs:
                if doc["kind"] == "Secret":
                    self.kube.apply(doc)  # the router's keys may have changed
            ready, wanted = ready_replicas(current)
            short = f" with {ready}/{wanted} ready" if ready < wanted else ""
            return self._running(f"the {self.name} island is already running{short}", started)
        for doc in docs:
            self.kube.apply(doc)
        self._prune(docs)
        try:
            self._wait_rolled_out(self.config.islands.setup_timeout)
        except AtollError:
            self._delete()  # nothing half-started stays (the claim does)
            raise
        status = self._running(f"the {self.name} island is running", started)
        status.build_seconds = round(build_seconds, 2) if build_seconds is not None else None
        return status

    def status(self) -> IslandStatus:
        """From the workload's ready replicas (and the pods' problems when none is ready)."""
        workload = self._workload()
        if workload is None:
            return self._status(False, "stopped", f"the {self.name} island is not running")
        ready, wanted = ready_replicas(workload)
        if ready >= wanted:
            return self._running(f"the {self.name} island is healthy ({ready}/{wanted} ready)")
        if ready >= 1:  # serving (the Service sends traffic to ready pods only), short of pods
            down = [pod for pod in self._pods() if not is_ready(pod) and not pod["metadata"].get("deletionTimestamp")]
            why = "; ".join(f"pod {pod['metadata']['name']} is down: {pod_problem(pod) or 'not ready'}"
                            for pod in down)
            return self._running(f"the {self.name} island serves with {ready}/{wanted} ready"
                                 f"{' (' + why + ')' if why else ''}")
        problems = [p for p in map(pod_problem, self._pods()) if p]
        if problems:
            return self._status(True, "unhealthy", f"the {self.name} island does not start: {problems[0]}")
        return self._status(True, "starting", f"the {self.name} island is starting (0/{wanted} ready)")

    def stop(self) -> IslandStatus:
        """Delete the island's workload, Service and Secrets; keep its volume claim."""
        existed = self._workload() is not None
        self._delete()
        message = f"the {self.name} island was stopped" if existed else f"the {self.name} island was not running"
        if self.claim:
            message += f"; its data stays in the volume claim {self.claim} (kubectl -n {self.namespace} delete pvc " \
                       f"{self.claim} removes it)"
        return self._status(False, "stopped", message)

    # Cluster plumbing.

    def _set_resources(self, docs: list[Manifest], current: Manifest | None) -> None:
        """Give the workload's containers :attr:`profile`'s requests/limits; without one, those they run with."""
        running: dict[str, Any] = {}
        if current is not None:
            for container in workload_containers(current):
                if container.get("resources"):
                    running[container.get("name", "")] = container["resources"]
        wanted = resources(self.profile) if self.profile is not None else None
        for doc in docs:
            if doc["kind"] != self.workload_kind:
                continue
            for container in workload_containers(doc):
                chosen = wanted if wanted is not None else running.get(container.get("name", ""))
                if chosen:
                    container["resources"] = chosen
                elif wanted is not None:  # a profile with nothing set: none
                    container.pop("resources", None)

    def _workload(self) -> Manifest | None:
        return self.kube.read(self.workload_kind, self.object_name)

    @property
    def _selector(self) -> str:
        return selector("island", None, self.name)

    def _pods(self) -> list[Manifest]:
        return self.kube.pods(self._selector)

    def _delete(self) -> None:
        for kind in (*REMOVED_KINDS, *self.extra_kinds):
            for obj in self.kube.find(kind, self._selector):
                self.kube.delete(kind, obj["metadata"]["name"])

    def _prune(self, docs: list[Manifest]) -> None:
        """Delete the objects of :attr:`extra_kinds` an earlier setup applied and ``docs`` no longer hold."""
        applied = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
        for kind in self.extra_kinds:
            for obj in self.kube.find(kind, self._selector):
                if (kind, obj["metadata"]["name"]) not in applied:
                    self.kube.delete(kind, obj["metadata"]["name"])

    def _ensure_pull_secret(self) -> None:
        """The ``kubernetes.image_pull_secret`` Secret the island pods refer to, made from its chest when missing."""
        chest = self.config.container_manager.kubernetes.image_pull_secret
        if not chest:
            return
        from atoll.containers.kubernetes.manifests import pull_secret_name
        from atoll.containers.kubernetes.objects import image_pull_secret

        name = pull_secret_name(chest)
        if self.kube.read("Secret", name) is not None:
            return
        from atoll.credentials import read_chest

        # from the chest store: the metadata store may be an island not up yet
        user, password = read_chest(self.config, chest, "container_manager.kubernetes.image_pull_secret")
        self.kube.apply(image_pull_secret(name, self.namespace, str(self.config.docker.target_registry),
                                          user, password))

    def _wait_rolled_out(self, timeout: float) -> None:
        """Poll until the workload has rolled out.

        Raises:
            BackendUnavailableError: a pod cannot start, or ``timeout`` passed (with the log tail).
        """
        deadline = time.monotonic() + timeout
        while True:
            workload = self._workload()
            if workload is not None and rolled_out(workload):
                return
            for pod in self._pods():
                problem = pod_problem(pod)
                if problem:
                    raise BackendUnavailableError(f"the {self.name} island cannot start: {problem}"
                                                  f"{self._log_tail(pod)}")
            if time.monotonic() >= deadline:
                ready, wanted = ready_replicas(workload or {})
                pods = self._pods()
                raise BackendUnavailableError(
                    f"the {self.name} island was not ready within {timeout:g}s ({ready}/{wanted} ready)"
                    f"{self._log_tail(pods[-1]) if pods else '; no pod was created'}")
            time.sleep(_POLL)

    def _log_tail(self, pod: Manifest) -> str:
        tail = self.kube.pod_log(pod["metadata"]["name"], 5).strip()
        return f"; log: {tail}" if tail else ""

    def _service(self) -> Manifest | None:
        return self.kube.read("Service", self.object_name)

    def reach(self) -> tuple[str | None, str]:
        """Where a user reaches the island from this host, and how (one line)."""
        found = self._service()
        if found is None:
            return None, f"it has no Service {self.object_name}"
        spec = found.get("spec") or {}
        port = (spec.get("ports") or [{}])[0]
        kind = spec.get("type") or "ClusterIP"
        if kind == "NodePort" and port.get("nodePort"):
            node_port = int(port["nodePort"])
            host = self.host if self.host not in _LOOPBACK else "<any node address>"
            return self.address(host, node_port), f"NodePort {node_port} of Service {self.object_name} on every node"
        if kind == "LoadBalancer":
            ingress = ((found.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if ingress:
                where = ingress[0].get("ip") or ingress[0].get("hostname")
                return self.address(str(where), int(port["port"])), f"LoadBalancer of Service {self.object_name}"
            return None, (f"its LoadBalancer has no address yet (kubectl -n {self.namespace} get service "
                          f"{self.object_name})")
        forward = (f"kubectl -n {self.namespace} port-forward service/{self.object_name} "
                   f"{self.local_port}:{port.get('port', self.in_cluster_port)}")
        return self.address("127.0.0.1", self.local_port), f"ClusterIP Service: run `{forward}` to reach it here"

    def _running(self, what: str, started: float | None = None) -> IslandStatus:
        url, how = self.reach()
        status = self._status(True, "healthy", f"{what} in namespace {self.namespace}: {url or 'no address'} ({how})",
                              started)
        status.url = url
        return status

    def _status(self, running: bool, health: str | None, message: str, started: float | None = None) -> IslandStatus:
        return IslandStatus(self.name, running, message=message, health=health, service=self.object_name,
                            volume=self.claim,
                            seconds=round(time.monotonic() - started, 2) if started is not None else None)


class KubeDbIsland(KubeIsland):
    """PostgreSQL: StatefulSet with its volume claim, the password as a Secret file."""

    name: ClassVar[str] = "db"
    twin_class: ClassVar[type[SwarmServiceIsland]] = DbIsland
    workload_kind: ClassVar[str] = "StatefulSet"
    in_cluster_port: ClassVar[int] = manifests.DB_PORT

    def address(self, host: str, port: int) -> str:
        return f"postgresql://{DB_USER}@{host}:{port}/{DB_DATABASE}"

    @property
    def claim(self) -> str:
        return f"data-{self.object_name}-0"

    def manifests(self, image: str) -> list[Manifest]:
        return manifests.db_manifests(self.config, image, DbIsland(self.config).credentials()[1])


class KubeFilesIsland(KubeIsland):
    """The S3 server: Deployment on a PersistentVolumeClaim, its keys as a Secret file."""

    name: ClassVar[str] = "files"
    twin_class: ClassVar[type[SwarmServiceIsland]] = FilesIsland
    in_cluster_port: ClassVar[int] = manifests.FILES_PORT

    @property
    def claim(self) -> str:
        return self.object_name

    def manifests(self, image: str) -> list[Manifest]:
        access, secret = FilesIsland(self.config).credentials()
        return manifests.files_manifests(self.config, image, access, secret)


class KubeUiIsland(KubeIsland):
    """The web UI: Deployment + Service, its token and the stores' settings as a Secret."""

    name: ClassVar[str] = "ui"
    twin_class: ClassVar[type[SwarmServiceIsland]] = SwarmUiIsland

    @cached_property
    def token(self) -> str:
        return SwarmUiIsland(self.config).token()

    def _store_config(self) -> dict[str, Any]:
        """The store settings a pod gets (native islands by Service name; embedded stores refused)."""
        from atoll.backends import open_metadata_store, task_store_config
        from atoll.containers.kubernetes.stores import cluster_store_config

        metadata = open_metadata_store(self.config)
        try:
            settings = task_store_config(self.config, metadata, in_network=True)
            return cluster_store_config(self.config, settings, lambda: settings)
        finally:
            metadata.close()

    def manifests(self, image: str) -> list[Manifest]:
        return manifests.ui_manifests(self.config, image, self.token, self._store_config())

    def _running(self, what: str, started: float | None = None) -> IslandStatus:
        status = super()._running(what, started)
        if status.url:  # as on the other runtimes: the URL to open, token included (the UI sets a cookie)
            status.url = f"{status.url}/?token={self.token}"
        return status


def publish_router_secrets(config: Config, keys: bytes | None = None, kube: KubeClient | None = None) -> bool:
    """Hand the rewritten API keys file or replica secrets file to the router island: update its keys Secret.

    Args:
        keys: the API keys file's new content (None: read it from disk).

    Returns:
        False when the cluster has no such Secret (no router island: its setup hands both over),
        or when the keys file is missing (the router's setup writes it).

    Raises:
        BackendUnavailableError / BackendError: the cluster did not take it.
    """
    from atoll.containers.kubernetes.client import KubeClient

    if keys is None and config.router.auth:
        try:
            keys = config.router_keys_file.read_bytes()
        except FileNotFoundError:
            return False
    client = kube or KubeClient(config)
    try:
        secret = manifests.router_keys_secret(config, keys or b"", replica_secrets_document(config))
        if client.read("Secret", secret["metadata"]["name"]) is None:
            return False
        client.apply(secret)
        return True
    finally:
        if kube is None:
            client.close()


__all__ = [
    "KUBE_TYPES",
    "KubeDbIsland",
    "KubeFilesIsland",
    "KubeIsland",
    "KubeUiIsland",
    "publish_router_secrets",
]
