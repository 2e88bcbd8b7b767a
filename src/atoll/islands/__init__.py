"""Native islands run as Docker Swarm services: ``db``, ``files`` and ``registry``.

See :mod:`atoll.islands.base`; ``atoll.api.islands`` registers them for
``atoll isle <name> setup|status|stop``.
"""

from __future__ import annotations

ISLAND_CLASSES: dict[str, str] = {
    "db": "atoll.islands.db:DbIsland",
    "files": "atoll.islands.files:FilesIsland",
    "registry": "atoll.islands.registry:RegistryIsland",
}

__all__ = ["ISLAND_CLASSES"]
