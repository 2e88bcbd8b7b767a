"""The metadata-store contract and the backend registry.

A store keeps records (see :mod:`atoll.domain.records`) keyed by
``(kind, scope, name)``. Backends are chosen by URL scheme::

    sqlite:///path/to/atoll.db      SqlMetadataStore (embedded default)
    postgresql://user@host/db       SqlMetadataStore
    mongodb://user@host/db          MongoMetadataStore (also mongodb+srv://)
    memory://                       MemoryMetadataStore (tests)
    mongomock://server/db           MongoMetadataStore on mongomock (tests)

Filters are MongoDB-style queries over the record's JSON form (see
:mod:`atoll.domain.query`); every backend answers them identically.
"""

from __future__ import annotations

import builtins
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from atoll._registry import Backend, Registry
from atoll.domain.records import Record
from atoll.errors import BackendError, UsageError

R = TypeVar("R", bound=Record)
T = TypeVar("T")

Filter = dict[str, Any]


class MetadataStore(ABC):
    """Abstract store of records. The docstrings are the contract."""

    url: str

    @abstractmethod
    def create(self, record: R) -> R:
        """Insert a new record and return it as stored (revision 1).

        Raises:
            AlreadyExistsError: a record of that kind, scope and name exists
                (enforced by the database, so two racing writers: one wins).
            BackendUnavailableError / BackendError: the store failed.
        """

    @abstractmethod
    def get(self, kind: type[R], name: str, scope: str = "") -> R:
        """Return one record.

        Raises:
            NotFoundError: no such record (the message names it).
        """

    @abstractmethod
    def update(self, record: R) -> R:
        """Replace a stored record and return it with revision + 1.

        The stored revision must equal ``record.revision``.

        Raises:
            NotFoundError: the record does not exist.
            ConflictError: it was changed by someone else since it was read.
        """

    @abstractmethod
    def delete(self, kind: type[Record], name: str, scope: str = "") -> None:
        """Remove one record.

        Raises:
            NotFoundError: no such record.
        """

    def list(
        self,
        kind: type[R],
        scope: str | None = None,
        filter: Filter | None = None,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
        descending: bool = False,
    ) -> builtins.list[R]:
        """Records of a kind, optionally within one scope and matching a
        MongoDB-style filter.

        Order: by creation (oldest first) unless ``sort`` names a field (a
        dotted path such as ``created_at``, ``name`` or ``details.metrics.acc``);
        then by that field's value as :func:`sort_key` defines it, ties in
        creation order. ``descending`` reverses the whole order (ties included).
        ``offset`` records are skipped, then at most ``limit`` are returned
        (``limit`` <= 0: none), so pages are ``offset=k*n, limit=n``.

        The page and the sort field are checked here; a backend implements :meth:`_list`.

        Raises:
            UsageError: the filter is malformed (unknown operator, bad operand),
                the sort field is not a dotted path of names, or offset < 0.
        """
        check_page(limit, offset)
        path = sort_path(sort) if sort is not None else None
        return self._list(kind, scope, filter, limit, offset, path, descending)

    @abstractmethod
    def _list(
        self, kind: type[R], scope: str | None, filter: Filter | None, limit: int | None, offset: int,
        sort: tuple[str, ...] | None, descending: bool,
    ) -> builtins.list[R]:
        """What :meth:`list` returns, its page already checked and ``sort`` a field's path (or None).

        A backend that cannot order or page in its database hands the matching
        records, oldest first, to :func:`arrange`. A record that no longer
        reads back is skipped (with a warning), not raised.

        Raises:
            UsageError: the filter is malformed.
        """

    def count(self, kind: type[Record], scope: str | None = None, filter: Filter | None = None) -> int:
        """Number of records :meth:`list` would return without a limit."""
        return len(self.list(kind, scope=scope, filter=filter))

    def exists(self, kind: type[Record], name: str, scope: str = "") -> bool:
        from atoll.errors import NotFoundError

        try:
            self.get(kind, name, scope)
        except NotFoundError:
            return False
        return True

    def damaged(self, kind: type[Record]) -> builtins.list[DamagedRecordError]:
        """Stored records of ``kind`` that no longer read back (bad JSON, or a value that
        no longer validates); :meth:`list` skips them, :meth:`delete` removes them.

        A backend that cannot hold such a record returns an empty list (the default).
        """
        return []

    def close(self) -> None:
        """Release connections (idempotent)."""

    # Lightweight blobs: small files kept in the metadata database itself
    # (``--lightweight``), so loading them needs no file store. Optional: a
    # backend without them refuses with a clear UsageError.

    def put_blob(self, key: str, local_path: Path) -> tuple[int, str]:
        """Store the file's bytes under ``key`` (replacing any); return ``(size, sha256)``.

        Readers see the old bytes or the new ones, never a mix.

        Raises:
            UsageError: this backend keeps no blobs.
        """
        raise self._no_blobs()

    def get_blob(self, key: str) -> bytes:
        """The bytes stored under ``key``.

        Raises:
            NotFoundError: no such blob.
        """
        raise self._no_blobs()

    def delete_blob(self, key: str) -> None:
        """Remove ``key``; removing a missing blob is not an error."""
        raise self._no_blobs()

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        """Blob keys starting with ``prefix``, sorted."""
        raise self._no_blobs()

    def _no_blobs(self) -> Exception:
        from atoll.errors import UsageError

        return UsageError(f"the metadata store {type(self).__name__} cannot keep lightweight files")


_SORT_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def sort_path(sort: str) -> tuple[str, ...]:
    """The path of a ``sort`` field (``details.metrics.acc`` -> three names).

    Raises:
        UsageError: a segment is empty or not a name (digits would index
            arrays, which backends cannot order alike).
    """
    parts = tuple(sort.split(".")) if isinstance(sort, str) else ()
    if not parts or not all(_SORT_SEGMENT.fullmatch(part) for part in parts):
        raise UsageError(f"invalid sort field {sort!r}: use a dotted path of names such as created_at")
    return parts


def sort_key(doc: Any, path: tuple[str, ...]) -> tuple[int, Any]:
    """Where a record's JSON form sorts, the reference every backend follows.

    The value at ``path`` (through objects only): missing or null first, then
    booleans (false < true), numbers, strings (code-point order), then objects
    and arrays (all equal to each other).
    """
    value = doc
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, 0)


def arrange(
    items: Iterable[T], doc: Callable[[T], Any], sort: tuple[str, ...] | None, descending: bool,
    limit: int | None, offset: int,
) -> builtins.list[T]:
    """``items`` (matching records, oldest first) in the order and page :meth:`MetadataStore.list`
    promises, decided in Python; ``doc(item)`` is a record's JSON form, read for ``sort``."""
    ordered = builtins.list(items)
    if descending:
        ordered.reverse()  # ties keep this (newest-first) order: Python's sort is stable
    if sort is not None:
        ordered.sort(key=lambda item: sort_key(doc(item), sort), reverse=descending)
    return ordered[offset:] if limit is None else ordered[offset : offset + max(limit, 0)]


def check_page(limit: int | None, offset: int) -> None:
    """Reject a page that is not one.

    Raises:
        UsageError: ``limit`` is not an integer or None, or ``offset`` is not a non-negative integer.
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise UsageError(f"limit must be an integer, not {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise UsageError(f"offset must be a non-negative integer, not {offset!r}")


class DamagedRecordError(BackendError):
    """A stored record cannot be read back: its JSON is broken or no longer validates.

    Attributes:
        kind, name, scope: the record's key. reason: why it does not read.
    """

    def __init__(self, kind: str, name: str, scope: str, reason: str) -> None:
        super().__init__(
            f"{describe(kind, name, scope)} is damaged ({reason}); remove it, or see `atoll check`"
        )
        self.kind, self.name, self.scope, self.reason = kind, name, scope, reason


KIND_LABELS: dict[str, str] = {
    "apikey": "API key",
    "bvers": "build version",
    "depl": "deployment",
    "ds": "dataset",
    "model": "model",
    "movers": "model version",
    "project": "project",
    "tchest": "treasure chest",
    "train": "training",
}


def describe(kind: type[Record] | str, name: str, scope: str = "") -> str:
    """How messages name a record: ``model version 'iris:v1'``."""
    kind_name = kind if isinstance(kind, str) else kind.kind
    ref = f"{scope}:{name}" if scope else name
    return f"{KIND_LABELS.get(kind_name, kind_name)} {ref!r}"


def stale_write(record: Record, stored_revision: int) -> Exception:
    """The ConflictError every backend raises when ``record`` is older than what is stored."""
    from atoll.errors import ConflictError

    return ConflictError(
        f"{describe(record.kind, record.name, record.scope)} was changed by someone else "
        f"(stored revision {stored_revision}, yours {record.revision}); read it again and retry"
    )


STORES: Registry[MetadataStore] = Registry(
    "metadata store",
    {
        "memory": Backend("atoll.testing.memory:MemoryMetadataStore"),
        "mongodb": Backend("atoll.metadata.mongo:MongoMetadataStore", "pip install 'atoll[mongo]'"),
        "mongodb+srv": Backend("atoll.metadata.mongo:MongoMetadataStore", "pip install 'atoll[mongo]'"),
        "mongomock": Backend("atoll.testing.mongo:MongomockMetadataStore", "pip install mongomock"),
        "postgresql": Backend("atoll.metadata.sql:SqlMetadataStore"),
        "sqlite": Backend("atoll.metadata.sql:SqlMetadataStore"),
    },
)


def get_metadata_store(url: str, **options: Any) -> MetadataStore:
    """Open the store for ``url``, picking the backend by scheme."""
    scheme = urlsplit(url).scheme
    if scheme not in STORES.names():  # sqlite+pysqlite:// and the like: the base scheme decides
        scheme = scheme.split("+", 1)[0]
    cls = STORES.load(scheme)
    return cls(url, **options)  # type: ignore[call-arg]
