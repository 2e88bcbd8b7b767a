"""A store written by an older release is upgraded when a newer one opens it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from atoll.domain.records import Model, ModelVersion
from atoll.errors import BackendError
from atoll.metadata import migrations
from atoll.metadata.base import get_metadata_store
from atoll.metadata.sql import _make_engine


def _old_store(url: str) -> None:
    """What release 0001 left behind: the table, two records, no (kind, scope) index."""
    engine = _make_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            migrations.upgrade(conn, "0001")
            new_doc = "CAST(:doc AS jsonb)" if conn.dialect.name == "postgresql" else ":doc"
            for record in (
                Model(name="iris", desc="old", revision=1),
                ModelVersion(name="v1", model="iris", details={"metrics": {"acc": 0.93}}, revision=1),
            ):
                doc = record.model_dump(mode="json")
                conn.execute(
                    sa.text(
                        "INSERT INTO records (kind, scope, name, doc, revision, created_at, modified_at) "
                        f"VALUES (:kind, :scope, :name, {new_doc}, 1, :c, :c)"
                    ),
                    {
                        "kind": record.kind,
                        "scope": record.scope,
                        "name": record.name,
                        "doc": orjson.dumps(doc).decode(),
                        "c": doc["created_at"],
                    },
                )
        with engine.connect() as conn:
            assert migrations.stored_revision(conn) == "0001"
            assert "ix_records_kind_scope" not in _indexes(conn)
    finally:
        engine.dispose()


def _indexes(conn: sa.Connection) -> set[str]:
    return {ix["name"] for ix in sa.inspect(conn).get_indexes("records")}


def _check_upgraded_on_open(url: str) -> None:
    store = get_metadata_store(url)
    try:
        assert store.get(Model, "iris").desc == "old"
        store.create(Model(name="wine"))
        assert [m.name for m in store.list(Model)] == ["iris", "wine"]
        # the metric index was filled for the version stored before it existed
        assert [v.name for v in store.list(ModelVersion, filter={"details.metrics.acc": {"$gt": 0.9}})] == [
            "v1"
        ]
    finally:
        store.close()
    engine = _make_engine(url)
    try:
        with engine.connect() as conn:
            assert migrations.stored_revision(conn) == migrations.HEAD == "0004"
            assert {"ix_records_kind_scope", "ix_records_kind_created", "ix_records_kind_name"} <= _indexes(
                conn
            )
    finally:
        engine.dispose()


def test_head_matches_the_alembic_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_current_head() == migrations.HEAD
    assert sorted(s.revision for s in scripts.walk_revisions()) == list(migrations.REVISIONS)


def test_sqlite_store_at_0001_is_upgraded_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _old_store(url)
    _check_upgraded_on_open(url)


@pytest.mark.postgres
def test_postgres_store_at_0001_is_upgraded_on_open(postgres_url: str) -> None:
    _old_store(postgres_url)
    _check_upgraded_on_open(postgres_url)


def test_a_store_newer_than_this_release_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    get_metadata_store(url).close()
    engine = _make_engine(url)
    with engine.connect() as conn, conn.begin():
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(BackendError, match="schema revision 0099, newer than this Atoll"):
        get_metadata_store(url)


def test_opening_a_store_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    get_metadata_store(url).close()
    code = (
        "import sys\n"
        "from atoll.metadata.base import get_metadata_store\n"
        f"get_metadata_store({url!r}).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"
