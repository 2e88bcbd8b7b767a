"""An in-process metadata store for tests (``memory://``).

Records are kept as JSON text (plus its parsed form for filtering, which
never leaves the store), so what goes in and what comes out are independent
copies, and filters run through :func:`atoll.domain.query.evaluate`,
the reference every other backend is checked against.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
from pathlib import Path
from typing import Any

import orjson

from atoll.domain.query import compile_filter, evaluate
from atoll.domain.records import Record, utcnow
from atoll.errors import AlreadyExistsError, NotFoundError
from atoll.metadata.base import Filter, MetadataStore, R, arrange, describe, stale_write


class MemoryMetadataStore(MetadataStore):
    """Thread-safe dict of JSON documents keyed by ``(kind, scope, name)``."""

    def __init__(self, url: str = "memory://", **_options: Any) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._docs: dict[tuple[str, str, str], _Doc] = {}
        self._blobs: dict[str, bytes] = {}

    def create(self, record: R) -> R:
        key = (record.kind, record.scope, record.name)
        doc = _Doc(record.model_copy(update={"revision": 1}))
        with self._lock:
            if key in self._docs:
                raise AlreadyExistsError(f"{describe(record.kind, record.name, record.scope)} already exists")
            self._docs[key] = doc
        return type(record).model_validate_json(doc.text)

    def get(self, kind: type[R], name: str, scope: str = "") -> R:
        with self._lock:
            doc = self._docs.get((kind.kind, scope, name))
            if doc is None:
                raise NotFoundError(f"{describe(kind, name, scope)} not found")
            return kind.model_validate_json(doc.text)

    def update(self, record: R) -> R:
        key = (record.kind, record.scope, record.name)
        with self._lock:
            stored = self._docs.get(key)
            if stored is None:
                raise NotFoundError(f"{describe(record.kind, record.name, record.scope)} not found")
            if stored.revision != record.revision:
                raise stale_write(record, stored.revision)
            doc = _Doc(record.model_copy(update={"revision": record.revision + 1, "modified_at": utcnow()}))
            self._docs[key] = doc
        return type(record).model_validate_json(doc.text)

    def delete(self, kind: type[Record], name: str, scope: str = "") -> None:
        with self._lock:
            if self._docs.pop((kind.kind, scope, name), None) is None:
                raise NotFoundError(f"{describe(kind, name, scope)} not found")

    def _list(
        self, kind: type[R], scope: str | None, filter: Filter | None, limit: int | None, offset: int,
        sort: tuple[str, ...] | None, descending: bool,
    ) -> builtins.list[R]:
        node = compile_filter(filter) if filter is not None else None
        with self._lock:
            docs = [  # dict order is creation order
                doc
                for (k, s, _), doc in self._docs.items()
                if k == kind.kind
                and (scope is None or s == scope)
                and (node is None or evaluate(node, doc.data))
            ]
        page = arrange(docs, lambda doc: doc.data, sort, descending, limit, offset)
        return [kind.model_validate_json(doc.text) for doc in page]

    def put_blob(self, key: str, local_path: Path) -> tuple[int, str]:
        data = Path(local_path).read_bytes()
        with self._lock:
            self._blobs[key] = data
        return len(data), hashlib.sha256(data).hexdigest()

    def get_blob(self, key: str) -> bytes:
        with self._lock:
            data = self._blobs.get(key)
        if data is None:
            raise NotFoundError(f"no blob {key!r} in the metadata store")
        return data

    def delete_blob(self, key: str) -> None:
        with self._lock:
            self._blobs.pop(key, None)

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        with self._lock:
            return sorted(k for k in self._blobs if k.startswith(prefix))


class _Doc:
    """A stored record: its JSON text and the parsed form filters read."""

    __slots__ = ("data", "revision", "text")

    def __init__(self, record: Record) -> None:
        self.text = orjson.dumps(record.model_dump(mode="json"))
        self.data: dict[str, Any] = orjson.loads(self.text)
        self.revision = record.revision
