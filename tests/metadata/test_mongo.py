"""MongoDB specifics: what the store asks the server, and how it fails.

The conformance suite (tests/metadata/test_conformance.py) runs the store on
the mongomock stand-in; these tests check the parts the suite cannot see.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from atoll.domain.query import compile_filter
from atoll.domain.records import Model, ModelVersion
from atoll.errors import AlreadyExistsError, BackendUnavailableError, ConfigError
from atoll.metadata.base import STORES, MetadataStore, get_metadata_store
from atoll.metadata.mongo import MongoMetadataStore, to_mongo
from atoll.testing.mongo import drop_server


@pytest.fixture
def server() -> Iterator[str]:
    name = "mongo-specifics"
    yield name
    drop_server(name)


def test_registry_knows_both_mongodb_schemes() -> None:
    assert {"mongodb", "mongodb+srv"} <= set(STORES.names())
    assert STORES.load("mongodb+srv") is MongoMetadataStore


def test_filters_are_sent_to_the_server_as_plain_queries() -> None:
    sup, sub = to_mongo(compile_filter({"details.author": {"$in": ["ann", None]}, "model": "iris"}))
    assert sup == sub == {
        "$and": [{"doc.details.author": {"$in": ["ann", None]}}, {"doc.model": {"$eq": "iris"}}]
    }
    sup, sub = to_mongo(compile_filter({"details.author": {"$ne": "bob"}}))
    assert sup == sub == {"$nor": [{"doc.details.author": {"$eq": "bob"}}]}


def test_numbers_and_regex_are_narrowed_by_the_server_and_confirmed_by_atoll() -> None:
    sup, sub = to_mongo(compile_filter({"details.acc": {"$gt": 0.9}, "name": {"$regex": "^a", "$options": "i"}}))
    assert sup == {
        "$and": [{"doc.details.acc": {"$gt": 0.9}}, {"doc.name": {"$regex": "^a", "$options": "i"}}]
    }
    assert sub is False


def test_two_stores_on_one_server_share_records_and_the_unique_index(server: str) -> None:
    one = get_metadata_store(f"mongomock://{server}/atoll")
    two = get_metadata_store(f"mongomock://{server}/atoll")
    one.create(Model(name="iris"))
    with pytest.raises(AlreadyExistsError):
        two.create(Model(name="iris"))
    two.create(ModelVersion(name="v1", model="iris"))
    assert [m.name for m in one.list(ModelVersion, scope="iris")] == ["v1"]


def test_records_live_in_one_collection_per_kind(server: str) -> None:
    store = get_metadata_store(f"mongomock://{server}/teamdb")
    assert isinstance(store, MongoMetadataStore)
    store.create(Model(name="iris"))
    store.create(ModelVersion(name="v1", model="iris", details={"acc": 0.9}))
    db = store._db
    assert db.name == "teamdb"
    stored = db["movers"].find_one({"scope": "iris", "name": "v1"})
    assert stored["doc"]["details"] == {"acc": 0.9} and stored["revision"] == 1
    index = db["movers"].index_information()["scope_name"]
    assert index["unique"] and index["key"] == [("scope", 1), ("name", 1)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_unavailable_naming_the_host() -> None:
    port = _closed_port()
    url = f"mongodb://ann:s3cret@127.0.0.1:{port}/atoll"
    with pytest.raises(BackendUnavailableError, match=rf"MongoDB at 127\.0\.0\.1:{port} is unreachable") as info:
        MongoMetadataStore(url, server_selection_timeout_ms=300)
    assert "s3cret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_pymongo_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "atoll.metadata.mongo", None)
    with pytest.raises(ConfigError, match=r"atoll\[mongo\]"):
        get_metadata_store("mongodb://127.0.0.1/atoll")


def test_filter_is_checked_before_anything_reaches_the_server(server: str) -> None:
    store: MetadataStore = get_metadata_store(f"mongomock://{server}/atoll")
    store.create(Model(name="iris"))
    from atoll.errors import UsageError

    with pytest.raises(UsageError, match=r"unknown operator \$where"):
        store.list(Model, filter={"$where": "sleep(1000)"})
