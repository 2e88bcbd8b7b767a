"""Engine facts the Swarm container manager relies on.

Replicas of a deployment are reached through the router, not the ingress mesh
(no IPVS here): the router finds them with ``tasks.<service>`` on an attachable
overlay network with ``endpoint_mode=dnsrr``.  Credentials reach tasks as Docker
secrets under ``/run/secrets/<name>``.  If either stops holding, these fail.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from docker.models.containers import Container

    from docker import DockerClient

pytestmark = pytest.mark.docker

T = TypeVar("T")
SECRET_VALUE = b"atoll-test-secret\n"
# Seconds, as nanoseconds for the Engine API.
_NS = 1_000_000_000
HEALTH_PROBE = "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/', timeout=1)"


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Stack:
    """What the fixture created; every name is unique to this test run."""

    network: str
    secret: str
    service: str
    probe: str
    replicas: list[Container]


def _task_containers(client: DockerClient, service: str) -> list[Container]:
    return client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={service}"})


@pytest.fixture(scope="module")
def stack(swarm_client: DockerClient, python_image: str) -> Iterator[Stack]:
    """Two healthy dnsrr replicas with a secret, on a fresh attachable overlay network."""
    from docker.errors import APIError, NotFound
    from docker.types import EndpointSpec, Healthcheck, SecretReference, ServiceMode

    client = swarm_client
    prefix = f"atoll-test-{uuid.uuid4().hex[:8]}"
    names = Stack(f"{prefix}-net", f"{prefix}-secret", f"{prefix}-svc", f"{prefix}-probe", [])
    created: list[str] = []
    try:
        client.networks.create(names.network, driver="overlay", attachable=True)
        created.append("network")
        secret = client.secrets.create(name=names.secret, data=SECRET_VALUE)
        created.append("secret")
        client.services.create(
            python_image,
            ["python3", "-m", "http.server", "8000"],
            name=names.service,
            networks=[names.network],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            mode=ServiceMode("replicated", replicas=2),
            secrets=[SecretReference(secret.id, names.secret)],
            healthcheck=Healthcheck(
                test=["CMD", "python3", "-c", HEALTH_PROBE],
                interval=1 * _NS,
                timeout=2 * _NS,
                retries=3,
            ),
            init=True,  # python as PID 1 ignores SIGTERM: stop in 0s, not 10s
        )
        created.append("service")

        def healthy() -> list[Container] | None:
            running = _task_containers(client, names.service)
            states = [c.attrs["State"].get("Health", {}).get("Status") for c in running]
            return running if len(running) == 2 and states == ["healthy", "healthy"] else None

        names.replicas = wait_for(healthy, 120, f"2 healthy replicas of {names.service}")
        yield names
    finally:
        _remove(client, names, created, NotFound, APIError)


def _remove(
    client: DockerClient,
    names: Stack,
    created: list[str],
    not_found: type[Exception],
    api_error: type[Exception],
) -> None:
    """Remove what ``stack`` created, by exact name, in dependency order."""
    try:
        client.containers.get(names.probe).remove(force=True)
    except not_found:
        pass
    if "service" in created:
        client.services.get(names.service).remove()
        # The secret and network stay in use until the task containers are gone.
        deadline = time.monotonic() + 60
        while _task_containers(client, names.service) and time.monotonic() < deadline:
            time.sleep(0.5)
    if "secret" in created:
        client.secrets.get(names.secret).remove()
    if "network" in created:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.networks.get(names.network).remove()
                break
            except api_error:
                # "network has active endpoints" lingers briefly after the tasks.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def test_tasks_dns_lists_every_replica(swarm_client: DockerClient, python_image: str, stack: Stack) -> None:
    """A container on the same network resolves tasks.<service> to both replicas."""
    replica_ips = sorted(
        c.attrs["NetworkSettings"]["Networks"][stack.network]["IPAddress"] for c in stack.replicas
    )
    output = swarm_client.containers.run(
        python_image,
        ["getent", "hosts", f"tasks.{stack.service}"],
        name=stack.probe,
        network=stack.network,
    )
    resolved = sorted(line.split()[0] for line in output.decode().splitlines() if line.strip())
    assert len(replica_ips) == 2
    assert resolved == replica_ips


def test_secret_is_mounted_under_run_secrets(stack: Stack) -> None:
    """Each replica reads the secret's exact bytes at /run/secrets/<name>."""
    for replica in stack.replicas:
        exit_code, content = replica.exec_run(["cat", f"/run/secrets/{stack.secret}"])
        assert exit_code == 0, content
        assert content == SECRET_VALUE
