"""Fixtures for tests that need a real Docker engine (marked ``docker``).

Where no engine answers the tests skip, naming why; with ``ATOLL_REQUIRE_DOCKER=1``
(CI, after ``.ci/setup-docker``) the same condition fails them instead, so a
broken machine cannot pass as a green run.

One-time work belongs in CI's set-up, not inside a test's timeout: build the
images these tests use up front (each prints its progress on stderr, and is
quick when the image is already current)::

    flock /tmp/atoll-docker.lock .venv/bin/atoll image build-base        # atoll/base:<version>
    flock /tmp/atoll-docker.lock .venv/bin/atoll isle db build           # atoll/isle-db:<version>-<recipe>
    flock /tmp/atoll-docker.lock .venv/bin/atoll isle files build        # atoll/isle-files:...
    flock /tmp/atoll-docker.lock .venv/bin/atoll isle registry build     # atoll/isle-registry:...

(with ``ATOLL_DOCKER__PYTHON_IMAGE`` set as for the tests, when it is not the
default ``python:3.11-slim``). The base image follows Atoll's code: build it
from the tree under test, after the last change to ``src/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from docker import DockerClient

# The image `docker.python_image` defaults to; .ci/setup-docker builds it offline.
PYTHON_IMAGE = os.environ.get("ATOLL_PYTHON_IMAGE", "python:3.11-slim")


def _unavailable(message: str) -> NoReturn:
    """Skip, or fail when the run requires Docker."""
    if os.environ.get("ATOLL_REQUIRE_DOCKER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    """A client of the local engine (``DOCKER_HOST`` or the default socket)."""
    try:
        # `from` imports: a bare `import docker` would succeed on this very
        # directory (a namespace package) when the SDK is not installed.
        from docker.errors import DockerException
        from requests import RequestException

        from docker import from_env
    except ImportError as exc:
        _unavailable(f"Docker engine not reachable: python package missing ({exc})")
    try:
        client = from_env(timeout=30)
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        _unavailable(f"Docker engine not reachable: {exc}")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def swarm_client(docker_client: DockerClient) -> DockerClient:
    """The engine client, once the engine is an active Swarm manager."""
    swarm = docker_client.info().get("Swarm", {})
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        _unavailable(
            f"Docker swarm not active on this engine (state {swarm.get('LocalNodeState')!r}); "
            "run .ci/setup-docker"
        )
    return docker_client


@pytest.fixture(scope="session")
def python_image(docker_client: DockerClient) -> str:
    """The Python base image, which cannot be pulled here: it must already exist."""
    from docker.errors import ImageNotFound

    try:
        docker_client.images.get(PYTHON_IMAGE)
    except ImageNotFound:
        _unavailable(f"Docker image {PYTHON_IMAGE} missing; run .ci/setup-docker (builds it offline)")
    return PYTHON_IMAGE
