"""The store settings a task on the cluster receives: stores the pods can reach, never the host's files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atoll.config import Config
from atoll.errors import ConfigError

_EMBEDDED_FILE_STORES = ("local", "memory")


def cluster_store_config(config: Config, settings: dict[str, Any],
                         in_network: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``settings`` as a pod must see them.

    Native islands are addressed by their Service name (``in_network()`` builds
    those settings, as on swarm's overlay network); embedded stores (a SQLite
    file, a directory on this host) are refused: no pod can open them.

    Raises:
        ConfigError: a store lives on this host only.
    """
    if config.metadata.native or config.file_store.native:
        settings = in_network()
    url = str((settings.get("metadata") or {}).get("url") or "")
    if url.startswith("sqlite:"):
        raise ConfigError("container_manager.type kubernetes: the metadata store is a SQLite file on this host, "
                          "which no pod can open; set metadata.url to a PostgreSQL (or MongoDB) server the "
                          "cluster reaches, or metadata.native: true (the db island)")
    kind = (settings.get("file_store") or {}).get("type")
    if kind in _EMBEDDED_FILE_STORES:
        raise ConfigError(f"container_manager.type kubernetes: the file store is {kind!r} (on this host), which "
                          "no pod can read; use an S3/Artifactory/Nexus store the cluster reaches, or "
                          "file_store.native: true (the files island)")
    return settings


__all__ = ["cluster_store_config"]
