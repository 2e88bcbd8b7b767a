"""Islands run as one-replica swarm services (db, files, registry, and the router on swarm).

Each island is the service ``<namespace>-isle-<name>`` (``atoll-isle-db``
with the default namespace; the router is ``<namespace>-router``) on the
attachable overlay network ``<namespace>``, where tasks reach it by service
name, with its data on the named volume ``<service>-data``, which ``stop``
keeps. Its port is published ``mode=host`` (the ingress mesh is not available
everywhere) on the host's loopback; the router alone may run several tasks
behind the ingress mesh and is updated in place (hooks :meth:`SwarmServiceIsland.replicas`,
``endpoint_spec``, ``update_config``, ``secret_refs``, ``roll``; :mod:`atoll.islands.router_swarm`). A recipe island's image,
``atoll/isle-<name>:<version>-<recipe hash>``, is built from
``resources/docker/<name>.Dockerfile`` on top of ``docker.python_image`` the
first time it is needed (or up front: ``atoll isle <name> build``).

Credentials (the db password, the files key pair) are treasure chests of the
home store (:mod:`atoll.credentials`), generated on the first setup; they
reach the container as Docker secrets only (never env, command line or image).

Every Docker call goes through the one engine layer,
:mod:`atoll.containers.swarm.engine`, shared with the swarm container manager.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from atoll import __version__
from atoll.backends import island_service
from atoll.config import Config
from atoll.containers.base import LogSink
from atoll.containers.swarm.engine import (
    LABEL_KIND,
    LABEL_NAMESPACE,
    NS,
    connect,
    engine_errors,
    ensure_network,
    ensure_volume,
    get_or_none,
    remove_secret,
    remove_service,
    require_swarm_manager,
    service_log_tail,
)
from atoll.containers.swarm.images import ensure_python_image, image_id, run_build
from atoll.containers.swarm.services import service_resources
from atoll.errors import AtollError, BackendUnavailableError
from atoll.islands.base import Island, IslandStatus
from atoll.task.deadline import wait_until

if TYPE_CHECKING:
    from docker import DockerClient

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "docker"
#: uid/gid the recipe islands' images run as (their Dockerfiles' ``USER``), never root.
ISLAND_USER = (999, 999)
LABEL_ISLAND = "io.atoll.island"
LABEL_PROFILE = "io.atoll.resource-profile"  # the name and a hash of the values the service runs with
ALREADY_RUNNING_GRACE = 30.0  # an existing service not healthy by then is re-created (its volume stays)
_POLL = 0.5
_GIVE_UP_FAILURES = 3  # a service restarting in a loop: say why now, not at the deadline


class SwarmServiceIsland(Island):
    """An island run as a one-replica swarm service. Subclasses fill the blanks.

    Args:
        config: the effective config.
        client: a Docker client (opened from the config on first use when omitted).
    """

    container_port: ClassVar[int] = 0
    data_path: ClassVar[str | None] = "/data"  # where the data volume is mounted (None: no volume)
    recipe: ClassVar[tuple[str, ...]] = ()  # files of resources/docker/ the image is built from
    stop_grace: ClassVar[float] = 20.0
    #: (uid, gid) the image runs as (its Dockerfile's USER): secrets and data volume are theirs (None: root).
    user: ClassVar[tuple[int, int] | None] = ISLAND_USER
    takes_profile: ClassVar[bool] = True
    #: Seconds the swarm waits before it restarts a task that exited or was killed.
    restart_delay: ClassVar[float] = 1.0
    #: The field of the config :attr:`section` holding the host port ("": :attr:`port` is overridden).
    port_setting: ClassVar[str] = ""
    #: The one Docker secret the service reads, under /run/secrets ("": none, or :meth:`secrets` overridden).
    secret_file: ClassVar[str] = ""

    def __init__(self, config: Config, client: DockerClient | None = None) -> None:
        super().__init__(config)
        self._client = client

    # What subclasses define.

    def check_native(self) -> None:
        """Refuse when the config points this part of Atoll at a foreign service.

        Raises:
            UsageError: the island would not be used (the message says what to change).
        """

    @property
    def port(self) -> int:
        """The host port the island is published on (its :attr:`section`'s :attr:`port_setting`)."""
        if not self.port_setting:
            raise NotImplementedError
        return int(getattr(getattr(self.config, self.section), self.port_setting))

    @property
    def url(self) -> str:
        """Where clients on this host reach it (no credentials)."""
        return f"{self.host}:{self.port}"

    def secret_content(self) -> bytes:
        """The content of :attr:`secret_file` (its credentials, made on first use)."""
        raise NotImplementedError

    def secrets(self) -> dict[str, bytes]:
        """Docker secrets the service needs: file name under /run/secrets -> content."""
        return {self.secret_file: self.secret_content()} if self.secret_file else {}

    def secrets_names(self) -> tuple[str, ...]:
        """File names of the secrets (without reading any credentials)."""
        return (self.secret_file,) if self.secret_file else ()

    def probe(self) -> bool:
        """True when the island answers from this host (with its credentials)."""
        raise NotImplementedError

    def command(self) -> list[str] | None:
        """The service's command (None: the image's entrypoint)."""
        return None

    def bind_mounts(self) -> list[tuple[str, str]]:
        """Read-only bind mounts ``(container path, host path)`` the service needs (none by default)."""
        return []

    def writable_bind_mounts(self) -> list[tuple[str, str]]:
        """Read-write bind mounts ``(container path, host path)`` (none by default; the ui island's embedded stores)."""
        return []

    def run_as(self) -> tuple[int, int] | None:
        """(uid, gid) the service runs as and its secrets belong to (hook; :attr:`user` here)."""
        return self.user

    def healthcheck(self) -> Any:
        """A ``docker.types.Healthcheck`` (None: the image's own HEALTHCHECK)."""
        return None

    def replicas(self) -> int:
        """Tasks of the service (hook; one here)."""
        return 1

    def endpoint_spec(self) -> Any:
        """How the port is published (hook; ``mode=host`` on :attr:`port`, names resolved by DNS round robin)."""
        from docker.types import EndpointSpec

        return EndpointSpec(mode="dnsrr", ports={self.port: (self.container_port, "tcp", "host")})

    def update_config(self) -> Any:
        """A ``docker.types.UpdateConfig`` for :meth:`roll` (hook; None: the engine's default)."""
        return None

    def secret_refs(self, labels: dict[str, str]) -> list[Any]:
        """The service's ``SecretReference`` s, creating the secrets (hook; fixed names here, re-created
        from :meth:`secrets` since secrets are immutable)."""
        from docker.types import SecretReference

        refs = []
        uid, gid = (str(n) for n in self.run_as() or (0, 0))
        for file_name, content in self.secrets().items():
            name = self.secret_name(file_name)
            remove_secret(self.client, self.config, name)  # secrets are immutable: recreate from the chest
            with engine_errors(self.config, f"creating secret {name}"):
                secret = self.client.secrets.create(name=name, data=content, labels=labels)
            refs.append(SecretReference(secret.id, name, filename=file_name, uid=uid, gid=gid, mode=0o400))
        return refs

    def roll(self, service: Any, image: str) -> bool:
        """Bring a running service to the wanted spec in place (hook; False: not here, re-create it)."""
        return False

    def ensure_image(self, log: LogSink) -> tuple[str, float | None]:
        """The image to run, built from the recipe when missing; and the build time (None: not built).

        Raises:
            NotFoundError / BackendError: ``docker.python_image`` is missing and cannot be pulled.
            ExecutionError: the build failed (with the builder's last lines).
        """
        tag = self.image
        if image_id(self.client, self.config, tag) is not None:
            return tag, None
        python_image = ensure_python_image(self.client, self.config, log)
        started = time.monotonic()
        run_build(self.client, self.config, log, what=f"the {self.name} island image", path=str(RESOURCES),
                  dockerfile=f"{self.name}.Dockerfile", tag=tag, buildargs={"PYTHON_IMAGE": python_image},
                  labels={LABEL_ISLAND: self.name})
        return tag, time.monotonic() - started

    # Names.

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    @property
    def service_name(self) -> str:
        return island_service(self.config, self.name)

    @property
    def volume_name(self) -> str | None:
        return f"{self.service_name}-data" if self.data_path else None

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
            self._client = connect(self.config)
        return self._client

    # The verbs.

    def build(self, log: LogSink) -> IslandStatus:
        """Build the island's image now (``atoll isle <name> build``), so setup finds it ready."""
        started = time.monotonic()
        image, build_seconds = self.ensure_image(log)
        done = f"built in {build_seconds:.1f}s" if build_seconds is not None else "already built"
        status = self._status(False, None, f"the {self.name} island image {image} is ready ({done})")
        status.seconds = round(time.monotonic() - started, 2)
        status.build_seconds = round(build_seconds, 2) if build_seconds is not None else None
        return status

    def setup(self) -> IslandStatus:
        """Start the island unless it runs on the wanted image; wait (bounded) until it is healthy.

        An existing service on another image or port, or not healthy within
        :data:`ALREADY_RUNNING_GRACE` seconds, is re-created; its volume stays.
        """
        self.check_native()
        started = time.monotonic()
        require_swarm_manager(self.client, self.config, f"the {self.name} island")
        image, build_seconds = self.ensure_image(lambda line: None)
        current = self._service()
        if current is not None:
            if self._runs(current, image) and self._wait_healthy(min(ALREADY_RUNNING_GRACE, self._timeout)):
                return self._status(True, "healthy", f"the {self.name} island is already running at {self.url}",
                                    started)
            if not self.roll(current, image):
                remove_service(self.client, self.config, self.service_name)
                self._create(image)
        else:
            self._create(image)
        try:
            if not self._wait_healthy(self._timeout):
                raise BackendUnavailableError(
                    f"the {self.name} island did not become healthy within {self._timeout:g}s "
                    f"(last: {self._health()}): {self._why()}"
                )
        except AtollError:
            remove_service(self.client, self.config, self.service_name)  # nothing half-started stays
            raise
        where = f" (data in volume {self.volume_name})" if self.volume_name else ""
        status = self._status(True, "healthy", f"the {self.name} island is running at {self.url}{where}", started)
        status.build_seconds = round(build_seconds, 2) if build_seconds is not None else None
        return status

    def status(self) -> IslandStatus:
        """Whether the service runs and how its health check answers."""
        if self._service() is None:
            return self._status(False, "stopped", f"the {self.name} island is not running")
        health = self._health()
        running = health in ("healthy", "starting", "unhealthy", "running")
        return self._status(running, health, f"the {self.name} island is {health} at {self.url}")

    def stop(self) -> IslandStatus:
        """Remove the service and its secrets; keep the data volume."""
        existed = self._service() is not None
        remove_service(self.client, self.config, self.service_name)
        for file_name in self.secrets_names():
            remove_secret(self.client, self.config, self.secret_name(file_name))
        message = f"the {self.name} island was stopped" if existed else f"the {self.name} island was not running"
        if self.volume_name:
            message += f"; its data stays in volume {self.volume_name}"
        return self._status(False, "stopped", message)

    # Docker plumbing.

    @property
    def _timeout(self) -> float:
        return self.config.islands.setup_timeout

    def _labels(self) -> dict[str, str]:
        return {LABEL_KIND: "island", LABEL_ISLAND: self.name, LABEL_NAMESPACE: self.namespace}

    def _profile_label(self) -> str:
        """``<name>:<hash of the values>`` of :attr:`profile` ("" without one)."""
        if self.profile is None:
            return ""
        values = self.profile.model_dump_json(exclude_none=True).encode()
        return f"{self.profile_name}:{hashlib.sha256(values).hexdigest()[:12]}"

    def _service(self) -> Any:
        name = self.service_name
        return get_or_none(self.config, f"inspecting service {name}", lambda: self.client.services.get(name))

    def _runs(self, service: Any, image: str) -> bool:
        """True when the service runs ``image`` with its command and is published on the configured port."""
        spec = service.attrs.get("Spec") or {}
        running = str(spec["TaskTemplate"]["ContainerSpec"]["Image"]).split("@", 1)[0]
        published = [p.get("PublishedPort") for p in (spec.get("EndpointSpec") or {}).get("Ports") or []]
        command = spec["TaskTemplate"]["ContainerSpec"].get("Command")
        # Without --resource-profile a running island keeps the profile it has.
        same_profile = self.profile is None or (spec.get("Labels") or {}).get(LABEL_PROFILE) == self._profile_label()
        return running == image and published == [self.port] and command == self.command() and same_profile

    def _create(self, image: str) -> None:
        with engine_errors(self.config, f"creating service {self.service_name}"):
            self.client.services.create(**self.service_spec(image))

    def service_spec(self, image: str) -> dict[str, Any]:
        """The keyword arguments of ``services.create`` (and of an in-place update); creates what it refers to."""
        from docker.types import Mount, RestartPolicy, ServiceMode

        labels = self._labels()
        service_labels = {**labels, LABEL_PROFILE: self._profile_label()} if self.profile is not None else labels
        user = self.run_as()
        refs = self.secret_refs(labels)
        mounts = []
        if self.volume_name and self.data_path:
            existed = get_or_none(self.config, f"inspecting volume {self.volume_name}",
                                  lambda: self.client.volumes.get(self.volume_name)) is not None
            ensure_volume(self.client, self.config, self.volume_name, labels)
            if existed:
                self.own_volume(image)
            mounts.append(Mount(self.data_path, self.volume_name, type="volume"))
        mounts += [Mount(target, source, type="bind", read_only=True) for target, source in self.bind_mounts()]
        mounts += [Mount(target, source, type="bind") for target, source in self.writable_bind_mounts()]
        network = ensure_network(self.client, self.config)
        return {
            "image": image,
            "command": self.command(),
            "name": self.service_name,
            "labels": service_labels,
            "container_labels": labels,
            "networks": [network],
            "endpoint_spec": self.endpoint_spec(),
            "mode": ServiceMode("replicated", replicas=self.replicas()),
            "mounts": mounts,
            "secrets": refs,
            "healthcheck": self.healthcheck(),
            "restart_policy": RestartPolicy(condition="any", delay=int(self.restart_delay * NS)),
            "update_config": self.update_config(),
            "resources": service_resources(self.profile),
            "stop_grace_period": int(self.stop_grace * NS),
            "init": True,
            "user": f"{user[0]}:{user[1]}" if user is not None else None,
        }

    def own_volume(self, image: str) -> None:
        """Hand the data volume to :attr:`user` (a volume of an island that ran as root before).

        A one-off container of ``image``, as root and without network, changes the
        owner of whatever :attr:`user` does not own yet; nothing when all is theirs.
        """
        if self.user is None or not self.volume_name or not self.data_path:
            return
        uid, gid = self.user
        script = 'find "$1" -xdev \\( ! -user "$2" -o ! -group "$3" \\) -exec chown -h "$2:$3" {} +'
        with engine_errors(self.config, f"handing volume {self.volume_name} to uid {uid}"):
            self.client.containers.run(
                image, entrypoint=["/bin/sh", "-c", script, "sh", self.data_path, str(uid), str(gid)],
                user="0:0", network_mode="none", remove=True, labels=self._labels(),
                volumes={self.volume_name: {"bind": self.data_path, "mode": "rw"}},
            )

    def _tasks(self) -> list[dict[str, Any]]:
        service = self._service()
        if service is None:
            return []
        with engine_errors(self.config, f"listing the tasks of {self.service_name}"):
            return list(service.tasks())

    def _health(self) -> str:
        """healthy | starting | unhealthy | running (no health check) | failed | rejected."""
        live = [t for t in self._tasks() if t.get("DesiredState") == "running"]
        task = max(live, key=lambda t: t.get("CreatedAt", ""), default=None)
        if task is None:
            return "starting"
        status = task.get("Status", {})
        container_id = status.get("ContainerStatus", {}).get("ContainerID")
        if status.get("State") != "running" or not container_id:
            return str(status.get("State")) if status.get("State") in ("failed", "rejected") else "starting"
        container = get_or_none(self.config, "inspecting an island container",
                                lambda: self.client.containers.get(container_id))
        if container is None:
            return "starting"
        health = container.attrs.get("State", {}).get("Health", {}).get("Status")
        return str(health or "running")

    def _wait_healthy(self, timeout: float) -> bool:
        """Poll until healthy and answering (True), or ``timeout`` s pass (False).

        Raises:
            BackendUnavailableError: the service keeps failing (with its log tail).
        """

        def healthy() -> bool:
            if self._health() in ("healthy", "running") and self.probe():
                return True
            failed = sum(1 for t in self._tasks() if t.get("Status", {}).get("State") in ("failed", "rejected"))
            if failed >= _GIVE_UP_FAILURES:
                raise BackendUnavailableError(f"the {self.name} island keeps failing: {self._why()}")
            return False

        return bool(wait_until(healthy, timeout, every=_POLL))

    def _why(self) -> str:
        """The tasks' errors and the log tail, for an error message."""
        try:
            errors = [t["Status"].get("Err") for t in self._tasks() if t.get("Status", {}).get("Err")]
        except AtollError:
            errors = []
        tail = service_log_tail(self.client, self.service_name)
        return "; ".join(filter(None, [*errors[:2], tail])) or "no logs"

    def _status(self, running: bool, health: str | None, message: str, started: float | None = None) -> IslandStatus:
        return IslandStatus(
            self.name, running, url=self.url if running else None, message=message, health=health,
            service=self.service_name, volume=self.volume_name,
            seconds=round(time.monotonic() - started, 2) if started is not None else None,
        )


__all__ = ["ALREADY_RUNNING_GRACE", "ISLAND_USER", "LABEL_ISLAND", "RESOURCES", "SwarmServiceIsland"]
