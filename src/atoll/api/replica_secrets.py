"""Replica secrets: what lets the router and the ``--port`` balancer, and no one else, reach replicas.

Every deployment gets a random secret on its first ``depl new``, kept (0600)
in ``$ATOLL_HOME/run/router-keys/replica-secrets.json``
(``config.router_replica_secrets_file``) until ``depl rm``; a redeploy keeps
it, so old and new replicas accept the same one during a roll-over. The
replicas receive it with their store settings (the task's secret file, a
Docker secret on swarm, the store Secret on Kubernetes), the router reads the
file (the swarm router through the same read-only mount as the keys file, or
the same kind of rotated Docker secret under fetch staging; the Kubernetes
router from its keys Secret, updated here), and the local balancer
gets it in its supervisor's 0600 spec. Never on a command line, in an environment
variable or an image.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from atoll.api.context import AtollContext
from atoll.containers.spec import task_user_group
from atoll.errors import AtollError, BackendError
from atoll.task.meta import write_private_json

FILE_VERSION = 1
log = logging.getLogger(__name__)


def _read(path: Path) -> dict[str, str]:
    try:
        data: Any = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError) as exc:
        raise BackendError(f"the replica secrets file {path} is unreadable: {exc}") from exc
    found = data.get("secrets") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _update(ctx: AtollContext, change: Any) -> str | None:
    """Apply ``change(secrets) -> result`` to the file under an exclusive lock; return the result."""
    path = ctx.config.router_replica_secrets_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(".replica-secrets.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            found = _read(path)
            before = dict(found)
            result = change(found)
            if found != before:
                write_private_json(path, {"version": FILE_VERSION, "secrets": found}, task_user_group())
                hand_router_files_over(ctx)
            return result
        finally:
            os.close(fd)
    except OSError as exc:
        raise BackendError(f"cannot update the replica secrets file {path}: {exc.strerror}") from exc


def hand_router_files_over(ctx: AtollContext, keys: bytes | None = None) -> None:
    """After the API keys file or the replica secrets file changed: hand them to a router that reads
    them from the cluster (a warning when the cluster is away; ``atoll isle router setup`` hands them
    over again). On Kubernetes, update the router's keys Secret; on swarm under fetch staging, roll the
    router service onto a new Docker secret. ``keys``: the keys file's new content (None: read it).
    """
    if ctx.config.container_manager.type == "swarm":
        from atoll.islands.router import refresh_swarm_router

        refresh_swarm_router(ctx.config)
        return
    if ctx.config.container_manager.type not in ("kubernetes", "kube"):
        return
    from atoll.islands.kubernetes import publish_router_secrets

    try:
        publish_router_secrets(ctx.config, keys)
    except AtollError as exc:
        log.warning("the router island's keys Secret was not updated (%s); `atoll isle router setup` "
                    "hands the keys and replica secrets over again", exc)


def replica_secret(ctx: AtollContext, proj: str, name: str) -> str:
    """The replica secret of deployment ``proj``/``name``, created on first use."""

    def get_or_create(found: dict[str, str]) -> str:
        return found.setdefault(f"{proj}/{name}", secrets.token_urlsafe(32))

    return str(_update(ctx, get_or_create))


def known_replica_secret(ctx: AtollContext, proj: str, name: str) -> str | None:
    """The secret of ``proj``/``name`` when it has one (never creates one)."""
    return _read(ctx.config.router_replica_secrets_file).get(f"{proj}/{name}")


def drop_replica_secret(ctx: AtollContext, proj: str, name: str) -> None:
    """Forget the secret of a removed deployment (nothing when it has none)."""
    _update(ctx, lambda found: found.pop(f"{proj}/{name}", None))


__all__ = ["drop_replica_secret", "hand_router_files_over", "known_replica_secret", "replica_secret"]
