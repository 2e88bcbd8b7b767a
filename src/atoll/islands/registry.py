"""The ``registry`` island: a Docker registry run by Atoll (Debian's ``docker-registry``).

Builds push to it when ``docker.target_registry`` names it
(``127.0.0.1:<port>``), and ``proj build --pre-built`` pulls from it. It is
published on the host's loopback only, where dockerd needs no "insecure
registry" setting, and it asks for no credentials.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import ClassVar

from atoll.config import Config
from atoll.errors import UsageError
from atoll.islands.swarm import SwarmServiceIsland

_LOOPBACK = ("127.0.0.1", "localhost")


class RegistryIsland(SwarmServiceIsland):
    """The registry as the swarm service ``<namespace>-isle-registry``."""

    name: ClassVar[str] = "registry"
    container_port: ClassVar[int] = 5000
    data_path: ClassVar[str] = "/var/lib/docker-registry"
    recipe: ClassVar[tuple[str, ...]] = ("registry.Dockerfile", "registry.yml")

    def check_native(self) -> None:
        registry_port(self.config)

    @property
    def port(self) -> int:
        """That of ``docker.target_registry`` (:func:`registry_port`); :attr:`url` as the setting takes it."""
        return registry_port(self.config)

    def probe(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.url}/v2/", timeout=2) as answer:  # our loopback URL
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def registry_port(config: Config) -> int:
    """The island's port: that of ``docker.target_registry`` when it names this host, else ``islands.registry_port``.

    Raises:
        UsageError: ``docker.target_registry`` names another host (a foreign registry).
    """
    target = config.docker.target_registry
    if not target:
        return config.islands.registry_port
    host, _, port = target.split("/", 1)[0].rpartition(":")
    if host in _LOOPBACK and port.isdigit():
        return int(port)
    raise UsageError(
        f"the registry is configured as foreign (docker.target_registry = {target}), so Atoll would not use a "
        "registry island; to use one, set docker.target_registry: 127.0.0.1:<port> (or unset it)"
    )


__all__ = ["RegistryIsland", "registry_port"]
