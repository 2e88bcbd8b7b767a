"""The Docker engine as the islands use it: one client, and SDK errors translated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from atoll.config import Config
from atoll.errors import AtollError, BackendError, BackendUnavailableError, NotFoundError

if TYPE_CHECKING:
    from docker import DockerClient


def docker_client(config: Config) -> DockerClient:
    """A client of the configured engine (``docker.daemon_address`` or the environment).

    Raises:
        BackendUnavailableError: the SDK is missing or the engine does not answer.
    """
    try:
        from docker.errors import DockerException
        from requests import RequestException

        import docker
    except ImportError as exc:
        raise BackendUnavailableError(f"the islands need the docker SDK (pip install 'atoll[docker]'): {exc}") from exc
    timeout = int(config.container_manager.api_timeout)
    try:
        if config.docker.daemon_address:
            client = docker.DockerClient(base_url=config.docker.daemon_address, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        raise BackendUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
    return client


@contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Translate docker SDK errors raised inside the block into Atoll errors (``raise … from``)."""
    try:
        from docker.errors import APIError, DockerException, NotFound
        from requests import RequestException
    except ImportError as exc:
        raise BackendUnavailableError(f"cannot {action}: the docker SDK is missing (pip install 'atoll[docker]')") from exc
    try:
        yield
    except AtollError:
        raise
    except NotFound as exc:
        raise NotFoundError(f"cannot {action}: {exc.explanation or exc}") from exc
    except APIError as exc:
        raise BackendError(f"cannot {action}: the Docker engine answered: {exc.explanation or exc}") from exc
    except (DockerException, RequestException, ConnectionError) as exc:
        raise BackendUnavailableError(f"cannot {action}: the Docker engine failed: {exc}") from exc


__all__ = ["docker_client", "docker_errors"]
