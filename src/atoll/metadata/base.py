"""The metadata-store contract and the backend registry.

A store keeps records (see :mod:`atoll.domain.records`) keyed by
``(kind, scope, name)``. Backends are chosen by URL scheme::

    sqlite:///path/to/atoll.db      SqlMetadataStore (embedded default)
    postgresql://user@host/db       SqlMetadataStore
    memory://                       MemoryMetadataStore (tests)

Filters are MongoDB-style queries over the record's JSON form (see
:mod:`atoll.domain.query`); every backend answers them identically.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from typing import Any, TypeVar
from urllib.parse import urlsplit

from atoll._registry import Backend, Registry
from atoll.domain.records import Record
from atoll.errors import BackendError

R = TypeVar("R", bound=Record)

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

    @abstractmethod
    def list(
        self,
        kind: type[R],
        scope: str | None = None,
        filter: Filter | None = None,
        limit: int | None = None,
    ) -> list[R]:
        """Records of a kind, optionally within one scope and matching a
        MongoDB-style filter, oldest first.

        Raises:
            UsageError: the filter is malformed (unknown operator, bad operand).
        """

    def count(self, kind: type[Record], scope: str | None = None, filter: Filter | None = None) -> int:
        """Number of records :meth:`list` would return."""
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


STORES: Registry[MetadataStore] = Registry(
    "metadata store",
    {
        "memory": Backend("atoll.testing.memory:MemoryMetadataStore"),
        "postgresql": Backend("atoll.metadata.sql:SqlMetadataStore"),
        "sqlite": Backend("atoll.metadata.sql:SqlMetadataStore"),
    },
)


def get_metadata_store(url: str, **options: Any) -> MetadataStore:
    """Open the store for ``url``, picking the backend by scheme."""
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    cls = STORES.load(scheme)
    return cls(url, **options)  # type: ignore[call-arg]
