"""SQL-store specifics: SQLite settings, error translation, URL handling, large filtered lists."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from atoll.domain.records import Model, ModelVersion
from atoll.errors import BackendError, BackendUnavailableError
from atoll.metadata.base import get_metadata_store
from atoll.metadata.sql import SqlMetadataStore
from atoll.testing.memory import MemoryMetadataStore


def test_sqlite_creates_the_parent_directory_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "atoll.db"
    store = get_metadata_store(f"sqlite:///{db}")
    store.create(Model(name="iris"))
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1


def test_sqlite_in_memory_url_works() -> None:
    store = get_metadata_store("sqlite://")
    store.create(Model(name="iris"))
    assert [m.name for m in store.list(Model)] == ["iris"]


def test_unreachable_postgres_is_backend_unavailable_with_masked_password() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        SqlMetadataStore("postgresql://atoll:s3cret@127.0.0.1:1/atoll")
    message = str(info.value)
    assert message.startswith("cannot reach metadata store at postgresql://atoll:***@127.0.0.1:1/atoll: ")
    assert "s3cret" not in message
    assert "sqlalchemy" not in message.lower()


def test_unopenable_sqlite_file_is_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-dir.db").mkdir()
    with pytest.raises(BackendUnavailableError, match="cannot reach metadata store at sqlite:///"):
        get_metadata_store(f"sqlite:///{tmp_path / 'a-dir.db'}")


def test_a_locked_database_is_a_backend_error_not_a_driver_error(tmp_path: Path, monkeypatch) -> None:
    from atoll.metadata import sql

    url = f"sqlite:///{tmp_path / 'a.db'}"
    get_metadata_store(url).close()
    monkeypatch.setattr(sql, "SQLITE_BUSY_TIMEOUT_MS", 200)
    store = get_metadata_store(url)
    holder = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendError, match="database is locked") as info:
            store.create(Model(name="iris"))
        assert isinstance(info.value.__cause__, Exception)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_other_schemes_are_refused() -> None:
    with pytest.raises(BackendError, match="use sqlite:/// or postgresql://"):
        SqlMetadataStore("mysql://x@y/z")


def test_a_damaged_row_does_not_change_the_order_of_a_descending_list(tmp_path: Path) -> None:
    """SQLite's JSON functions stop at a broken row, so such lists are ordered in Python: the same order."""
    db = tmp_path / "a.db"
    store = get_metadata_store(f"sqlite:///{db}")
    for name, desc in [("a", "x"), ("b", "x"), ("bad", "x"), ("c", "y"), ("d", "x")]:
        store.create(Model(name=name, desc=desc))
    with sqlite3.connect(db) as conn:
        conn.execute("""UPDATE records SET doc = '{"name": "bad"' WHERE name = 'bad'""")

    def names(**how: object) -> list[str]:
        return [m.name for m in store.list(Model, **how)]  # type: ignore[arg-type]

    assert names(filter={"name": {"$ne": "z"}}, descending=True) == ["d", "c", "b", "a"]
    assert names(sort="desc", descending=True) == ["c", "d", "b", "a"]
    assert names(sort="desc") == ["a", "b", "d", "c"]
    store.close()


def _random_docs(rng: random.Random, n: int) -> list[ModelVersion]:
    values = [0, 1, 0.5, -2.5, "x", "0.7", True, False, None, [0.1, 0.95], [], {"v": 1}, [{"acc": 0.99}]]
    out = []
    for i in range(n):
        details: dict = {}
        if rng.random() < 0.8:
            metrics = (
                {"acc": rng.choice(values + [rng.random()] * 4)} if rng.random() < 0.9 else rng.choice(values)
            )
            details["metrics"] = metrics
        if rng.random() < 0.5:
            details["tags"] = rng.sample(["a", "b", "c"], rng.randint(0, 3))
        out.append(ModelVersion(name=f"v{i}", model=rng.choice(["iris", "wine"]), details=details))
    return out


RANDOM_FILTERS = [
    {"details.metrics.acc": {"$gt": 0.5}},
    {"details.metrics.acc": {"$lte": 0.5}},
    {"details.metrics.acc": {"$not": {"$gt": 0.5}}},
    {"details.metrics.acc": {"$ne": 1}},
    {"details.metrics.acc": None},
    {"details.metrics.acc": {"$in": [0, "x", None, True]}},
    {"details.metrics.acc": {"$nin": [0, "x", True]}},
    {"details.metrics.acc": {"$exists": False}},
    {"details.metrics": {"$exists": True, "$ne": None}},
    {"details.metrics.acc": {"$gte": "0"}},
    {"details.metrics.acc": [0.1, 0.95]},
    {"details.metrics.acc": {"v": 1}},
    {"details.tags": "a", "details.metrics.acc": {"$lt": 0.9}},
    {"$nor": [{"details.tags": {"$in": ["a", "b"]}}, {"details.metrics.acc": False}]},
    {"$or": [{"model": "wine"}, {"details.metrics.acc": {"$regex": "^0"}}]},
]


def _assert_pushdown_agrees_with_the_reference(url: str) -> None:
    """The store at ``url`` answers every random filter as the Python evaluator does."""
    rng = random.Random(7)
    docs = _random_docs(rng, 300)
    memory = MemoryMetadataStore()
    sql = get_metadata_store(url)
    for doc in docs:
        memory.create(doc)
        sql.create(doc)
    for flt in RANDOM_FILTERS:
        expected = [m.name for m in memory.list(ModelVersion, filter=flt)]
        assert [m.name for m in sql.list(ModelVersion, filter=flt)] == expected, flt
    sql.close()


def test_sql_pushdown_agrees_with_the_reference_on_random_documents(tmp_path: Path) -> None:
    """Differential check beyond the shared table: same answers as the Python evaluator."""
    _assert_pushdown_agrees_with_the_reference(f"sqlite:///{tmp_path / 'a.db'}")


@pytest.mark.postgres
def test_postgres_pushdown_agrees_with_the_reference_on_random_documents(postgres_url: str) -> None:
    _assert_pushdown_agrees_with_the_reference(postgres_url)
