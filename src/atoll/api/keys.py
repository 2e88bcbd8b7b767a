"""API keys: what a prediction request shows the router to get through.

A key belongs to one project and, optionally, one deployment of it; it may
expire. ``new_key`` returns the key once; only an HMAC-SHA256 of it is kept,
keyed with a per-installation *pepper* derived from the installation's secret
key (``$ATOLL_HOME/secret.key``), so the metadata store alone (a database dump,
a shared PostgreSQL) is not enough to test guesses offline, and a key cannot be
shown again — a lost key is replaced by a new one.

How the router learns the keys: the metadata store is the source of truth, and
every change (``key new``/``key rm``, a project removal, router setup) exports
the hashes with the pepper to one file, ``$ATOLL_HOME/run/router-keys/keys.json``
(``config.router_keys_file``; mode 0600, written atomically), that the router
re-reads when it changes. The router then needs
no database access and no credentials — it sees hashes, never keys — and a
keys file is what a container can be given: the swarm router mounts its
directory read-only under host staging (a single-node swarm), and gets it as
a Docker secret named after its content under fetch staging, rotated by a
start-first update of the router service on every change
(:mod:`atoll.islands.router_keys`); the Kubernetes router reads it from a Secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from atoll.api.context import AtollContext
from atoll.api.records import Filter, build, fresh_name
from atoll.api.replica_secrets import hand_router_files_over
from atoll.containers.spec import task_user_group
from atoll.credentials import load_key
from atoll.domain.names import validate_name
from atoll.domain.records import ApiKey, Project, utcnow
from atoll.errors import BackendError, UsageError
from atoll.task.meta import write_private_bytes

KEY_PREFIX = "atk_"
#: Characters of a key shown to identify it (``atk_`` + 8 random characters).
SHOWN_CHARS = 12
#: Version of the keys file format read by :mod:`atoll.router.auth`.
KEYS_FILE_VERSION = 1
MAX_EXPIRY_DAYS = 3650


def _pepper() -> bytes:
    return hmac.new(load_key(), b"atoll router api keys v1", hashlib.sha256).digest()


def key_hash(key: str, pepper: bytes) -> str:
    """The stored form of ``key``: hex HMAC-SHA256 under the installation's pepper."""
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def new_key(
    ctx: AtollContext,
    proj: str,
    name: str | None = None,
    deploy: str | None = None,
    expires_days: float | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for project ``proj`` (one deployment when ``deploy`` is given).

    Returns:
        The record (without the key) and the key itself, which is not kept.

    Raises:
        NotFoundError: no such project.
        UsageError: a bad name or expiry.
        AlreadyExistsError: the project has a key of that name.
    """
    validate_name(proj, "project name")
    ctx.metadata.get(Project, proj)
    if deploy is not None:
        validate_name(deploy, "deployment name")
    expires_at = None
    if expires_days is not None:
        if not 0 < expires_days <= MAX_EXPIRY_DAYS:
            raise UsageError(f"--expires must be between 0 and {MAX_EXPIRY_DAYS} days, got {expires_days:g}")
        expires_at = utcnow() + timedelta(days=expires_days)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = build(
        ApiKey,
        name=fresh_name(ctx, ApiKey, proj, name),
        proj=proj,
        deploy=deploy,
        expires_at=expires_at,
        prefix=key[:SHOWN_CHARS],
        hash=key_hash(key, _pepper()),
    )
    created = ctx.metadata.create(record)
    export_keys(ctx)
    return created, key


def list_keys(ctx: AtollContext, proj: str | None = None, filter: Filter | None = None) -> list[ApiKey]:
    """Keys of ``proj`` (of every project when None); their hashes are never shown."""
    if proj is not None:
        validate_name(proj, "project name")
    return ctx.metadata.list(ApiKey, scope=proj, filter=filter)


def delete_key(ctx: AtollContext, proj: str, name: str) -> ApiKey:
    """Revoke a key: the router refuses it once it has re-read its keys file (≤ 1 s).

    Raises:
        NotFoundError: no such key.
    """
    validate_name(proj, "project name")
    validate_name(name, "API key name")
    record = ctx.metadata.get(ApiKey, name, proj)
    ctx.metadata.delete(ApiKey, name, proj)
    export_keys(ctx)
    return record


def delete_project_keys(ctx: AtollContext, proj: str) -> list[str]:
    """Revoke every key of a project (a project removed and made again gets no old keys)."""
    names = [k.name for k in ctx.metadata.list(ApiKey, scope=proj)]
    for name in names:
        ctx.metadata.delete(ApiKey, name, proj)
    if names:
        export_keys(ctx)
    return names


def is_expired(record: ApiKey, now: datetime | None = None) -> bool:
    return record.expires_at is not None and record.expires_at <= (now or utcnow())


def keys_document(ctx: AtollContext) -> bytes:
    """The keys file's content: the pepper and, per key, its target, expiry and hash."""
    entries = [
        {
            "name": k.name,
            "proj": k.proj,
            "deploy": k.deploy,
            "expires": k.expires_at.timestamp() if k.expires_at else None,
            "prefix": k.prefix,
            "hash": k.hash,
        }
        for k in ctx.metadata.list(ApiKey)
    ]
    return orjson.dumps({"version": KEYS_FILE_VERSION, "pepper": _pepper().hex(), "keys": entries})


def export_keys(ctx: AtollContext, path: Path | None = None) -> Path:
    """Write :func:`keys_document` to ``path`` (default ``config.router_keys_file``), 0600, atomically.

    When Atoll runs as root the file is 0640 for ``TASK_USER``'s group (the swarm router runs as it).

    Raises:
        BackendError: the file cannot be written.
    """
    path = path or ctx.config.router_keys_file
    data = keys_document(ctx)
    try:  # the swarm router island reads it as that group when Atoll runs as root (see islands.router)
        write_private_bytes(path, data, task_user_group(), durable=True)
    except OSError as exc:
        raise BackendError(f"cannot write the router's keys file {path}: {exc.strerror}") from exc
    hand_router_files_over(ctx, data)
    return path


__all__ = [
    "KEY_PREFIX",
    "delete_key",
    "delete_project_keys",
    "export_keys",
    "is_expired",
    "key_hash",
    "keys_document",
    "list_keys",
    "new_key",
]
