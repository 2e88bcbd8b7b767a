"""The store settings handed to a task, and opening them inside the task.

A task receives the settings of the metadata and file stores (credentials
included) as a secret: a 0600 file locally, a Docker/Kubernetes secret in a
container, found through the path in ``ATOLL_STORE_CONFIG``. The schema::

    {"version": 1,
     "metadata": {"url": "<metadata store URL>", "lightweight_max_mb": 16},
     "file_store": {"type": "<file store type>", "options": {...}, "digest": "blake3"},
     "replica": {"secret": "<replica secret>", "limits": {"max_body": ..., ...}}}   # deployments only

``file_store.digest`` is what files the task publishes are recorded with
(absent in settings written by an older Atoll: the default, BLAKE3).

``replica`` (:func:`with_replica`, :func:`replica_settings`) is what a
deployment's replica needs to serve: the secret the router and the balancer
send (``x-atoll-replica-secret``) and its HTTP server's limits.

:func:`store_settings` builds it (off-board, from the resolved
configuration); :func:`read_store_config` and :func:`open_task_stores` read
it (on-board).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.errors import ConfigError, NotFoundError
from atoll.task.layout import STORE_CONFIG_ENV
from atoll.task.meta import read_json

if TYPE_CHECKING:
    from atoll.files.base import FileStore
    from atoll.metadata.base import MetadataStore

STORE_CONFIG_VERSION = 1


def store_settings(
    metadata_url: str, file_store_type: str, file_store_options: dict[str, Any], *, lightweight_max_mb: float = 16,
    digest: str = "blake3",
) -> dict[str, Any]:
    """The JSON-ready store settings of a task (see the module docstring)."""
    return {
        "version": STORE_CONFIG_VERSION,
        "metadata": {"url": metadata_url, "lightweight_max_mb": lightweight_max_mb},
        "file_store": {"type": file_store_type, "options": dict(file_store_options), "digest": digest},
    }


def with_replica(store_config: dict[str, Any], replica: dict[str, Any]) -> dict[str, Any]:
    """``store_config`` plus a deployment replica's settings (``{"secret", "limits"}``)."""
    return {**store_config, "replica": dict(replica)}


def replica_settings() -> dict[str, Any]:
    """This replica's ``replica`` settings; {} outside a task or in a task that is no deployment's replica.

    Raises:
        UsageError: the store settings are set but not a JSON object (fail closed).
        NotFoundError: they are set but the file is missing.
    """
    if not os.environ.get(STORE_CONFIG_ENV):
        return {}
    found = read_store_config().get("replica")
    return found if isinstance(found, dict) else {}


def local_file_root(store_config: dict[str, Any]) -> Path | None:
    """The directory of a local file store in task settings (for mounts), else None."""
    file_store = store_config.get("file_store") or {}
    if file_store.get("type") != "local":
        return None
    root = (file_store.get("options") or {}).get("root")
    return Path(root) if root else None


def read_store_config() -> dict[str, Any]:
    """The store settings handed to this task.

    Raises:
        NotFoundError: not running inside an Atoll task (no ``ATOLL_STORE_CONFIG``).
        UsageError: the file is not a JSON object.
    """
    path = os.environ.get(STORE_CONFIG_ENV)
    if not path:
        raise NotFoundError(f"not inside an Atoll task: {STORE_CONFIG_ENV} is not set")
    return read_json(Path(path), "store settings")


def open_task_stores(store_config: dict[str, Any]) -> tuple[MetadataStore, FileStore]:
    """Open ``(metadata, files)`` from store settings (:func:`store_settings`'s schema).

    Raises:
        ConfigError: the settings are malformed or from another Atoll version.
    """
    from atoll.files.base import get_file_store
    from atoll.files.digest import DEFAULT as DEFAULT_DIGEST
    from atoll.files.lightweight import DEFAULT_MAX_MB, LightweightFileStore
    from atoll.metadata.base import get_metadata_store

    try:
        version = store_config.get("version", STORE_CONFIG_VERSION)
        url = store_config["metadata"]["url"]
        type_ = store_config["file_store"]["type"]
        options = dict(store_config["file_store"].get("options") or {})
        digest = store_config["file_store"].get("digest") or DEFAULT_DIGEST
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"the task's store settings are malformed (missing {exc})") from exc
    if version != STORE_CONFIG_VERSION:
        raise ConfigError(f"the task's store settings have version {version!r}; this Atoll reads {STORE_CONFIG_VERSION}")
    if not isinstance(url, str) or not isinstance(type_, str) or digest not in ("blake3", "sha256"):
        raise ConfigError("the task's store settings are malformed (metadata.url and file_store.type must be text, "
                          "file_store.digest blake3 or sha256)")
    max_mb = store_config["metadata"].get("lightweight_max_mb", DEFAULT_MAX_MB)
    metadata = get_metadata_store(url)
    try:
        try:
            files = get_file_store(type_, **options)
        except TypeError as exc:  # a backend that does not take these options
            raise ConfigError(f"file store {type_!r} cannot be opened with options {sorted(options)}: {exc}") from exc
    except BaseException:
        metadata.close()
        raise
    return metadata, LightweightFileStore(files, metadata, max_mb, digest)


@lru_cache(maxsize=1)
def task_stores() -> tuple[MetadataStore, FileStore]:
    """``(metadata, files)`` of the task this process runs in, opened once.

    Raises:
        NotFoundError: not inside an Atoll task.
        ConfigError: malformed store settings.
    """
    return open_task_stores(read_store_config())


__all__ = [
    "STORE_CONFIG_VERSION",
    "local_file_root",
    "open_task_stores",
    "read_store_config",
    "replica_settings",
    "store_settings",
    "task_stores",
    "with_replica",
]
