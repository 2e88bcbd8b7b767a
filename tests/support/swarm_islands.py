"""The db, files and registry islands of a Docker test: their settings and their removal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from atoll.config import Config
from atoll.islands.db import DbIsland
from atoll.islands.files import FilesIsland
from atoll.islands.registry import RegistryIsland
from support.processes import free_port

if TYPE_CHECKING:
    from docker import DockerClient

ISLANDS = (DbIsland, FilesIsland, RegistryIsland)


def islands_settings(home: Path, namespace: str, python_image: str) -> dict[str, str]:
    """Environment of a private home with its own namespace and free island ports."""
    return {
        "ATOLL_HOME": str(home),
        "ATOLL_CONTAINER_MANAGER__NAMESPACE": namespace,
        "ATOLL_DOCKER__PYTHON_IMAGE": python_image,
        "ATOLL_ISLANDS__DB_PORT": str(free_port()),
        "ATOLL_ISLANDS__FILES_PORT": str(free_port()),
        "ATOLL_ISLANDS__REGISTRY_PORT": str(free_port()),
        "ATOLL_ISLANDS__SETUP_TIMEOUT": "240",
    }


def remove_islands(client: DockerClient, config: Config, namespace: str) -> None:
    """Stop the three islands, remove their volumes and the namespace's network (by exact name)."""
    from docker.errors import NotFound

    for cls in ISLANDS:
        island = cls(config, client)
        island.stop()
        try:
            client.volumes.get(island.volume_name).remove(force=True)
        except NotFound:
            pass
    for network in client.networks.list(names=[namespace]):
        if network.name == namespace:
            network.remove()
