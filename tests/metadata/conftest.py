"""Fixtures for the metadata tests: a real PostgreSQL server, started once per session."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from atoll.testing.postgres import postgres_available, running_postgres

_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a throwaway server; skipped only where PostgreSQL is absent and CI is unset."""
    if not postgres_available() and not os.environ.get("CI"):
        pytest.skip("PostgreSQL 15 binaries not installed (set CI=1 to make this a failure)")
    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session server, dropped afterwards."""
    import psycopg

    admin = postgres_server.rsplit("/", 1)[0]
    name = f"t{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{admin}/{name}"
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
