"""The SQL metadata store: SQLite (embedded default) and PostgreSQL.

One table ``records(id, kind, scope, name, doc, revision, created_at,
modified_at)``; ``(kind, scope, name)`` is unique in the database, so of two
writers creating the same name exactly one wins, whatever process they run
in. ``doc`` is the record's JSON form (TEXT read through JSON1 on SQLite,
``jsonb`` on PostgreSQL); filters are pushed down as SQL (see
:mod:`atoll.metadata._sqlfilter`) and finished with the reference evaluator
where SQL cannot be exact. The schema is migrated on open (see
:mod:`atoll.metadata.migrations`).

SQLite runs in WAL mode with a 30 s busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE`` so that a writer waits for the lock up front
instead of failing halfway when another process writes too.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from atoll.config import mask_url
from atoll.domain.query import Node, compile_filter, evaluate
from atoll.domain.records import Record, utcnow
from atoll.errors import (
    AlreadyExistsError,
    AtollError,
    BackendError,
    BackendUnavailableError,
    NotFoundError,
    ValidationError,
)
from atoll.metadata._sqlfilter import never_array_roots, translate
from atoll.metadata._sqlindex import guards, inexact, order_by, write_metrics
from atoll.metadata.base import DamagedRecordError, Filter, MetadataStore, R, arrange, describe, stale_write
from atoll.metadata.migrations import ensure_schema

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10

_SQL = {
    "sqlite": {
        "doc": "doc",
        "new_doc": ":doc",
    },
    "postgresql": {
        "doc": "CAST(doc AS text)",
        "new_doc": "CAST(:doc AS jsonb)",
    },
}


class SqlMetadataStore(MetadataStore):
    """Records in SQLite (``sqlite:///path``) or PostgreSQL (``postgresql://...``).

    Raises (on open):
        BackendUnavailableError: the database cannot be reached or opened.
        BackendError: the schema is newer than this Atoll, or migration failed.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self._where = mask_url(url)
        self._engine = _make_engine(url, **options)
        self._dialect = self._engine.dialect.name
        self._sql = _SQL[self._dialect]
        with self._translate():
            ensure_schema(self._engine)

    def __repr__(self) -> str:
        return f"SqlMetadataStore({self._where!r})"

    # -- contract ----------------------------------------------------------

    def create(self, record: R) -> R:
        stored = record.model_copy(update={"revision": 1})
        doc = stored.model_dump(mode="json")
        text = _dumps(doc, record)
        with self._write() as conn:
            result = conn.execute(
                sa.text(
                    "INSERT INTO records (kind, scope, name, doc, revision, created_at, modified_at) "
                    f"VALUES (:kind, :scope, :name, {self._sql['new_doc']}, 1, :created, :modified) "
                    "ON CONFLICT (kind, scope, name) DO NOTHING RETURNING id"
                ),
                {**_key(record), "doc": text, "created": doc["created_at"], "modified": doc["modified_at"]},
            )
            record_id = result.scalar()
            if record_id is None:
                raise AlreadyExistsError(f"{describe(record.kind, record.name, record.scope)} already exists")
            write_metrics(conn, record_id, doc)
        return type(record).model_validate_json(text)

    def get(self, kind: type[R], name: str, scope: str = "") -> R:
        with self._read() as conn:
            text = conn.execute(
                sa.text(
                    f"SELECT {self._sql['doc']} FROM records WHERE kind = :kind AND scope = :scope AND name = :name"
                ),
                {"kind": kind.kind, "scope": scope, "name": name},
            ).scalar()
        if text is None:
            raise NotFoundError(f"{describe(kind, name, scope)} not found")
        return _parse(kind, text, name, scope)

    def update(self, record: R) -> R:
        stored = record.model_copy(update={"revision": record.revision + 1, "modified_at": utcnow()})
        doc = stored.model_dump(mode="json")
        text = _dumps(doc, record)
        with self._write() as conn:
            result = conn.execute(
                sa.text(
                    f"UPDATE records SET doc = {self._sql['new_doc']}, revision = :new, modified_at = :modified, "
                    "created_at = :created "
                    "WHERE kind = :kind AND scope = :scope AND name = :name AND revision = :old RETURNING id"
                ),
                {
                    **_key(record),
                    "doc": text,
                    "new": stored.revision,
                    "old": record.revision,
                    "modified": doc["modified_at"],
                    "created": doc[
                        "created_at"
                    ],  # the column must stay what the document says (index guards)
                },
            )
            record_id = result.scalar()
            if record_id is not None:
                write_metrics(conn, record_id, doc)
            else:
                current = conn.execute(
                    sa.text(
                        "SELECT revision FROM records WHERE kind = :kind AND scope = :scope AND name = :name"
                    ),
                    _key(record),
                ).scalar()
                if current is None:
                    raise NotFoundError(f"{describe(record.kind, record.name, record.scope)} not found")
                raise stale_write(record, int(current))
        return type(record).model_validate_json(text)

    def delete(self, kind: type[Record], name: str, scope: str = "") -> None:
        with self._write() as conn:
            record_id = conn.execute(
                sa.text(
                    "DELETE FROM records WHERE kind = :kind AND scope = :scope AND name = :name RETURNING id"
                ),
                {"kind": kind.kind, "scope": scope, "name": name},
            ).scalar()
            if record_id is None:
                raise NotFoundError(f"{describe(kind, name, scope)} not found")
            conn.execute(sa.text("DELETE FROM record_metrics WHERE record_id = :id"), {"id": record_id})

    def _list(
        self, kind: type[R], scope: str | None, filter: Filter | None, limit: int | None, offset: int,
        sort: tuple[str, ...] | None, descending: bool,
    ) -> builtins.list[R]:
        try:
            texts = self._select(kind, scope, filter, limit, offset, order_by(sort, descending, self._dialect))
        except BackendError as exc:
            if "malformed JSON" not in str(exc):
                raise
            # SQLite's JSON functions stop at a damaged row: filter, order and page the readable rows in Python.
            node = compile_filter(filter) if filter is not None else None
            texts = [t for _s, _n, t in self._rows(kind, scope) if node is None or _matches(node, t)]
            texts = arrange(texts, _doc_or_none, sort, descending, limit, offset)
        out: builtins.list[R] = []
        for text in texts:
            try:
                out.append(_parse(kind, text, *_key_in(kind, text)))
            except DamagedRecordError as exc:  # one bad record must not hide the others
                log.warning("skipped %s", exc)
        return out

    def damaged(self, kind: type[Record]) -> builtins.list[DamagedRecordError]:
        found = []
        for scope, name, text in self._rows(kind, None):
            try:
                _parse(kind, text, name, scope)
            except DamagedRecordError as exc:
                found.append(exc)
        return found

    def count(self, kind: type[Record], scope: str | None = None, filter: Filter | None = None) -> int:
        query = self._query(kind, scope, filter)
        if query is None:
            return 0
        where, params, node, exact = query
        with self._read() as conn:
            if exact:
                return int(
                    conn.execute(sa.text(f"SELECT COUNT(*) FROM records WHERE {where}"), params).scalar() or 0
                )
            # Rows SQL is sure of come back as NULL (nothing to send or parse); the others are checked here.
            rows = conn.execute(
                sa.text(
                    f"SELECT CASE WHEN {node[1]} THEN NULL ELSE {self._sql['doc']} END FROM records WHERE {where}"
                ),
                params,
            )
            return sum(1 for (text,) in rows if text is None or evaluate(node[0], orjson.loads(text)))

    def close(self) -> None:
        self._engine.dispose()

    # -- lightweight blobs (table ``blobs``, migration 0003) ---------------------

    def put_blob(self, key: str, local_path: Path) -> tuple[int, str]:
        data = Path(local_path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        with self._write() as conn:  # one statement in one transaction: old or new, never a mix
            conn.execute(
                sa.text(
                    "INSERT INTO blobs (key, data, size, sha256, modified_at) "
                    "VALUES (:key, :data, :size, :sha256, :modified) "
                    "ON CONFLICT (key) DO UPDATE SET data = excluded.data, size = excluded.size, "
                    "sha256 = excluded.sha256, modified_at = excluded.modified_at"
                ),
                {"key": key, "data": data, "size": len(data), "sha256": digest, "modified": utcnow().isoformat()},
            )
        return len(data), digest

    def get_blob(self, key: str) -> bytes:
        with self._read() as conn:
            row = conn.execute(sa.text("SELECT data, sha256 FROM blobs WHERE key = :key"), {"key": key}).first()
        if row is None:
            raise NotFoundError(f"no blob {key!r} in the metadata store at {self._where}")
        data = bytes(row[0])
        if hashlib.sha256(data).hexdigest() != row[1]:
            raise BackendError(f"blob {key!r} in {self._where} is corrupt (checksum mismatch)")
        return data

    def delete_blob(self, key: str) -> None:
        with self._write() as conn:
            conn.execute(sa.text("DELETE FROM blobs WHERE key = :key"), {"key": key})

    def list_blobs(self, prefix: str = "") -> builtins.list[str]:
        with self._read() as conn:
            keys = conn.execute(
                sa.text("SELECT key FROM blobs WHERE substr(key, 1, :n) = :prefix"),
                {"n": len(prefix), "prefix": prefix},
            ).scalars()
            return sorted(str(k) for k in keys)

    # -- internals -----------------------------------------------------------

    def _query(
        self, kind: type[Record], scope: str | None, flt: Filter | None
    ) -> tuple[str, dict[str, Any], Any, bool] | None:
        """``(where, params, (node, sure), exact)`` of a listing; None when nothing can match.

        ``exact`` says SQL alone decides (no Python check, LIMIT and COUNT pushed down).
        """
        node: Node | None = compile_filter(flt) if flt is not None else None
        clauses = ["kind = :kind"]
        params: dict[str, Any] = {"kind": kind.kind}
        if scope is not None:
            clauses.append("scope = :scope")
            params["scope"] = scope
        if node is None:
            return " AND ".join(clauses), params, None, True
        found = guards(node, self._dialect)
        if found.exact is not None:
            with self._read() as conn:
                if not inexact(conn, found.metrics):  # the guards are the filter: SQL alone decides
                    params.update(found.params)
                    return " AND ".join(clauses + found.exact), params, None, True
        tr = translate(node, self._dialect, never_array_roots(kind))
        if tr.where is False:
            return None
        clauses += found.clauses
        params.update(found.params)
        if tr.where is not True:
            clauses.append(str(tr.where))
        params.update(tr.params)
        # Rows SQL cannot decide are checked in Python: parsing a row with orjson is
        # cheaper than making the database evaluate the (long) "sure" predicate again.
        return " AND ".join(clauses), params, (node, tr.sure), tr.sure is True

    def _select(
        self,
        kind: type[Record],
        scope: str | None,
        flt: Filter | None,
        limit: int | None,
        offset: int,
        order: tuple[str, dict[str, Any]],
    ) -> builtins.list[str]:
        """JSON texts of the matching records, in ``order``, the page ``offset``/``limit``."""
        query = self._query(kind, scope, flt)
        if query is None or (limit is not None and limit <= 0):
            return []
        where, params, node, exact = query
        sql = f"SELECT {self._sql['doc']} FROM records WHERE {where} {order[0]}"
        params = {**params, **order[1]}
        if exact and (limit is not None or offset):
            everything = "-1" if self._dialect == "sqlite" else "ALL"
            sql += f" LIMIT {everything if limit is None else int(limit)} OFFSET {int(offset)}"
        skip = 0 if exact else offset
        out: builtins.list[str] = []
        with self._read() as conn:
            for (text,) in conn.execute(sa.text(sql), params):
                if exact or evaluate(node[0], orjson.loads(text)):
                    if skip:
                        skip -= 1
                        continue
                    out.append(text)
                    if limit is not None and len(out) >= limit:
                        break
        return out

    def _rows(self, kind: type[Record], scope: str | None) -> builtins.list[tuple[str, str, str]]:
        """``(scope, name, JSON text)`` of every record of ``kind``, oldest first, unparsed."""
        sql = f"SELECT scope, name, {self._sql['doc']} FROM records WHERE kind = :kind"
        sql += " AND scope = :scope" if scope is not None else ""
        with self._read() as conn:
            rows = conn.execute(sa.text(sql + " ORDER BY id"), {"kind": kind.kind, "scope": scope})
            return [(str(s), str(n), str(t)) for s, n, t in rows]

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn SQLAlchemy/driver errors into Atoll errors naming the (masked) URL."""
        try:
            yield
        except AtollError:
            raise
        except sa.exc.DBAPIError as exc:
            reason = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
            if exc.connection_invalidated or _connect_failure(exc):
                raise BackendUnavailableError(
                    f"cannot reach metadata store at {self._where}: {reason}"
                ) from exc
            raise BackendError(f"metadata store at {self._where} failed: {reason}") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise BackendError(f"metadata store at {self._where} failed: {_first_line(exc)}") from exc

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._translate(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._translate(), self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn.execution_options(atoll_begin="IMMEDIATE")
            with conn.begin():
                yield conn


def _dumps(doc: dict[str, Any], record: Record) -> str:
    try:
        return orjson.dumps(doc).decode()
    except orjson.JSONEncodeError as exc:  # lone surrogates, too deep: refused before anything is saved
        raise ValidationError(f"{describe(record.kind, record.name, record.scope)} cannot be stored: {exc}") from exc


def _parse(kind: type[R], text: str, name: str, scope: str) -> R:
    """The record in ``text``, or DamagedRecordError saying why it does not read."""
    try:
        return kind.model_validate_json(text)
    except (ValueError, AtollError) as exc:  # pydantic's ValidationError is a ValueError
        reason = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in reason[:3]) if reason else type(exc).__name__
        raise DamagedRecordError(kind.kind, name, scope, detail) from exc


def _key_in(kind: type[Record], text: str) -> tuple[str, str]:
    """``(name, scope)`` as a damaged record's JSON still shows them (``?`` when unreadable)."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "?", ""
    if not isinstance(data, dict):
        return "?", ""
    return str(data.get("name", "?")), str(data.get(kind.scope_field, "")) if kind.scope_field else ""


def _matches(node: Node, text: str) -> bool:
    try:
        return evaluate(node, orjson.loads(text))
    except orjson.JSONDecodeError:
        return True  # kept, so that parsing reports it as damaged


def _key(record: Record) -> dict[str, str]:
    return {"kind": record.kind, "scope": record.scope, "name": record.name}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _connect_failure(exc: sa.exc.DBAPIError) -> bool:
    """Whether the driver failed to connect (or to open the file) rather than to run a statement."""
    if exc.statement is None:  # raised while connecting
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if sqlstate.startswith(("08", "57P")):
        return True
    return "unable to open database file" in str(exc.orig)


def _make_engine(url: str, **options: Any) -> sa.Engine:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise BackendError(f"invalid metadata store URL {mask_url(url)!r}")
    base = scheme.split("+", 1)[0]
    if base in ("postgresql", "postgres"):
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        return sa.create_engine(f"postgresql+psycopg://{rest}", connect_args=connect_args, **options)
    if base != "sqlite":
        raise BackendError(f"SqlMetadataStore cannot open {mask_url(url)!r}: use sqlite:/// or postgresql://")
    database = sa.engine.make_url(url).database
    in_memory = database in (None, "", ":memory:")
    if not in_memory:
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
        except OSError as exc:
            raise BackendUnavailableError(f"cannot reach metadata store at {url}: {exc}") from exc
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **({"poolclass": StaticPool} if in_memory else {}),
        **options,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('atoll_begin', 'DEFERRED')}")

    return engine


def _doc_or_none(text: str) -> Any:
    """A stored JSON text's value; None for a damaged one (it sorts first and is skipped afterwards)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
