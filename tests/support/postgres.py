"""A real PostgreSQL server for a test, or a skip (a failure under CI=1, where it must exist)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest


@contextlib.contextmanager
def real_postgres() -> Iterator[str]:
    """Start a throwaway PostgreSQL server (Debian's binaries) and yield its URL."""
    try:
        from atoll.testing.postgres import postgres_available, running_postgres
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"atoll.testing.postgres missing: {exc}")
        pytest.skip("atoll.testing.postgres not available")
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not installed (CI needs them)")
        pytest.skip("PostgreSQL binaries not installed")
    with running_postgres() as url:
        yield url
