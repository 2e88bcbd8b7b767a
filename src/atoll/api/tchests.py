"""Treasure chests: named credentials (user + secret) that configs refer to.

The secret is encrypted at rest with :mod:`atoll.credentials` before it reaches
the store, and no API here returns it except :func:`open_tchest`, which
islands and backends use to log in.

Every chest lives in the chest store in ``ATOLL_HOME`` (``ctx.chests``), never
in the configured metadata store: these calls work whatever ``atoll.yaml``
names, before or after it names the chest. :func:`import_tchests` moves the
chests earlier versions made in the configured store.
"""

from __future__ import annotations

from typing import Any

from atoll.api.context import AtollContext
from atoll.api.records import Confirm, Filter, build
from atoll.domain.names import validate_name
from atoll.domain.records import TreasureChest, utcnow
from atoll.errors import ConflictError, UsageError
from atoll.metadata.base import DamagedRecordError


def _encrypt(secret: str) -> str:
    from atoll.credentials import encrypt

    return encrypt(secret)


def _check_secret(secret: str) -> str:
    if not isinstance(secret, str) or secret == "":
        raise UsageError("the secret must not be empty")
    return secret


def new_tchest(
    ctx: AtollContext,
    name: str,
    secret: str,
    user: str = "",
    desc: str = "",
    details: dict[str, Any] | None = None,
) -> TreasureChest:
    """Record a credential; the secret is stored encrypted.

    Raises:
        InvalidNameError: bad name.
        UsageError: empty secret.
        AlreadyExistsError: a chest of that name exists.
    """
    validate_name(name, "treasure chest name")
    fields = {"desc": desc or "", "details": details or {}, "user": user or "",
              "secret": _encrypt(_check_secret(secret))}
    return _public(ctx.chests.create(build(TreasureChest, name=name, **fields)))


def _public(record: TreasureChest) -> TreasureChest:
    """A copy without the (encrypted) secret, safe to return and print."""
    return record.model_copy(update={"secret": ""})


def get_tchest(ctx: AtollContext, name: str) -> TreasureChest:
    """The chest without its secret."""
    validate_name(name, "treasure chest name")
    return _public(ctx.chests.get(TreasureChest, name))


def list_tchests(ctx: AtollContext, filter: Filter | None = None) -> list[TreasureChest]:
    if filter and any("secret" in key for key in _keys(filter)):
        raise UsageError("--filter cannot look into secrets")
    return [_public(t) for t in ctx.chests.list(TreasureChest, filter=filter)]


def _keys(filter_: Any) -> list[str]:
    if isinstance(filter_, dict):
        return [k for k in filter_] + [k2 for v in filter_.values() for k2 in _keys(v)]
    if isinstance(filter_, list):
        return [k for v in filter_ for k in _keys(v)]
    return []


def update_tchest(
    ctx: AtollContext,
    name: str,
    secret: str | None = None,
    user: str | None = None,
    desc: str | None = None,
    details: dict[str, Any] | None = None,
) -> TreasureChest:
    """Change the given fields; the secret only when a new one is given."""
    validate_name(name, "treasure chest name")
    current = ctx.chests.get(TreasureChest, name)
    changes: dict[str, Any] = {"modified_at": utcnow()}
    if user is not None:
        changes["user"] = user
    if desc is not None:
        changes["desc"] = desc
    if details is not None:
        changes["details"] = details
    if secret is not None:
        changes["secret"] = _encrypt(_check_secret(secret))
    return _public(ctx.chests.update(build(TreasureChest, **{**current.model_dump(), **changes})))


def open_tchest(ctx: AtollContext, name: str) -> tuple[str, str]:
    """``(user, secret)`` in clear, for backends that log in. Never print it."""
    from atoll.credentials import decrypt

    validate_name(name, "treasure chest name")
    record = ctx.chests.get(TreasureChest, name)
    return record.user, decrypt(record.secret)


def delete_tchest(ctx: AtollContext, name: str, confirm: Confirm | None = None) -> TreasureChest:
    """Remove a chest; refuses while the configuration refers to it, unless confirmed."""
    validate_name(name, "treasure chest name")
    try:
        record = get_tchest(ctx, name)
    except DamagedRecordError:  # unreadable: removed by its name
        ctx.chests.delete(TreasureChest, name)
        return TreasureChest.model_construct(name=name)
    users = [
        section
        for section, ref in (("metadata.tchest", ctx.config.metadata.tchest), ("file_store.tchest", ctx.config.file_store.tchest))
        if ref == name
    ]
    if users:
        question = f"treasure chest {name} is used by {', '.join(users)}; remove it?"
        if confirm is None or not confirm(question):
            raise ConflictError(
                f"treasure chest {name} is used by the configuration ({', '.join(users)}); "
                "confirm, or use --skip-questions"
            )
    ctx.chests.delete(TreasureChest, name)
    return record


def import_tchests(ctx: AtollContext) -> list[TreasureChest]:
    """Move the chests earlier versions kept in the configured metadata store into the chest store.

    A chest already in the chest store is left alone in both stores (reported
    by neither). The secrets move as they are: encrypted with the same key.

    Returns:
        The chests moved (without their secrets).
    """
    from atoll.credentials import chest_store_url

    if not ctx.config.metadata.native and ctx.config.metadata_url == chest_store_url(ctx.config):
        return []  # the configured store is the chest store: nothing to move
    moved = []
    for record in ctx.metadata.list(TreasureChest):
        if ctx.chests.exists(TreasureChest, record.name):
            continue
        ctx.chests.create(record)
        ctx.metadata.delete(TreasureChest, record.name)
        moved.append(_public(record))
    return moved
