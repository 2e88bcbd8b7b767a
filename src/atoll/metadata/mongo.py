"""The MongoDB metadata store (``mongodb://…`` / ``mongodb+srv://…``, ``atoll[mongo]``).

One collection per record kind (``model``, ``movers``, ...) in the database
named by the URL path (``atoll`` when none). A stored document is
``{_id: <sequence>, scope, name, revision, doc: <the record's JSON form>}``:
``(scope, name)`` is a unique index, so of two writers creating one name
exactly one wins; ``_id`` comes from a counter (collection
``atoll_counters``), so lists come back oldest first like on SQL.

Filters are validated and compiled by :mod:`atoll.domain.query` first (the
same operator set as every backend: ``$where``, ``$function``, ``$expr`` and
anything else unknown are a :class:`~atoll.errors.UsageError`), then the
compiled tree is written back as a plain MongoDB query over ``doc.*`` and
run by the server (see :func:`to_mongo`). Where a server's reading could
differ from Atoll's (regex dialect, number/boolean mixing in emulations,
array and object equality) the server narrows and the reference evaluator
confirms row by row, so a filter answers the same as on SQL.

Lightweight blobs (see :meth:`MetadataStore.put_blob`) live in the
``atoll_blobs`` collection in chunks of 255 kB, GridFS's layout without
GridFS (whose Python package does not run on the ``mongomock`` stand-in the
tests use).

Credentials come in the URL (``metadata.tchest`` puts them there, see
:func:`atoll.backends.metadata_url`); TLS through the URL options pymongo
reads (``?tls=true&tlsCAFile=/path/ca.pem``). A server that does not answer
within ``server_selection_timeout_ms`` is a
:class:`~atoll.errors.BackendUnavailableError` naming the host.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError as PydanticValidationError

from atoll.config import mask_url
from atoll.domain.query import And, Cond, Node, Not, compile_filter, evaluate
from atoll.domain.records import Record, utcnow
from atoll.errors import (
    AlreadyExistsError,
    AtollError,
    BackendError,
    BackendUnavailableError,
    NotFoundError,
)
from atoll.metadata.base import DamagedRecordError, Filter, MetadataStore, R, arrange, describe, stale_write

try:
    import pymongo
    from pymongo.errors import (
        ConnectionFailure,
        DuplicateKeyError,
        NetworkTimeout,
        PyMongoError,
        ServerSelectionTimeoutError,
    )
except ImportError as exc:  # pragma: no cover - reported by the registry with the install hint
    raise ImportError(f"the mongodb metadata store needs pymongo (pip install 'atoll[mongo]'): {exc}") from exc

DEFAULT_DATABASE = "atoll"
log = logging.getLogger(__name__)
COUNTERS = "atoll_counters"
BLOBS = "atoll_blobs"
BLOB_CHUNK = 255 * 1024
_UNREACHABLE = (ServerSelectionTimeoutError, NetworkTimeout, ConnectionFailure)
_MONGO_OPS = {"eq": "$eq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte", "in": "$in"}


class MongoMetadataStore(MetadataStore):
    """Records in a MongoDB database.

    Args:
        url: ``mongodb://[user:password@]host[:port][/database][?options]``.
        client: an already open client (tests pass a ``mongomock`` one).
        server_selection_timeout_ms: how long to wait for a reachable server.
        **options: passed to :class:`pymongo.MongoClient`.

    Raises (on open):
        BackendUnavailableError: no server answered in time (the host is named).
    """

    def __init__(
        self,
        url: str,
        *,
        client: Any = None,
        server_selection_timeout_ms: int = 10_000,
        **options: Any,
    ) -> None:
        self.url = url
        self._where = mask_url(url)
        self._host = urlsplit(url).netloc.rpartition("@")[2] or "localhost"
        database = urlsplit(url).path.strip("/") or DEFAULT_DATABASE
        if client is None:
            options.setdefault("connectTimeoutMS", server_selection_timeout_ms)
            with self._translate("connect"):
                client = pymongo.MongoClient(
                    url, serverSelectionTimeoutMS=server_selection_timeout_ms, **options
                )
        self._client = client
        self._db = client[database]
        self._indexed: set[str] = set()
        with self._translate("open"):
            self._client.admin.command("ping")

    def __repr__(self) -> str:
        return f"MongoMetadataStore({self._where!r})"

    # -- contract ----------------------------------------------------------

    def create(self, record: R) -> R:
        stored = record.model_copy(update={"revision": 1})
        doc = stored.model_dump(mode="json")
        coll = self._collection(record.kind)
        with self._translate(f"create {describe(record.kind, record.name, record.scope)}"):
            seq = self._next_id(record.kind)
            try:
                coll.insert_one(
                    {"_id": seq, "scope": record.scope, "name": record.name, "revision": 1, "doc": doc}
                )
            except DuplicateKeyError as exc:
                raise AlreadyExistsError(
                    f"{describe(record.kind, record.name, record.scope)} already exists"
                ) from exc
        return type(record).model_validate(doc)

    def get(self, kind: type[R], name: str, scope: str = "") -> R:
        with self._translate(f"read {describe(kind, name, scope)}"):
            found = self._collection(kind.kind).find_one({"scope": scope, "name": name}, {"doc": 1})
        if found is None:
            raise NotFoundError(f"{describe(kind, name, scope)} not found")
        return kind.model_validate(found["doc"])

    def update(self, record: R) -> R:
        stored = record.model_copy(update={"revision": record.revision + 1, "modified_at": utcnow()})
        doc = stored.model_dump(mode="json")
        what = describe(record.kind, record.name, record.scope)
        coll = self._collection(record.kind)
        with self._translate(f"update {what}"):
            result = coll.update_one(
                {"scope": record.scope, "name": record.name, "revision": record.revision},
                {"$set": {"revision": stored.revision, "doc": doc}},
            )
            if result.matched_count == 0:
                current = coll.find_one({"scope": record.scope, "name": record.name}, {"revision": 1})
                if current is None:
                    raise NotFoundError(f"{what} not found")
                raise stale_write(record, int(current["revision"]))
        return type(record).model_validate(doc)

    def delete(self, kind: type[Record], name: str, scope: str = "") -> None:
        with self._translate(f"delete {describe(kind, name, scope)}"):
            result = self._collection(kind.kind).delete_one({"scope": scope, "name": name})
        if result.deleted_count == 0:
            raise NotFoundError(f"{describe(kind, name, scope)} not found")

    def _list(
        self, kind: type[R], scope: str | None, filter: Filter | None, limit: int | None, offset: int,
        sort: tuple[str, ...] | None, descending: bool,
    ) -> builtins.list[R]:
        if sort is None:
            end = None if limit is None else offset + max(limit, 0)
            docs = self._select(kind, scope, filter, end, descending=descending)[offset:]
        else:
            # BSON orders types differently from Atoll's reference (booleans after strings, arrays
            # after objects), so the order is decided here, over the matching documents only.
            matching = self._select(kind, scope, filter, None)
            docs = arrange(matching, lambda doc: doc, sort, descending, limit, offset)
        out: builtins.list[R] = []
        for doc in docs:
            try:
                out.append(kind.model_validate(doc))
            except PydanticValidationError as exc:  # one bad record must not hide the others
                log.warning("skipped %s", self._damaged(kind, doc, exc))
        return out

    def damaged(self, kind: type[Record]) -> builtins.list[DamagedRecordError]:
        found = []
        for doc in self._select(kind, None, None, None):
            try:
                kind.model_validate(doc)
            except PydanticValidationError as exc:
                found.append(self._damaged(kind, doc, exc))
        return found

    @staticmethod
    def _damaged(kind: type[Record], doc: dict[str, Any], exc: PydanticValidationError) -> DamagedRecordError:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DamagedRecordError(kind.kind, str(doc.get("name", "?")), str(doc.get("scope", "")), reason)

    def count(self, kind: type[Record], scope: str | None = None, filter: Filter | None = None) -> int:
        if filter is not None:
            return len(self._select(kind, scope, filter, None))
        with self._translate(f"count {kind.kind}"):
            return int(self._collection(kind.kind).count_documents({} if scope is None else {"scope": scope}))

    def close(self) -> None:
        self._client.close()

    # -- lightweight blobs -------------------------------------------------

    def put_blob(self, key: str, local_path: Path) -> tuple[int, str]:
        data = Path(local_path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        coll = self._db[BLOBS]
        with self._translate(f"store blob {key}"):
            # Chunks go in under a fresh generation, then one write switches the key
            # to it: a reader sees the old blob or the new one, never a mix.
            generation = self._next_id(BLOBS)
            chunks = [
                {"blob": key, "gen": generation, "n": i, "data": data[pos : pos + BLOB_CHUNK]}
                for i, pos in enumerate(range(0, max(len(data), 1), BLOB_CHUNK))
            ]
            coll.insert_many(chunks)
            coll.update_one(
                {"_id": f"head:{key}"},
                {"$set": {"gen": generation, "size": len(data), "sha256": digest}},
                upsert=True,
            )
            coll.delete_many({"blob": key, "gen": {"$ne": generation}})
        return len(data), digest

    def get_blob(self, key: str) -> bytes:
        coll = self._db[BLOBS]
        with self._translate(f"read blob {key}"):
            head = coll.find_one({"_id": f"head:{key}"})
            if head is None:
                raise NotFoundError(f"no blob {key!r} in the metadata store at {self._where}")
            parts = coll.find({"blob": key, "gen": head["gen"]}).sort("n", 1)
            data = b"".join(bytes(part["data"]) for part in parts)
        if hashlib.sha256(data).hexdigest() != head["sha256"]:
            raise BackendError(f"blob {key!r} in {self._where} is corrupt (checksum mismatch)")
        return data

    def delete_blob(self, key: str) -> None:
        coll = self._db[BLOBS]
        with self._translate(f"delete blob {key}"):
            coll.delete_one({"_id": f"head:{key}"})
            coll.delete_many({"blob": key})

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        coll = self._db[BLOBS]
        with self._translate("list blobs"):
            heads = coll.find({"_id": {"$regex": "^" + re.escape(f"head:{prefix}")}}, {"_id": 1})
            return sorted(str(h["_id"])[len("head:") :] for h in heads)

    # -- internals -----------------------------------------------------------

    def _collection(self, kind: str) -> Any:
        coll = self._db[kind]
        if kind not in self._indexed:
            with self._translate(f"index {kind}"):
                coll.create_index([("scope", 1), ("name", 1)], unique=True, name="scope_name")
            self._indexed.add(kind)
        return coll

    def _next_id(self, name: str) -> int:
        counter = self._db[COUNTERS].find_one_and_update(
            {"_id": name}, {"$inc": {"seq": 1}}, upsert=True, return_document=pymongo.ReturnDocument.AFTER
        )
        return int(counter["seq"])

    def _select(
        self, kind: type[Record], scope: str | None, flt: Filter | None, limit: int | None,
        descending: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        node: Node | None = compile_filter(flt) if flt is not None else None
        if limit is not None and limit <= 0:
            return []
        sup: dict[str, Any] | bool = True
        sure = True  # whether the server alone decides (no confirmation, limit pushed down)
        if node is not None:
            sup, sub = to_mongo(node)
            if sup is False:
                return []
            sure = sub == sup
        query: dict[str, Any] = {} if isinstance(sup, bool) else sup
        if scope is not None:
            query = {"$and": [{"scope": scope}, query]} if query else {"scope": scope}
        out: builtins.list[dict[str, Any]] = []
        with self._translate(f"list {kind.kind}"):
            cursor = self._collection(kind.kind).find(query, {"doc": 1}).sort("_id", -1 if descending else 1)
            if limit is not None and sure:
                cursor = cursor.limit(limit)
            for found in cursor:
                if not sure and node is not None and not evaluate(node, found["doc"]):
                    continue
                out.append(found["doc"])
                if limit is not None and len(out) >= limit:
                    break
        return out

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn pymongo errors into Atoll errors naming the (masked) server."""
        try:
            yield
        except AtollError:
            raise
        except _UNREACHABLE as exc:
            raise BackendUnavailableError(
                f"cannot {action}: MongoDB at {self._host} is unreachable ({_first_line(exc)})"
            ) from exc
        except PyMongoError as exc:
            raise BackendError(f"cannot {action}: metadata store at {self._where} failed: {_first_line(exc)}") from exc


def to_mongo(node: Node) -> tuple[dict[str, Any] | bool, dict[str, Any] | bool]:
    """A compiled filter as two MongoDB queries over the ``doc`` sub-document: ``(sup, sub)``.

    ``sup`` keeps every matching row; ``sub`` keeps only rows that surely
    match. They are equal when every condition means exactly the same on
    every server; otherwise the rows ``sup`` keeps are confirmed with the
    reference evaluator. Inexact on purpose: ``$regex`` (PCRE versus Python's
    ``re``), comparisons with numbers or booleans (emulations such as
    mongomock mix ``true`` and ``1``), and equality with arrays or objects
    (decided by Atoll alone). ``$not`` swaps the two, like the SQL store.
    """
    if isinstance(node, Cond):
        return _cond(node)
    if isinstance(node, Not):
        sup, sub = to_mongo(node.child)
        return _nor(sub), _nor(sup)
    pairs = [to_mongo(child) for child in node.children]
    operator = "$and" if isinstance(node, And) else "$or"
    return _combine(operator, [p[0] for p in pairs]), _combine(operator, [p[1] for p in pairs])


def _cond(cond: Cond) -> tuple[dict[str, Any] | bool, dict[str, Any] | bool]:
    path = "doc." + ".".join(cond.path)
    if cond.op == "exists":
        query: dict[str, Any] = {path: {"$exists": cond.value}}
        return query, query
    if cond.op == "regex":
        options = _options(cond.pattern) if cond.pattern is not None else ""
        return {path: {"$regex": cond.value, "$options": options}}, False
    operands = list(cond.value) if cond.op == "in" else [cond.value]
    if any(isinstance(v, (list, dict)) for v in operands):
        return True, False
    query = {path: {_MONGO_OPS[cond.op]: operands if cond.op == "in" else cond.value}}
    exact = all(v is None or isinstance(v, str) for v in operands)
    return query, (query if exact else False)


def _nor(query: dict[str, Any] | bool) -> dict[str, Any] | bool:
    return (not query) if isinstance(query, bool) else {"$nor": [query]}


def _combine(operator: str, queries: list[dict[str, Any] | bool]) -> dict[str, Any] | bool:
    """``$and`` / ``$or`` of ``queries``, constants folded: False decides an ``$and``, True an ``$or``."""
    decisive = operator == "$or"
    if any(q is decisive for q in queries):
        return decisive
    rest = [q for q in queries if not isinstance(q, bool)]
    if not rest:
        return not decisive
    return rest[0] if len(rest) == 1 else {operator: rest}


def _options(pattern: re.Pattern[str]) -> str:
    flags = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
    return "".join(letter for letter, flag in flags.items() if pattern.flags & flag)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["MongoMetadataStore", "to_mongo"]
