"""The router island on swarm.

On ``swarm`` it is the service ``<ns>-router`` on the overlay network, of
``router.replicas`` tasks: it runs ``python -m atoll.router --discovery dns``
from the base image (by id, updated when the base image changed: a new Atoll)
and finds the replicas of deployment D of project P as ``tasks.<ns>-P-D``
(port 8080), so it needs no state from the host. Its port 8080 is published
on ``router.port`` through the ingress mesh (in host mode with one task).
With ``router.tls_cert``/``tls_key`` the pair reaches the service as two
Docker secrets (``/run/secrets/router-tls.crt|key``), never an environment
value or an image layer; the API keys as :mod:`atoll.islands.router_keys` says.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from atoll.config import Config
from atoll.containers.base import LogSink, http_ok
from atoll.containers.spec import TASK_USER, task_user_group
from atoll.containers.swarm.engine import (
    HEALTH_PROBE,
    LABEL_NAMESPACE,
    NS,
    SERVICE_PORT,
    engine_errors,
    remove_secret,
    service_healthcheck,
)
from atoll.containers.swarm.images import base_image_current, ensure_base_image, image_id
from atoll.errors import AtollError, BackendUnavailableError, ConfigError, NotFoundError
from atoll.islands.base import IslandStatus
from atoll.islands.router_keys import (
    KEYS_MOUNT,
    TLS_SECRETS,
    auth_options,
    content_name,
    ingress_check,
    keys_delivery,
    keys_documents,
    keys_paths,
    router_lock,
    tls_options,
)
from atoll.islands.swarm import LABEL_ISLAND, SwarmServiceIsland
from atoll.task.deadline import wait_until
from atoll.task.meta import share_private_dir, share_private_file

if TYPE_CHECKING:
    from docker import DockerClient

log = logging.getLogger(__name__)

#: Seconds the swarm watches updated router tasks before it calls an update completed.
UPDATE_MONITOR = 2.0
_GIVE_UP_FAILURES = 3


class SwarmRouterIsland(SwarmServiceIsland):
    """The router as the swarm service ``<ns>-router`` of ``router.replicas`` tasks, finding replicas by DNS.

    With several tasks the port is published through the swarm's ingress mesh (two tasks
    on one node cannot hold one host port): a SIGKILLed task leaves the others serving
    while the swarm replaces it, and a changed router (image, command, TLS pair, keys)
    is updated in place start-first, every new task healthy before an old one stops.
    With ``router.replicas: 1`` the port is published in host mode as before and an
    update stops the old task first (a gap of a few seconds). How the keys reach it:
    :mod:`atoll.islands.router_keys`.
    """

    name: ClassVar[str] = "router"
    container_port: ClassVar[int] = SERVICE_PORT
    data_path: ClassVar[str | None] = None  # stateless
    stop_grace: ClassVar[float] = 5.0
    #: Every request fails while the router is down: restart it at once, as the local supervisor does (0.1 s).
    restart_delay: ClassVar[float] = 0.1
    section: ClassVar[str] = "router"
    port_setting: ClassVar[str] = "port"

    def __init__(self, config: Config, client: DockerClient | None = None) -> None:
        super().__init__(config, client)
        self._ingress_missing: tuple[str | None] | None = None

    @property
    def service_name(self) -> str:
        return f"{self.namespace}-router"

    @property
    def url(self) -> str:
        return self.config.router.url

    def probe(self) -> bool:
        return http_ok(f"{self.url}/health")

    def command(self) -> list[str]:
        keys, replica_secrets = keys_paths(self.config)
        return [
            "python", "-m", "atoll.router", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
            "--discovery", "dns", "--dns-pattern", f"tasks.{self.namespace}-{{project}}-{{deployment}}",
            "--dns-port", str(SERVICE_PORT), *auth_options(self.config.router.auth, keys, replica_secrets),
            *tls_options(self.config.router, f"/run/secrets/{TLS_SECRETS[0]}", f"/run/secrets/{TLS_SECRETS[1]}"),
        ]

    def secrets(self) -> dict[str, bytes]:
        """The TLS pair, when configured (read here, handed to the engine as Docker secrets)."""
        router = self.config.router
        if not router.tls:
            return {}
        try:
            return {TLS_SECRETS[0]: Path(str(router.tls_cert)).read_bytes(),
                    TLS_SECRETS[1]: Path(str(router.tls_key)).read_bytes()}
        except OSError as exc:
            raise ConfigError(f"router TLS: cannot read {exc.filename}: {exc.strerror}") from None

    def secrets_names(self) -> tuple[str, ...]:
        return TLS_SECRETS

    def _wanted_secrets(self) -> dict[str, tuple[str, bytes]]:
        """File name under /run/secrets -> (the secret's name, after its content; the content)."""
        stems = {TLS_SECRETS[0]: "tls-crt", TLS_SECRETS[1]: "tls-key"}
        found = {file: (stems[file], content) for file, content in self.secrets().items()}
        found.update(keys_documents(self.config))
        return {file: (content_name(f"{self.service_name}-{stem}", content), content)
                for file, (stem, content) in found.items()}

    def _wanted_secret_names(self) -> set[str]:
        return {name for name, _ in self._wanted_secrets().values()}

    def secret_refs(self, labels: dict[str, str]) -> list[Any]:
        """Secrets named after their content: created when missing, never replaced under a running task."""
        from docker.types import SecretReference

        refs = []
        uid, gid = (str(n) for n in self.run_as())
        for file_name, (name, content) in self._wanted_secrets().items():
            secret = next((s for s in self._router_secrets() if s.name == name), None)
            if secret is None:
                with engine_errors(self.config, f"creating secret {name}"):
                    secret = self.client.secrets.create(name=name, data=content, labels=labels)
            refs.append(SecretReference(secret.id, name, filename=file_name, uid=uid, gid=gid, mode=0o400))
        return refs

    def _router_secrets(self) -> list[Any]:
        with engine_errors(self.config, f"listing the secrets of {self.service_name}"):
            return list(self.client.secrets.list(filters={"label": [
                f"{LABEL_ISLAND}={self.name}", f"{LABEL_NAMESPACE}={self.namespace}"]}))

    def prune_secrets(self) -> list[str]:
        """Remove this router's secrets its service no longer refers to (all of them once it is gone)."""
        service = self._service()
        used = set(_secret_names(service.attrs["Spec"]) if service is not None else ())
        removed = [s.name for s in self._router_secrets() if s.name not in used]
        for name in removed:
            remove_secret(self.client, self.config, name)
        return removed

    def bind_mounts(self) -> list[tuple[str, str]]:
        if keys_delivery(self.config) == "secrets":
            return []  # fetch staging: the files travel as Docker secrets (any node)
        # The keys directory, read-only: `atoll key new/rm` rewrite the file in it and the router
        # re-reads it. A bind mount reaches the node Atoll runs on only (single-node swarm).
        keys_dir = self.config.router_keys_file.parent
        keys_dir.mkdir(parents=True, exist_ok=True)
        group = task_user_group()
        share_private_dir(keys_dir, group)
        if group is not None:  # files an older Atoll wrote 0600: the router reads them as that group
            for path in (self.config.router_keys_file, self.config.router_replica_secrets_file):
                if path.exists():
                    share_private_file(path, group)
        return [(KEYS_MOUNT, str(keys_dir))]

    def run_as(self) -> tuple[int, int]:
        """Never root: the user Atoll runs as (the owner of the 0700 keys directory the router
        reads), or ``TASK_USER`` when Atoll runs as root (the directory is then 0750 for its group)."""
        return TASK_USER if task_user_group() is not None else (os.geteuid(), os.getegid())

    # Replicated, updated in place.

    def replicas(self) -> int:
        """``router.replicas``; one when the engine has no ingress mesh (:meth:`ingress_missing`)."""
        return 1 if self.ingress_missing() else self.config.router.replicas

    @property
    def _publish_mode(self) -> str:
        return "ingress" if self.replicas() > 1 else "host"

    def ingress_missing(self) -> str | None:
        """Why the swarm's ingress mesh cannot publish several router tasks here (None: it can).

        The mesh balances with the kernel's IPVS; without it (``/proc/net/ip_vs`` absent in the
        engine's host network namespace, e.g. a kernel built without ``ip_vs``) a port published
        ``mode=ingress`` refuses every connection. Checked once per swarm with a one-off
        container of the router's image on the host network, remembered in
        ``$ATOLL_HOME/run/swarm-ingress.json``; only asked when ``router.replicas`` > 1.
        """
        if self.config.router.replicas <= 1:
            return None
        if self._ingress_missing is None:
            self._ingress_missing = (ingress_check(self.client, self.config, self.config.home / "run",
                                                   lambda: self.ensure_image(lambda _line: None)[0]),)
        return self._ingress_missing[0]

    def endpoint_spec(self) -> Any:
        from docker.types import EndpointSpec

        if self._publish_mode == "host":
            return super().endpoint_spec()
        return EndpointSpec(mode="vip", ports={self.port: (self.container_port, "tcp", "ingress")})

    def update_config(self) -> Any:
        from docker.types import UpdateConfig

        # start-first, all tasks at once: each old task stops once its successor is healthy.
        # One host-published task cannot share its port with its successor: stop-first then.
        order = "start-first" if self._publish_mode == "ingress" else "stop-first"
        return UpdateConfig(parallelism=0, delay=0, failure_action="rollback", monitor=int(UPDATE_MONITOR * NS),
                            max_failure_ratio=0, order=order)

    def service_spec(self, image: str) -> dict[str, Any]:
        from docker.types import RollbackConfig

        spec = super().service_spec(image)
        update = spec["update_config"]
        spec["rollback_config"] = RollbackConfig(parallelism=0, delay=0, failure_action="pause",
                                                 monitor=update["Monitor"], order=update["Order"])
        return spec

    def _runs(self, service: Any, image: str) -> bool:
        """The base's test, plus the number of tasks, the publish mode, the secrets and the keys mount."""
        spec = service.attrs.get("Spec") or {}
        ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
        mounts = {m.get("Target") for m in spec["TaskTemplate"]["ContainerSpec"].get("Mounts") or []}
        wanted_mounts = {target for target, _ in self.bind_mounts()}
        return (super()._runs(service, image)
                and ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") == self.replicas()
                and [p.get("PublishMode") for p in ports] == [self._publish_mode]
                and set(_secret_names(spec)) == self._wanted_secret_names()
                and mounts == wanted_mounts)

    def roll(self, service: Any, image: str) -> bool:
        """Update the service in place (start-first), unless its port is published another way."""
        ports = (service.attrs["Spec"].get("EndpointSpec") or {}).get("Ports") or []
        if [(p.get("PublishMode"), p.get("PublishedPort")) for p in ports] != [(self._publish_mode, self.port)]:
            return False  # host <-> ingress, another port: re-created (one gap)
        same = self._runs(service, image)  # not healthy as it is: replace its tasks all the same
        spec = self.service_spec(image)
        with engine_errors(self.config, f"updating service {self.service_name}"):
            service.update(**spec, **({"force_update": True} if same else {}))
        return True

    def refresh_keys(self) -> bool:
        """Roll the service onto the current keys and replica secrets files (when they changed).

        Returns:
            True when the service was updated (and is healthy on the new secrets).

        Raises:
            BackendUnavailableError: the update did not complete in time (rolled back, or stuck).
        """
        with router_lock(self.config):
            service = self._service()
            if service is None:
                return False
            spec = service.attrs["Spec"]
            if set(_secret_names(spec)) == self._wanted_secret_names():
                return False
            if not self.roll(service, str(spec["TaskTemplate"]["ContainerSpec"]["Image"])):
                return False  # `isle router setup` re-creates it
            if not self._wait_healthy(self._timeout):
                raise BackendUnavailableError(f"the router's update did not complete within {self._timeout:g}s "
                                              f"({self._update_state() or 'no update state'}): {self._why()}")
            return True

    def setup(self) -> IslandStatus:
        with router_lock(self.config):
            status = super().setup()
        tasks = self._task_counts()
        status.message += f" ({tasks[0]}/{tasks[1]} router tasks{self._one_task_why(tasks[1])})"
        if self.ingress_missing():
            log.warning("router.replicas: %d, but the router runs 1 task: %s", self.config.router.replicas,
                        self.ingress_missing())
        return status

    def _one_task_why(self, wanted: int | None = None) -> str:
        """Why ``wanted`` (default :meth:`replicas`) is fewer than ``router.replicas`` ("" when it is not)."""
        if (wanted if wanted is not None else self.replicas()) >= self.config.router.replicas:
            return ""
        missing = ingress_check(self.client, self.config, self.config.home / "run", None) or "the ingress mesh"
        return f"; router.replicas: {self.config.router.replicas} needs {missing}"

    def stop(self) -> IslandStatus:
        with router_lock(self.config):
            status = super().stop()
            self.prune_secrets()
        return status

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _update_state(self) -> str:
        service = self._service()
        return str(((service.attrs if service is not None else {}).get("UpdateStatus") or {}).get("State") or "")

    def _task_counts(self) -> tuple[int, int]:
        """(tasks running — healthy: the swarm calls a task running once its health check passed,
        tasks wanted by the service as it runs)."""
        service = self._service()
        spec = (service.attrs if service is not None else {}).get("Spec") or {}
        wanted = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        live = [t for t in self._tasks() if t.get("DesiredState") == "running"]
        running = sum(1 for t in live if (t.get("Status") or {}).get("State") == "running")
        return running, int(wanted) if wanted is not None else self.replicas()

    def status(self) -> IslandStatus:
        """Running with how many of its tasks: ``2/2 router tasks``; serving but degraded with ``1/2``."""
        if self._service() is None:
            return self._status(False, "stopped", "the router is not running")
        healthy, wanted = self._task_counts()
        tasks = f"{healthy}/{wanted} router tasks"
        if healthy == 0:
            return self._status(False, "down", f"the router is down ({tasks}, last: {self._health()}): {self._why()}")
        if not self.probe():
            return self._status(False, "unhealthy", f"the router runs ({tasks}) but does not answer {self.url}/health")
        if healthy < wanted:
            return self._status(True, "degraded", f"the router serves at {self.url} with {tasks}: "
                                f"{wanted - healthy} down, the swarm is replacing it")
        return self._status(True, "healthy", f"the router is healthy at {self.url} ({tasks}{self._one_task_why(wanted)})")

    def _wait_healthy(self, timeout: float) -> bool:
        """Until the last update completed, every task is healthy and the router answers; then the
        secrets no task uses any more are removed.

        Raises:
            BackendUnavailableError: the update was rolled back or paused; tasks keep failing.
        """

        def done() -> bool:
            state = self._update_state()
            if state in ("paused", "rollback_started", "rollback_paused", "rollback_completed"):
                raise BackendUnavailableError(f"the router's update failed ({state}): {self._why()}")
            service = self._service()
            since = str((service.attrs if service is not None else {}).get("UpdatedAt") or "")
            failed = sum(1 for t in self._tasks() if str(t.get("CreatedAt") or "") >= since
                         and (t.get("Status") or {}).get("State") in ("failed", "rejected"))
            if failed >= _GIVE_UP_FAILURES:  # since the last change (a task killed before does not count)
                raise BackendUnavailableError(f"the router keeps failing: {self._why()}")
            healthy, wanted = self._task_counts()
            return state in ("", "completed") and healthy >= wanted and self.probe()

        if not wait_until(done, timeout, every=0.25):
            return False
        self.prune_secrets()
        return True

    def healthcheck(self) -> Any:
        check = service_healthcheck(self.config)
        if self.config.router.tls:  # the same probe over TLS (not verified: liveness of this very task)
            check["Test"] = ["CMD", "python", "-c", HEALTH_PROBE.replace("http://", "https://").replace(
                "timeout=2)", "timeout=2, context=__import__('ssl')._create_unverified_context())")]
        return check

    def ensure_image(self, log: LogSink) -> tuple[str, float | None]:
        """The base image's id (built first when missing or stale: ``atoll image build-base``)."""
        started = time.monotonic()
        built = not base_image_current(self.client, self.config)
        ref = ensure_base_image(self.client, self.config, log)
        found = image_id(self.client, self.config, ref)
        if found is None:
            raise NotFoundError(f"the base image {ref} vanished right after it was built")
        return found, (time.monotonic() - started if built else None)


def _secret_names(spec: dict[str, Any]) -> list[str]:
    """The names of the secrets a service spec refers to."""
    return [s["SecretName"] for s in spec["TaskTemplate"]["ContainerSpec"].get("Secrets") or []]


def refresh_swarm_router(config: Config) -> bool:
    """After a writer changed the keys or replica secrets file: roll the swarm router onto them.

    Only on swarm under fetch staging (:mod:`atoll.islands.router_keys`), when the router
    service exists (its setup hands the files over otherwise). Waits, bounded by
    ``islands.setup_timeout``, until the update completed, and removes the secrets no
    longer used; a failure is a warning (``atoll isle router setup`` hands them over again).

    Returns:
        True when the service was updated.
    """
    if config.container_manager.type != "swarm" or keys_delivery(config) != "secrets":
        return False
    island = SwarmRouterIsland(config)
    try:
        return island.refresh_keys()
    except AtollError as exc:
        log.warning("the router service did not take the new keys (%s); `atoll isle router setup` "
                    "hands them over again", exc)
        return False
    finally:
        island.close_client()


__all__ = ["SwarmRouterIsland", "refresh_swarm_router"]
