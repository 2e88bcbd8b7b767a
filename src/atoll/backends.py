"""Open the metadata and file stores from the configuration, credentials resolved.

Shared by both sides:

- off-board (CLI, API, managers): :func:`open_metadata_store` and
  :func:`open_file_store` read the :class:`~atoll.config.Config`, decrypting
  treasure chests with the local key (:mod:`atoll.credentials`);
- for a task: :func:`task_store_config` produces the fully resolved
  settings the container manager hands to the task as a secret, which the
  task opens with :func:`atoll.task.stores.open_task_stores`. A task
  therefore never needs the key file nor the treasure chests.

File-store options passed to the backends (``get_file_store(type, **options)``)::

    local        root
    s3           url, bucket, region, user, password   (user/password: access key id / secret key)
    artifactory  url, repository, use_ssl, check_certificate, ca_bundle, user, password
    nexus        (the same; a chest with an empty user holds an API key / token)
    memory       (none; tests)

A backend registered as a plug-in (``FILE_STORES.register``) receives every
set option among url, bucket, repository, region; an unknown
``file_store.type`` is a :class:`ConfigError` naming the supported ones.
``user``/``password`` are present only when ``file_store.tchest`` names a chest.

Every chest is read from the chest store in ``ATOLL_HOME``
(:mod:`atoll.credentials`), ``metadata.tchest`` and ``file_store.tchest``
alike; ``file_store.tchest`` (and the registry chests) fall back to the
configured metadata store, where earlier versions created them.

The native islands (``metadata.native`` / ``file_store.native``: a PostgreSQL
or S3 server run by Atoll, see :mod:`atoll.islands`) are resolved here, by
:func:`native_metadata_url` and :func:`native_file_store_settings`, from the
islands' treasure chests in the embedded store: their names, ports and chests
are defined in this module, which the islands import (never the reverse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from atoll.config import Config
from atoll.credentials import chest_store_url, read_chest, read_home_chest
from atoll.errors import BackendUnavailableError, ConfigError
from atoll.files.base import FILE_STORES, FileStore, get_file_store
from atoll.files.lightweight import LightweightFileStore
from atoll.metadata.base import MetadataStore, get_metadata_store

# The schema of the settings handed to a task is the task contract's; re-exported here.
from atoll.task.stores import store_settings

_NO_CREDENTIALS_SCHEMES = ("sqlite", "memory")

# The native islands as clients see them (atoll.islands runs them under these names).
DB_CHEST = "atoll-db"  # treasure chest of the db island: user + password
DB_USER = "atoll"
DB_DATABASE = "atoll"
DB_SERVICE_PORT = 5432  # inside the overlay network
FILES_CHEST = "atoll-files"  # treasure chest of the files island: access key id + secret key
FILES_SERVICE_PORT = 9000


# Metadata.


def open_metadata_store(config: Config, *, allow_new: bool = False) -> MetadataStore:
    """The configured metadata store, with the credentials of ``metadata.tchest`` in its URL.

    Raises:
        BackendUnavailableError: the SQLite file is missing while the local file
            store holds files (it was lost, not never made: creating it empty
            would orphan them all); ``allow_new`` (``atoll check --repair``) allows it.
    """
    url = metadata_url(config)
    if not allow_new:
        refuse_lost_sqlite(config, url)
    return get_metadata_store(url)


def open_chest_store(config: Config) -> MetadataStore:
    """The chest store (``sqlite:///<home>/atoll.db``), created on first use.

    When it is also the configured metadata store, the lost-database check of
    :func:`open_metadata_store` applies: making a chest must not create an
    empty database in place of a lost one.
    """
    url = chest_store_url(config)
    if not config.metadata.native and config.metadata_url == url:
        refuse_lost_sqlite(config, url)
    return get_metadata_store(url)


def refuse_lost_sqlite(config: Config, url: str) -> None:
    """Raise when ``url`` names a SQLite file that is gone while the local file store has content."""
    if not url.startswith("sqlite:///") or config.file_store.type != "local":
        return  # a remote file store costs a request to list: `atoll check` looks there
    database = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).expanduser()
    if not database.name or database.name == ":memory:" or database.exists():
        return
    root = config.file_store_path
    held = sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []
    if held:
        raise BackendUnavailableError(
            f"the metadata store {database} is missing but the file store {root} holds {', '.join(held)}: "
            "restore the file from a backup, or run `atoll check` (and `atoll check --repair` to start "
            "an empty store; the stored files are then reported as files without records)"
        )


def metadata_url(config: Config) -> str:
    """The metadata URL to connect with, credentials included (never print it unmasked).

    ``metadata.tchest`` is looked up in the chest store in ``ATOLL_HOME``
    (``sqlite:///<home>/atoll.db``), like every chest: the configured store
    cannot be asked for the credentials needed to open it.

    Raises:
        ConfigError: the chest does not exist, or the URL cannot carry credentials.
    """
    url = native_metadata_url(config) if config.metadata.native else config.metadata_url
    if not config.metadata.tchest:
        return url
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    if scheme in _NO_CREDENTIALS_SCHEMES:
        raise ConfigError(f"metadata.tchest: a {scheme} metadata store takes no credentials; unset metadata.tchest")
    user, password = read_chest(config, config.metadata.tchest, "metadata.tchest")
    return with_credentials(url, user, password)


def with_credentials(url: str, user: str, password: str) -> str:
    """``scheme://user:password@host/...`` (replacing any credentials already there)."""
    parts = urlsplit(url)
    if not parts.netloc:
        raise ConfigError(f"cannot put credentials into {parts.scheme}: URLs without a host")
    host = parts.netloc.rpartition("@")[2]
    creds = quote(user, safe="")
    if password:
        creds += ":" + quote(password, safe="")
    netloc = f"{creds}@{host}" if creds else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# Files.


def open_file_store(config: Config, metadata: MetadataStore) -> FileStore:
    """The configured file store, logged in with ``file_store.tchest`` when set.

    Wrapped so that lightweight files (``lightweight/`` keys) go to ``metadata``.
    """
    type_, options = file_store_settings(config, metadata)
    return LightweightFileStore(_get_file_store(type_, options), metadata, config.metadata.lightweight_max_mb,
                                config.file_store.digest)


def _get_file_store(type_: str, options: dict[str, Any]) -> FileStore:
    try:
        return get_file_store(type_, **options)
    except TypeError as exc:  # a backend that does not take these options
        raise ConfigError(f"file store {type_!r} cannot be opened with options {sorted(options)}: {exc}") from exc


def file_store_settings(config: Config, metadata: MetadataStore) -> tuple[str, dict[str, Any]]:
    """``(type, options)`` for :func:`~atoll.files.base.get_file_store`, credentials resolved.

    Raises:
        ConfigError: a setting the backend needs is missing, or the chest is unknown.
    """
    section = config.file_store
    if section.native:
        return native_file_store_settings(config)
    type_ = section.type
    options: dict[str, Any]
    if type_ == "local":
        return type_, {"root": str(config.file_store_path.expanduser().absolute())}
    if type_ == "memory":
        return type_, {}
    if type_ not in FILE_STORES.names():
        FILE_STORES.load(type_)  # raises ConfigError: unknown file store, naming the supported ones
    if type_ == "s3":
        options = {"url": section.url, "bucket": section.bucket, "region": section.region}
    elif type_ in ("artifactory", "nexus"):
        options = {
            "url": section.url, "repository": section.repository, "use_ssl": section.use_ssl,
            "check_certificate": section.check_certificate, "ca_bundle": section.ca_bundle,
        }
    else:  # a plug-in backend: give it everything that is set
        options = {
            key: value
            for key, value in (
                ("url", section.url), ("bucket", section.bucket),
                ("repository", section.repository), ("region", section.region),
            )
            if value is not None
        }
    if section.tchest:
        options["user"], options["password"] = read_chest(config, section.tchest, "file_store.tchest",
                                                          fallback=metadata)
    return type_, options


# Native islands.


def island_service(config: Config, island: str) -> str:
    """``<namespace>-isle-<island>``: the island's swarm service, its host name on the overlay network."""
    return f"{config.container_manager.namespace}-isle-{island}"


def native_metadata_url(config: Config, *, in_network: bool = False) -> str:
    """The URL of the db island (PostgreSQL run by Atoll) with its credentials (never print it unmasked).

    Args:
        in_network: the address tasks on the overlay network use
            (``<namespace>-isle-db:5432``) instead of the host's published port.

    Raises:
        ConfigError: ``metadata.url`` is set too, or the island was never set up.
    """
    if config.metadata.url:
        raise ConfigError("metadata.native and metadata.url exclude each other: unset one of them")
    user, password = read_home_chest(config, DB_CHEST, "metadata.native", "db")
    where = (f"{island_service(config, 'db')}:{DB_SERVICE_PORT}" if in_network
             else f"{config.islands.host}:{config.islands.db_port}")
    return f"postgresql://{user}:{password}@{where}/{DB_DATABASE}"


def native_file_store_settings(config: Config, *, in_network: bool = False) -> tuple[str, dict[str, Any]]:
    """``("s3", options)`` for the files island (S3 server run by Atoll), keys included.

    The keys come from the chest ``atoll-files`` of the embedded store in
    ``ATOLL_HOME`` (like every island credential), not from the configured store.

    Args:
        in_network: the address tasks on the overlay network use
            (``http://<namespace>-isle-files:9000``) instead of the host's published port.

    Raises:
        ConfigError: the island was never set up.
    """
    access, secret = read_home_chest(config, FILES_CHEST, "file_store.native", "files")
    url = (f"http://{island_service(config, 'files')}:{FILES_SERVICE_PORT}" if in_network
           else f"http://{config.islands.host}:{config.islands.files_port}")
    return "s3", {"url": url, "bucket": config.file_store.bucket, "region": config.file_store.region,
                  "user": access, "password": secret}


# Tasks.


def task_store_config(config: Config, metadata: MetadataStore, *, in_network: bool = False) -> dict[str, Any]:
    """The resolved store settings a task receives (as a secret: it holds credentials).

    JSON-ready: ``{"version": 1, "metadata": {"url": ...},
    "file_store": {"type": ..., "options": {...}, "digest": ...}}``.

    Args:
        in_network: the task runs on the islands' overlay network (swarm):
            native islands are addressed by service name
            (``<namespace>-isle-db:5432``, ``http://<namespace>-isle-files:9000``)
            instead of the host's published ports.
    """
    type_, options = file_store_settings(config, metadata)
    url = metadata_url(config)
    if in_network and config.metadata.native:
        url = native_metadata_url(config, in_network=True)
    if in_network and config.file_store.native:
        type_, options = native_file_store_settings(config, in_network=True)
    return store_settings(url, type_, options, lightweight_max_mb=config.metadata.lightweight_max_mb,
                          digest=config.file_store.digest)
