"""Native islands: services Atoll runs for the user as Docker Swarm services.

Each island is one replicated service (one replica) named
``<namespace>-isle-<name>`` (``atoll-isle-db`` with the default namespace) on
the attachable overlay network ``<namespace>`` (where tasks reach it by
service name), with its data on the named volume
``<namespace>-isle-<name>-data``, which ``stop`` keeps. Its port is
published ``mode=host`` (the ingress mesh is not available everywhere) on the
host's loopback. Its image, ``atoll/isle-<name>:<version>-<recipe hash>``, is
built from ``resources/docker/<name>.Dockerfile`` on top of
``docker.python_image`` the first time it is needed, and reused afterwards.

Credentials (the db password, the files key pair) are generated on the first
setup and kept as treasure chests in the *embedded* store in ``ATOLL_HOME``
(``sqlite:///<home>/atoll.db``), their secret encrypted with
:mod:`atoll.secrets`: that store exists before any island, so the db island can
hold the credentials needed to open the db island. They reach the container
as Docker secrets only (never env, command line or image).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from atoll import __version__
from atoll.config import Config
from atoll.errors import AtollError, BackendError, BackendUnavailableError, UsageError
from atoll.islands._docker import docker_client, docker_errors

if TYPE_CHECKING:
    from docker import DockerClient

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "docker"
LABEL_ISLAND = "io.atoll.island"
LABEL_NAMESPACE = "io.atoll.namespace"
_POLL = 0.5


@dataclass
class IslandState:
    """What ``atoll isle <name> setup|status|stop`` reports."""

    name: str
    running: bool
    health: str  # healthy | starting | unhealthy | stopped
    url: str | None
    service: str
    volume: str
    message: str = ""
    seconds: float | None = None  # how long setup took (image build included)
    build_seconds: float | None = None  # the part spent building the image, when it was built


class Island(Protocol):
    """The three verbs every island answers."""

    name: str

    def setup(self) -> IslandState: ...

    def status(self) -> IslandState: ...

    def stop(self) -> IslandState: ...


class SwarmServiceIsland:
    """An island run as a one-replica swarm service. Subclasses fill the blanks.

    Args:
        config: the effective config.
        client: a Docker client (opened from the config on first use when omitted).
    """

    name: ClassVar[str] = "abstract"
    container_port: ClassVar[int] = 0
    data_path: ClassVar[str] = "/data"  # where the data volume is mounted
    recipe: ClassVar[tuple[str, ...]] = ()  # files of resources/docker/ the image is built from

    def __init__(self, config: Config, client: DockerClient | None = None) -> None:
        self.config = config
        self._client = client

    # What subclasses define.

    def check_native(self) -> None:
        """Refuse when the config points this part of Atoll at a foreign service.

        Raises:
            UsageError: the island would not be used (the message says what to change).
        """

    @property
    def port(self) -> int:
        """The host port the island is published on."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Where clients on this host reach it (no credentials)."""
        return f"{self.config.islands.host}:{self.port}"

    def secrets(self) -> dict[str, bytes]:
        """Docker secrets the service needs: file name under /run/secrets -> content."""
        return {}

    def probe(self) -> bool:
        """True when the island answers from this host (with its credentials)."""
        raise NotImplementedError

    # Names.

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    @property
    def service_name(self) -> str:
        return f"{self.namespace}-isle-{self.name}"

    @property
    def volume_name(self) -> str:
        return f"{self.service_name}-data"

    @property
    def network_name(self) -> str:
        return self.namespace

    @property
    def network_address(self) -> str:
        """``host:port`` where tasks on the overlay network reach the island."""
        return f"{self.service_name}:{self.container_port}"

    @property
    def image(self) -> str:
        """Image tag: Atoll's version plus a hash of the recipe and base, so edits rebuild."""
        digest = hashlib.sha256(self.config.docker.python_image.encode())
        for file_name in self.recipe:
            digest.update(file_name.encode() + b"\0" + (RESOURCES / file_name).read_bytes())
        return f"atoll/isle-{self.name}:{__version__}-{digest.hexdigest()[:10]}"

    def secret_name(self, file_name: str) -> str:
        return f"{self.service_name}-{file_name}"

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = docker_client(self.config)
        return self._client

    # The verbs.

    def setup(self) -> IslandState:
        """Start the island unless it runs; wait (bounded) until it is healthy.

        Raises:
            UsageError: the island is configured as foreign, or the engine is no swarm manager.
            BackendError: the image did not build.
            BackendUnavailableError: it did not become healthy (with its log tail).
        """
        self.check_native()
        started = time.monotonic()
        with docker_errors(f"set up the {self.name} island"):
            self._check_swarm()
            if self._service() is not None:
                state = self._wait_healthy(started)
                state.message = f"the {self.name} island is already running at {state.url}"
                return state
            build_seconds = self.ensure_image()
            secret_refs = self._create_secrets()
            self._ensure_volume()
            self._ensure_network()
            self._create_service(secret_refs)
            try:
                state = self._wait_healthy(started)
            except AtollError:
                self._remove_service()
                raise
        state.build_seconds = build_seconds
        state.message = f"the {self.name} island is running at {state.url} (data in volume {self.volume_name})"
        return state

    def status(self) -> IslandState:
        """Whether the service runs and how its health check answers."""
        with docker_errors(f"read the {self.name} island's status"):
            if self._service() is None:
                return self._state(False, "stopped", f"the {self.name} island is not running")
            health = self._health()
        running = health in ("healthy", "starting", "unhealthy", "running")
        return self._state(running, health, f"the {self.name} island is {health} at {self.url}")

    def stop(self) -> IslandState:
        """Remove the service and its secrets; keep the data volume."""
        with docker_errors(f"stop the {self.name} island"):
            existed = self._service() is not None
            self._remove_service()
            for file_name in self.secrets_names():
                self._remove_secret(self.secret_name(file_name))
        message = f"the {self.name} island was stopped" if existed else f"the {self.name} island was not running"
        return self._state(False, "stopped", f"{message}; its data stays in volume {self.volume_name}")

    def secrets_names(self) -> tuple[str, ...]:
        """File names of the secrets (without reading any credentials)."""
        return ()

    # Docker plumbing.

    def ensure_image(self) -> float | None:
        """Build the island's image when it is missing; return the build time, or None."""
        from docker.errors import BuildError, ImageNotFound

        tag = self.image
        try:
            self.client.images.get(tag)
            return None
        except ImageNotFound:
            pass
        try:
            self.client.images.get(self.config.docker.python_image)
        except ImageNotFound as exc:
            raise BackendError(
                f"cannot build the {self.name} island: the base image {self.config.docker.python_image} "
                "is missing (pull it, or make it with scripts/offline-python-image)"
            ) from exc
        started = time.monotonic()
        try:
            self.client.images.build(
                path=str(RESOURCES), dockerfile=f"{self.name}.Dockerfile", tag=tag, rm=True, forcerm=True,
                network_mode="host", buildargs={"PYTHON_IMAGE": self.config.docker.python_image},
                labels={LABEL_ISLAND: self.name},
            )
        except BuildError as exc:
            tail = " | ".join(str(line.get("stream", line.get("error", ""))).strip()
                              for line in list(exc.build_log)[-8:] if isinstance(line, dict))
            raise BackendError(f"building the {self.name} island image failed: {exc.msg} ({tail})") from exc
        return time.monotonic() - started

    def _check_swarm(self) -> None:
        swarm = self.client.info().get("Swarm", {})
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise UsageError(
                f"the {self.name} island runs as a swarm service, but this Docker engine is no swarm manager "
                "(run: docker swarm init --advertise-addr 127.0.0.1)"
            )

    def _labels(self) -> dict[str, str]:
        return {LABEL_ISLAND: self.name, LABEL_NAMESPACE: self.namespace}

    def _service(self) -> Any:
        found = self.client.services.list(filters={"name": self.service_name})
        return next((s for s in found if s.name == self.service_name), None)

    def _create_secrets(self) -> list[Any]:
        from docker.types import SecretReference

        refs = []
        for file_name, content in self.secrets().items():
            name = self.secret_name(file_name)
            self._remove_secret(name)  # secrets are immutable: recreate from the chest
            secret = self.client.secrets.create(name=name, data=content, labels=self._labels())
            refs.append(SecretReference(secret.id, name, filename=file_name, mode=0o400))
        return refs

    def _remove_secret(self, name: str) -> None:
        from docker.errors import NotFound

        for secret in self.client.secrets.list(filters={"name": name}):
            if secret.name == name:
                try:
                    secret.remove()
                except NotFound:
                    pass

    def _ensure_volume(self) -> None:
        from docker.errors import NotFound

        try:
            self.client.volumes.get(self.volume_name)
        except NotFound:
            self.client.volumes.create(self.volume_name, labels=self._labels())

    def _ensure_network(self) -> None:
        from docker.errors import APIError

        if any(n.name == self.network_name for n in self.client.networks.list(names=[self.network_name])):
            return
        try:
            self.client.networks.create(self.network_name, driver="overlay", attachable=True,
                                        labels={LABEL_NAMESPACE: self.namespace})
        except APIError:
            # Someone (the swarm manager, a racing setup) created it meanwhile.
            if not any(n.name == self.network_name for n in self.client.networks.list(names=[self.network_name])):
                raise

    def _create_service(self, secret_refs: list[Any]) -> None:
        from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

        self.client.services.create(
            self.image,
            name=self.service_name,
            labels=self._labels(),
            container_labels=self._labels(),
            networks=[self.network_name],
            endpoint_spec=EndpointSpec(mode="dnsrr", ports={self.port: (self.container_port, "tcp", "host")}),
            mode=ServiceMode("replicated", replicas=1),
            mounts=[Mount(self.data_path, self.volume_name, type="volume")],
            secrets=secret_refs,
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            stop_grace_period=20_000_000_000,
            init=True,
        )

    def _remove_service(self) -> None:
        """Remove the service and wait (bounded) until its containers are gone."""
        from docker.errors import NotFound

        service = self._service()
        if service is None:
            return
        try:
            service.remove()
        except NotFound:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = self.client.containers.list(
                all=True, filters={"label": f"com.docker.swarm.service.name={self.service_name}"}
            )
            if not left:
                return
            time.sleep(_POLL)

    def _task(self) -> dict[str, Any] | None:
        service = self._service()
        if service is None:
            return None
        tasks = service.tasks(filters={"desired-state": "running"})
        return max(tasks, key=lambda t: t.get("CreatedAt", ""), default=None)

    def _health(self) -> str:
        """healthy | starting | unhealthy | running (no health check) | the task's state."""
        from docker.errors import NotFound

        task = self._task()
        if task is None:
            return "starting"
        status = task.get("Status", {})
        container_id = status.get("ContainerStatus", {}).get("ContainerID")
        if status.get("State") != "running" or not container_id:
            return str(status.get("State", "starting")) if status.get("State") in ("failed", "rejected") else "starting"
        try:
            container = self.client.containers.get(container_id)
        except NotFound:
            return "starting"
        health = container.attrs.get("State", {}).get("Health", {}).get("Status")
        return str(health or "running")

    def _wait_healthy(self, started: float) -> IslandState:
        timeout = self.config.islands.setup_timeout
        deadline = time.monotonic() + timeout
        health = "starting"
        while time.monotonic() < deadline:
            health = self._health()
            if self._failed_tasks() >= 3:  # restarting in a loop: say why now, not at the deadline
                raise BackendUnavailableError(f"the {self.name} island keeps failing: {self._log_tail()}")
            if health in ("healthy", "running") and self.probe():
                state = self._state(True, "healthy", "")
                state.seconds = round(time.monotonic() - started, 2)
                return state
            time.sleep(_POLL)
        raise BackendUnavailableError(
            f"the {self.name} island did not become healthy within {timeout:g}s (last: {health}): {self._log_tail()}"
        )

    def _failed_tasks(self) -> int:
        service = self._service()
        if service is None:
            return 0
        return sum(1 for t in service.tasks() if t.get("Status", {}).get("State") in ("failed", "rejected"))

    def _log_tail(self, lines: int = 10) -> str:
        service = self._service()
        if service is None:
            return "no service"
        errors = [t["Status"].get("Err") for t in service.tasks() if t.get("Status", {}).get("Err")]
        try:
            text = b"".join(service.logs(stdout=True, stderr=True, tail=lines)).decode(errors="replace")
        except Exception:  # noqa: BLE001 - the logs only decorate the real error
            text = ""
        tail = " | ".join(line.strip() for line in text.splitlines() if line.strip())
        return "; ".join(filter(None, [*errors[:2], tail])) or "no logs"

    def _state(self, running: bool, health: str, message: str) -> IslandState:
        return IslandState(self.name, running, health, self.url if running else None, self.service_name,
                           self.volume_name, message)


__all__ = ["Island", "IslandState", "SwarmServiceIsland"]
