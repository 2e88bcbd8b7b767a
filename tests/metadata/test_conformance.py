"""Every metadata backend that runs here passes the same suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.metadata.base import MetadataStore, get_metadata_store
from atoll.metadata.sql import SqlMetadataStore
from atoll.testing.conformance.metadata import (
    BlobConformance,
    MetadataStoreConformance,
    ProcessRaceConformance,
)
from atoll.testing.memory import MemoryMetadataStore


class TestMemoryMetadataStore(MetadataStoreConformance, BlobConformance):
    @pytest.fixture
    def store(self) -> MetadataStore:
        return MemoryMetadataStore()


class _SqlStore(MetadataStoreConformance, ProcessRaceConformance, BlobConformance):
    """Opens the SQL store at the subclass's ``store_url``."""

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[MetadataStore]:
        store = get_metadata_store(store_url)
        assert isinstance(store, SqlMetadataStore)
        yield store
        store.close()


class TestSqliteMetadataStore(_SqlStore):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'meta' / 'atoll.db'}"


@pytest.mark.postgres
class TestPostgresMetadataStore(_SqlStore):
    @pytest.fixture
    def store_url(self, postgres_url: str) -> str:
        return postgres_url


class TestMongoMetadataStore(MetadataStoreConformance, BlobConformance):
    """The real MongoMetadataStore code on the mongomock stand-in (no MongoDB server runs here)."""

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Iterator[MetadataStore]:
        from atoll.testing.mongo import drop_server

        server = f"conf-{id(request)}"
        store = get_metadata_store(f"mongomock://{server}/atoll")
        yield store
        store.close()
        drop_server(server)
