"""Helpers shared by the subject APIs, and generic get/list/remove of project records.

``bvers``, ``train`` and ``depl`` records are created by builds, trainings and
deployments (``api/builds.py``, ``api/trainings.py``, ``api/deployments.py``);
their ``info``/``rm``/``list`` commands all go through :func:`get_record`,
:func:`list_records` and :func:`remove_record` here. Removing one of them
also asks the container manager to remove what it built or runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from atoll.api.context import AtollContext
from atoll.api.replica_secrets import drop_replica_secret
from atoll.domain.names import random_name, validate_name
from atoll.domain.records import ArtifactRecord, BuildVersion, Deployment, Record, Training
from atoll.errors import ConfigError, ConflictError, NotFoundError, ValidationError

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)
Confirm = Callable[[str], bool]
Filter = dict[str, Any]

# What the CLI calls each kind in messages.
KIND_LABELS = {
    "apikey": "API key",
    "model": "model",
    "project": "project",
    "ds": "dataset",
    "movers": "model version",
    "bvers": "build version",
    "train": "training",
    "depl": "deployment",
    "tchest": "treasure chest",
}


def label(kind: type[Record] | str) -> str:
    key = kind if isinstance(kind, str) else kind.kind
    return KIND_LABELS.get(key, key)


def build(cls: type[R], **fields: Any) -> R:
    """Construct a record, turning pydantic's errors into one-line ValidationErrors (exit 2)."""
    try:
        return cls(**fields)
    except PydanticValidationError as exc:
        raise ValidationError(_pydantic_message(label(cls), exc)) from exc


def create_named(ctx: AtollContext, cls: type[R], name: str, fields: Callable[[], dict[str, Any]]) -> R:
    """Check ``name``, then build a ``cls`` record of it with ``fields()`` and create it in the store.

    ``fields()`` runs once the name is checked, so a bad name is the error
    reported before any about the other fields.
    """
    validate_name(name, f"{label(cls)} name")
    return ctx.metadata.create(build(cls, name=name, **fields()))


def parse_model(cls: type[Any], data: Any, what: str) -> Any:
    """Validate ``data`` into a pydantic model ``cls`` (e.g. a FileSpec), one-line errors."""
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(_pydantic_message(what, exc)) from exc


def _pydantic_message(what: str, exc: PydanticValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"invalid {what}: {where}: {msg}" if where else f"invalid {what}: {msg}"


def and_filters(*filters: Filter | None) -> Filter | None:
    """Combine Mongo-style filters with ``$and`` (None when all are empty)."""
    parts = [f for f in filters if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def fresh_name(ctx: AtollContext, kind: type[Record], scope: str = "", name: str | None = None) -> str:
    """``name`` validated, or a random readable name not used yet in ``scope``."""
    if name is not None:
        return validate_name(name, f"{label(kind)} name")
    for _ in range(20):
        candidate = random_name()
        if not ctx.metadata.exists(kind, candidate, scope):
            return candidate
    return random_name()  # astronomically unlikely; the store still enforces uniqueness


def require_confirmation(confirm: Confirm | None, question: str, refusal: str) -> None:
    """Go on only when ``confirm(question)`` agrees (nobody to ask means no).

    Raises:
        ConflictError: with ``refusal`` as its message, when not confirmed.
    """
    if confirm is None or not confirm(question):
        raise ConflictError(refusal)


def read_for_removal(ctx: AtollContext, kind: type[R], name: str, scope: str = "") -> R | None:
    """The record, or None when it is damaged (logged): removal goes on by its key.

    Raises:
        NotFoundError: no such record.
    """
    from atoll.metadata.base import DamagedRecordError

    try:
        return ctx.metadata.get(kind, name, scope)
    except DamagedRecordError as exc:
        log.warning("removing %s", exc)
        return None


def drop_damaged(ctx: AtollContext, kind: type[R], name: str, scope: str = "") -> R | None:
    """Remove the record when it is damaged (unreadable) and return a stand-in holding its key;
    None when it reads fine (the caller then removes it the usual way).

    A damaged record's files cannot be known from it: ``atoll check`` finds them
    as files without a record afterwards.

    Raises:
        NotFoundError: no such record.
    """
    if read_for_removal(ctx, kind, name, scope) is not None:
        return None
    ctx.metadata.delete(kind, name, scope)
    key: dict[str, Any] = {"name": name, **({kind.scope_field: scope} if kind.scope_field else {})}
    return kind.model_construct(**key)


def containers_or_none(ctx: AtollContext) -> Any:
    """The container manager, or None when its backend cannot be loaded.

    Records must stay removable while a manager module is missing (or being
    written); a manager that loads but fails is a real error and propagates.
    """
    try:
        return ctx.containers
    except ConfigError as exc:
        log.warning("container manager unavailable, removing records only: %s", exc)
        return None


# Generic access to project-scoped records (bvers, train, depl).

PROJECT_KINDS: dict[str, type[Record]] = {"bvers": BuildVersion, "train": Training, "depl": Deployment}


def get_record(ctx: AtollContext, kind: type[R], name: str, scope: str = "") -> R:
    """One record; NotFoundError (exit 1) names it when missing."""
    validate_name(name, f"{label(kind)} name")
    if scope:
        validate_name(scope, "scope name")
    return ctx.metadata.get(kind, name, scope)


@dataclass(frozen=True)
class Page:
    """Which part of a listing to return, in which order.

    Args:
        limit: at most this many records (None: all).
        offset: skip this many first (page ``k`` of size ``n``: ``offset=k*n, limit=n``).
        sort: order by this field, a dotted path (``created_at``, ``name``,
            ``details.metrics.acc``); None: creation order.
        descending: reverse the order (``sort="created_at", descending=True``: newest first).
    """

    limit: int | None = None
    offset: int = 0
    sort: str | None = None
    descending: bool = False

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`atoll.metadata.base.MetadataStore.list`."""
        return {"limit": self.limit, "offset": self.offset, "sort": self.sort, "descending": self.descending}


def list_records(
    ctx: AtollContext,
    kind: type[R],
    scope: str | None = None,
    filter: Filter | None = None,
    page: Page | None = None,
) -> list[R]:
    """Records of ``kind`` within ``scope`` (every scope when None) matching ``filter``, the ``page`` asked.

    Raises:
        UsageError: malformed filter, sort field or page.
    """
    if scope:
        validate_name(scope, "scope name")
    return ctx.metadata.list(kind, scope=scope, filter=filter, **(page or Page()).options())


def remove_record(ctx: AtollContext, kind: type[R], name: str, scope: str, confirm: Confirm | None = None) -> R:
    """Remove a build version, training or deployment and what runs or was built for it.

    A build still used by deployments of its project is removed only when
    ``confirm`` agrees. Runtime leftovers are removed before the record, so a
    failed removal can simply be retried.

    Raises:
        NotFoundError: no such record.
        ConflictError: dependents exist and the removal was not confirmed.
    """
    validate_name(name, f"{label(kind)} name")
    damaged = drop_damaged(ctx, kind, name, scope)
    if damaged is not None:
        return damaged
    record = get_record(ctx, kind, name, scope)
    if isinstance(record, BuildVersion):
        _remove_build(ctx, record, confirm)
    elif isinstance(record, Training):
        _remove_training(ctx, record)
    elif isinstance(record, Deployment):
        _remove_deployment(ctx, record)
    ctx.metadata.delete(kind, name, scope)
    return record


def _remove_build(ctx: AtollContext, build_: BuildVersion, confirm: Confirm | None) -> None:
    users = [
        d.name
        for d in ctx.metadata.list(Deployment, scope=build_.proj)
        if d.bvers.name == build_.name
    ]
    if users:
        question = f"build {build_.ref} is used by deployments {', '.join(users)}; remove it anyway?"
        require_confirmation(
            confirm,
            question,
            f"build version {build_.ref} is used by deployments: {', '.join(users)} "
            "(remove them first, or confirm / use --skip-questions)",
        )
    manager = containers_or_none(ctx)
    if manager is not None:
        manager.remove_build(build_)


def _remove_training(ctx: AtollContext, train: Training) -> None:
    manager = containers_or_none(ctx)
    if manager is not None and train.task_id:
        try:
            if not train.task.state.ended:
                manager.stop_task(train.task_id)
            manager.remove_task(train.task_id)
        except NotFoundError:
            pass  # the runtime already forgot it
    if train.output_notebook:
        ctx.files.delete(train.output_notebook)


def _remove_deployment(ctx: AtollContext, depl: Deployment) -> None:
    manager = containers_or_none(ctx)
    if manager is not None:
        manager.remove_service(depl.proj, depl.name)
    drop_replica_secret(ctx, depl.proj, depl.name)  # a new deployment of that name gets a new one


def remove_records(ctx: AtollContext, records: list[Record]) -> list[str]:
    """Remove already-confirmed project records one by one; return their refs.

    Errors propagate; running the removal again finishes the job.
    """
    removed = []
    for record in records:
        remove_record(ctx, type(record), record.name, record.scope, confirm=lambda _q: True)
        removed.append(record.ref)
    return removed


def remove_artifact(ctx: AtollContext, record: ArtifactRecord) -> None:
    """Remove the stored files of a dataset or version, then its record (rerunnable)."""
    if record.stored and (record.files or record.store_key):
        from atoll.files.artifacts import delete_artifact_files

        delete_artifact_files(ctx.files, record)
    ctx.metadata.delete(type(record), record.name, record.scope)


__all__ = [
    "PROJECT_KINDS",
    "Page",
    "and_filters",
    "build",
    "containers_or_none",
    "drop_damaged",
    "fresh_name",
    "get_record",
    "label",
    "list_records",
    "parse_model",
    "read_for_removal",
    "remove_artifact",
    "remove_record",
    "remove_records",
    "require_confirmation",
]
