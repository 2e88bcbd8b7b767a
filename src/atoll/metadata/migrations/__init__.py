"""Schema migrations of the SQL metadata store (alembic scripts in ``versions/``).

:func:`ensure_schema` runs on every open, so a later release can open a store
written by an earlier one. It is cheap when nothing is to do (one query on the
version table, alembic is not even imported) and guarded when something is:
SQLite takes the write lock (``BEGIN IMMEDIATE``), PostgreSQL a transaction
advisory lock, and the revision is read again under the lock, so concurrent
openers upgrade once.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from atoll.errors import BackendError

HEAD = "0004"
REVISIONS = ("0001", "0002", "0003", "0004")
VERSION_TABLE = "atoll_alembic_version"
_ADVISORY_LOCK_KEY = 0x61746F6C  # "atol"


def stored_revision(conn: sa.Connection) -> str | None:
    """The schema revision recorded in the store, None for an empty store."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(
            sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": VERSION_TABLE}
        ).scalar()
    else:
        found = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": VERSION_TABLE}).scalar()
    if not found:
        return None
    value = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return None if value is None else str(value)


def ensure_schema(engine: sa.Engine) -> None:
    """Upgrade the store to :data:`HEAD` unless it is there already."""
    with engine.connect() as conn:
        if _checked(stored_revision(conn)) == HEAD:
            return
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execution_options(atoll_begin="IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
            if _checked(stored_revision(conn)) != HEAD:
                upgrade(conn, HEAD)


def upgrade(conn: sa.Connection, revision: str) -> None:
    """Run alembic's upgrade to ``revision`` on an open connection (also used by tests)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def _checked(revision: str | None) -> str | None:
    if revision is not None and revision not in REVISIONS:
        raise BackendError(
            f"the metadata store has schema revision {revision}, newer than this Atoll knows "
            f"(up to {HEAD}): upgrade Atoll"
        )
    return revision
