"""The Docker engine as the swarm manager sees it: connection, error translation, names.

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
    atoll/<proj>:<tag>             image of a build ([<target_registry>/] prefix)
"""

from __future__ import annotations

import contextlib
import os
import time
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


def wait_until(check: Callable[[], T | None], timeout: float, every: float = 0.5) -> T | None:
    """Poll ``check`` until it returns something truthy or ``timeout`` s pass (then None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


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
        with engine_errors(config, f"waiting for the containers of {service}"):
            return not client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={service}"})

    wait_until(gone, wait)


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
    "get_or_none",
    "labels",
    "memory_bytes",
    "nano_cpus",
    "remove_service",
    "split_lines",
    "translate",
    "wait_until",
]
