"""The Docker engine: connection, error translation, names, shared Docker objects.

The one Docker layer of Atoll: the swarm manager (``atoll.containers.swarm``)
and the native islands (``atoll.islands``) both connect, translate errors,
and create networks, volumes and secrets through it.

Every docker SDK call of the swarm runtime goes through :func:`engine_errors`,
so no ``docker.errors`` or ``requests`` exception reaches a user: a daemon
that does not answer becomes :class:`BackendUnavailableError` ("Docker daemon
not reachable at ...: ..."), a missing object :class:`NotFoundError`, a name
taken :class:`AlreadyExistsError`, anything else :class:`BackendError`.

Names (``container_manager.namespace`` = ``ns``, ``atoll`` by default)::

    <ns>                           attachable overlay network of every task
    <ns>-<proj>-<depl>             service of a deployment (the router resolves
                                   tasks.<ns>-<proj>-<depl>)
    <ns>-train-<proj>-<name>       container of a training
    <ns>-ide-<proj>                container of a project's IDE
    <ns>-router                    service of the router island
    <ns>-isle-<island>             service of a native island (db, files, registry)
    atoll/<proj>:<tag>             image of a build ([<target_registry>/] prefix)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from atoll.config import Config
from atoll.errors import (
    AlreadyExistsError,
    AtollError,
    BackendError,
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    UsageError,
)
from atoll.task.deadline import wait_until

if TYPE_CHECKING:
    from docker import DockerClient

T = TypeVar("T")
NS = 1_000_000_000  # the Engine API counts durations in nanoseconds
SERVICE_PORT = 8080  # where every replica serves (toolkit default)
# The health check of every swarm service (replicas, router): stdlib only, in the task's python.
HEALTH_PROBE = (
    "import sys, urllib.request as u; "
    f"sys.exit(0 if u.urlopen('http://127.0.0.1:{SERVICE_PORT}/health', timeout=2).status == 200 else 1)"
)
LABEL_KIND = "io.atoll.kind"
LABEL_PROJECT = "io.atoll.project"
LABEL_NAME = "io.atoll.name"
LABEL_NAMESPACE = "io.atoll.namespace"
LABEL_GENERATION = "io.atoll.generation"
LABEL_SOURCE_HASH = "io.atoll.source-hash"
_MAX_DNS_LABEL = 63


def daemon_address(config: Config) -> str:
    """Where the engine is expected: ``docker.daemon_address``, ``$DOCKER_HOST`` or the socket."""
    return config.docker.daemon_address or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(config: Config) -> DockerClient:
    """A client of the configured engine, checked with a ping.

    Raises:
        BackendError: the docker SDK is not installed (hint: ``atoll[docker]``).
        BackendUnavailableError: the daemon does not answer.
    """
    try:
        from docker import DockerClient
    except ImportError as exc:  # pragma: no cover - packaging
        raise BackendError("the swarm runtime needs the docker SDK: pip install 'atoll[docker]'") from exc
    address = daemon_address(config)
    timeout = max(int(config.container_manager.api_timeout), 10)
    with engine_errors(config, "connecting"):
        client = DockerClient(base_url=address, timeout=timeout)
        client.ping()
    return client


@contextlib.contextmanager
def engine_errors(config: Config | None, doing: str) -> Iterator[None]:
    """Translate docker SDK / transport errors raised inside the block into Atoll errors."""
    try:
        yield
    except AtollError:
        raise
    except Exception as exc:
        translated = translate(exc, config, doing)
        if translated is None:
            raise
        raise translated from exc


def translate(exc: BaseException, config: Config | None, doing: str) -> AtollError | None:
    """The Atoll error for a docker SDK or transport error (None: not one of those)."""
    from requests import exceptions as http

    from docker import errors

    where = daemon_address(config) if config is not None else "the configured address"
    if isinstance(exc, (http.ConnectionError, ConnectionError, FileNotFoundError)) or (
        isinstance(exc, errors.DockerException) and "Error while fetching server API version" in str(exc)
    ):
        return BackendUnavailableError(f"Docker daemon not reachable at {where}: {_short(exc)}")
    if isinstance(exc, http.Timeout):
        return BackendUnavailableError(f"Docker daemon at {where} did not answer in time while {doing}")
    if isinstance(exc, (errors.NotFound, errors.ImageNotFound)):
        return NotFoundError(f"{doing}: {_explain(exc)}")
    if isinstance(exc, errors.APIError):
        status = exc.status_code or 0
        if status == 409:
            text = _explain(exc)
            if "already exists" in text or ("in use" in text and "name" in text):
                return AlreadyExistsError(f"{doing}: {text}")
            return ConflictError(f"{doing}: {text}")
        if status == 400:
            return UsageError(f"{doing}: {_explain(exc)}")
        if status == 503 and "swarm" in str(exc).lower():
            return BackendUnavailableError(
                f"{doing}: this Docker engine is not a swarm manager (run `docker swarm init`): {_explain(exc)}"
            )
        return BackendError(f"{doing}: Docker engine error: {_explain(exc)}")
    if isinstance(exc, errors.DockerException):
        return BackendError(f"{doing}: {_short(exc)}")
    if isinstance(exc, http.RequestException):
        return BackendUnavailableError(f"Docker daemon at {where} failed while {doing}: {_short(exc)}")
    return None


def _explain(exc: Any) -> str:
    return str(getattr(exc, "explanation", None) or exc).strip()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def dns_name(*parts: str) -> str:
    """``a-b-c`` checked against the 63-character limit of a DNS label (service names)."""
    name = "-".join(parts)
    if len(name) > _MAX_DNS_LABEL:
        raise UsageError(
            f"the Docker name {name!r} is longer than {_MAX_DNS_LABEL} characters; use shorter names"
        )
    return name


def labels(config: Config, kind: str, project: str, name: str, **extra: str) -> dict[str, str]:
    """The labels tying a Docker object to its Atoll record."""
    out = {
        LABEL_KIND: kind,
        LABEL_PROJECT: project,
        LABEL_NAME: name,
        LABEL_NAMESPACE: config.container_manager.namespace,
    }
    out.update(extra)
    return out


def split_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Text lines out of a byte stream cut anywhere (docker log streams)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace")


def ensure_network(client: DockerClient, config: Config) -> str:
    """The attachable overlay network every task joins (created on first use)."""
    from docker.errors import APIError, NotFound

    name = config.container_manager.namespace
    with engine_errors(config, f"creating the overlay network {name}"):
        try:
            client.networks.get(name)
            return name
        except NotFound:
            pass
        try:
            client.networks.create(
                name, driver="overlay", attachable=True, labels={LABEL_NAMESPACE: name}, check_duplicate=True
            )
        except APIError as exc:
            if exc.status_code != 409:
                raise
    return name


def get_or_none(config: Config, doing: str, get: Callable[[], T]) -> T | None:
    """``get()`` with engine errors translated; a missing object (404) is None."""
    from docker.errors import NotFound

    with engine_errors(config, doing):
        try:
            return get()
        except NotFound:
            return None


def remove_service(client: DockerClient, config: Config, service: str, wait: float = 60) -> None:
    """Remove a swarm service (missing is not an error) and wait until its containers are gone."""
    from docker.errors import NotFound

    with engine_errors(config, f"removing service {service}"):
        try:
            client.services.get(service).remove()
        except NotFound:
            return

    def gone() -> bool:
        # sparse: the list alone, without inspecting each container, which fails with "No such
        # container" for one removed between the list and its inspection (the very thing awaited).
        with engine_errors(config, f"waiting for the containers of {service}"):
            return not client.containers.list(all=True, sparse=True,
                                              filters={"label": f"com.docker.swarm.service.name={service}"})

    wait_until(gone, wait)


def require_swarm_manager(client: DockerClient, config: Config, what: str) -> None:
    """Refuse early, with the fix, when the engine is no swarm manager.

    Raises:
        UsageError: swarm mode is off, or this node is a worker.
    """
    with engine_errors(config, "reading the engine's swarm state"):
        swarm = client.info().get("Swarm", {})
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise UsageError(
            f"{what} runs as a swarm service, but this Docker engine is no swarm manager "
            "(run: docker swarm init --advertise-addr 127.0.0.1)"
        )


def service_healthcheck(config: Config) -> Any:
    """The ``container_manager.healthcheck`` timings around :data:`HEALTH_PROBE` (replicas, router)."""
    from docker.types import Healthcheck

    hc = config.container_manager.healthcheck
    return Healthcheck(test=["CMD", "python", "-c", HEALTH_PROBE], interval=int(hc.interval * NS),
                       timeout=int(hc.timeout * NS), retries=hc.retries, start_period=int(hc.start_period * NS))


def remove_secret(client: DockerClient, config: Config, name: str) -> None:
    """Remove the secret named exactly ``name`` (missing, or still referenced, is fine)."""
    from docker.errors import APIError, NotFound

    with engine_errors(config, f"removing secret {name}"):
        for secret in client.secrets.list(filters={"name": name}):
            if secret.name != name:  # the filter matches prefixes
                continue
            try:
                secret.remove()
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409:  # in use: goes with its service
                    raise


def ensure_volume(client: DockerClient, config: Config, name: str, volume_labels: dict[str, str]) -> None:
    """Create the named volume unless it exists (its data outlives the services using it)."""
    from docker.errors import NotFound

    with engine_errors(config, f"creating volume {name}"):
        try:
            client.volumes.get(name)
        except NotFound:
            client.volumes.create(name, labels=volume_labels)


def service_log_tail(client: DockerClient, service: str, lines: int = 10) -> str:
    """The last lines of a service's log on one line, for an error message ("" when unreadable)."""
    try:
        raw = client.api.service_logs(service, stdout=True, stderr=True, tail=lines)
        text = b"".join(raw).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - the log only decorates the real error
        return ""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def memory_bytes(mb: float | None) -> int | None:
    return None if mb is None else int(mb * 1024 * 1024)


def nano_cpus(cores: float | None) -> int | None:
    return None if cores is None else int(cores * NS)


__all__ = [
    "HEALTH_PROBE",
    "LABEL_GENERATION",
    "LABEL_KIND",
    "LABEL_NAME",
    "LABEL_NAMESPACE",
    "LABEL_PROJECT",
    "LABEL_SOURCE_HASH",
    "NS",
    "SERVICE_PORT",
    "connect",
    "daemon_address",
    "dns_name",
    "engine_errors",
    "ensure_network",
    "ensure_volume",
    "get_or_none",
    "labels",
    "memory_bytes",
    "nano_cpus",
    "remove_secret",
    "remove_service",
    "require_swarm_manager",
    "service_healthcheck",
    "service_log_tail",
    "split_lines",
    "translate",
    "wait_until",
]
