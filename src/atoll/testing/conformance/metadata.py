"""The behaviour every MetadataStore backend must show.

Subclass and provide a ``store`` fixture returning an empty store::

    class TestMemory(MetadataStoreConformance):
        @pytest.fixture
        def store(self):
            return MemoryMetadataStore()

Backends that several OS processes can share also mix in
:class:`ProcessRaceConformance` and provide ``store_url`` (a fresh, unopened
store). :data:`FILTER_CASES` is the one table of filter queries every backend
must answer identically (and that :func:`atoll.domain.query.matches` answers).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from atoll.domain.query import matches
from atoll.domain.records import BuildVersion, Model, ModelVersion, Project, Training
from atoll.errors import AlreadyExistsError, ConflictError, NotFoundError, UsageError
from atoll.metadata.base import MetadataStore, get_metadata_store, sort_key, sort_path

# name -> (model, details, stored). Creation order is the order below.
FILTER_DOCS: list[tuple[str, str, dict[str, Any], bool]] = [
    (
        "a",
        "iris",
        {
            "metrics": {"acc": 0.95, "loss": 0.1},
            "epochs": 10,
            "tags": ["prod", "fast"],
            "author": "Ann",
            "ok": True,
            "note": None,
        },
        True,
    ),
    (
        "b",
        "iris",
        {"metrics": {"acc": 0.5, "loss": 1}, "epochs": 10.0, "tags": ["dev"], "author": "bob", "ok": False},
        True,
    ),
    ("c", "iris", {"metrics": {"acc": 1}, "epochs": "10", "tags": [], "author": "Carl", "ok": 1}, True),
    ("d", "iris", {"metrics": [{"acc": 0.99}, {"acc": 0.2}], "author": "dave"}, True),
    ("e", "wine", {}, False),
    ("f", "iris", {"metrics": {"acc": "0.97"}, "layers": [[1, 2], [3]], "author": None}, True),
]

FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["a", "b", "c", "d", "e", "f"]),
    ({"details.metrics.acc": {"$gt": 0.9}}, ["a", "c", "d"]),  # int 1 > 0.9; d via array of objects
    ({"details.metrics.acc": {"$gte": 1}}, ["c"]),
    ({"details.metrics.acc": 1}, ["c"]),
    ({"details.metrics.acc": 1.0}, ["c"]),  # int and float compare as numbers
    ({"details.metrics.acc": {"$lt": 0.3}}, ["d"]),
    ({"details.metrics.acc": {"$gt": 0.4, "$lt": 0.96}}, ["a", "b", "d"]),  # each operator on any element
    ({"details.metrics.acc": {"$not": {"$gt": 0.9}}}, ["b", "e", "f"]),  # missing and strings match $not
    ({"details.metrics.acc": {"$in": [1, "0.97"]}}, ["c", "f"]),
    ({"details.metrics.loss": {"$lte": 1}}, ["a", "b"]),
    ({"details.epochs": 10}, ["a", "b"]),  # the string "10" is not the number 10
    ({"details.epochs": "10"}, ["c"]),
    ({"details.epochs": {"$gte": 10}}, ["a", "b"]),
    ({"details.ok": True}, ["a"]),  # booleans are not numbers
    ({"details.ok": 1}, ["c"]),
    ({"details.ok": {"$ne": True}}, ["b", "c", "d", "e", "f"]),  # $ne matches missing fields
    ({"details.author": None}, ["e", "f"]),  # null matches null or missing
    ({"details.author": {"$ne": None}}, ["a", "b", "c", "d"]),
    ({"details.author": {"$eq": "bob"}}, ["b"]),
    ({"details.author": {"$exists": True}}, ["a", "b", "c", "d", "f"]),  # null exists
    ({"details.author": {"$exists": False}}, ["e"]),
    ({"details.author": {"$gt": "Bz"}}, ["b", "c", "d"]),  # code-point order: "bob" > "Bz"
    ({"details.author": {"$regex": "^[a-c]"}}, ["b"]),
    ({"details.author": {"$regex": "^[a-c]", "$options": "i"}}, ["a", "b", "c"]),
    ({"details.tags": "prod"}, ["a"]),  # an array matches when an element does
    ({"details.tags": ["dev"]}, ["b"]),  # ...or when it equals the whole array
    ({"details.tags": []}, ["c"]),
    ({"details.tags": {"$in": ["dev", "fast"]}}, ["a", "b"]),
    ({"details.tags": {"$nin": ["dev", "fast"]}}, ["c", "d", "e", "f"]),
    ({"details.tags.0": "prod"}, ["a"]),  # numeric segment indexes an array
    ({"details.layers": [1, 2]}, ["f"]),
    ({"details.metrics": {"acc": 1}}, ["c"]),  # embedded object equality
    ({"details.missing.deep.path": {"$exists": False}}, ["a", "b", "c", "d", "e", "f"]),
    ({"stored": False}, ["e"]),
    ({"name": {"$in": ["a", "c", "zz"]}}, ["a", "c"]),
    ({"created_at": {"$gte": "2000-01-01"}}, ["a", "b", "c", "d", "e", "f"]),  # ISO strings
    ({"details.metrics.acc": {"$exists": True}, "model": "iris"}, ["a", "b", "c", "d", "f"]),
    ({"$or": [{"details.epochs": 10}, {"stored": False}]}, ["a", "b", "e"]),
    ({"$and": [{"details.tags": "prod"}, {"details.author": "Ann"}]}, ["a"]),
    ({"$nor": [{"details.tags": "prod"}, {"model": "wine"}]}, ["b", "c", "d", "f"]),
    ({"$not": {"model": "iris"}}, ["e"]),
    (
        {
            "$or": [
                {"details.metrics.acc": {"$lt": 0.6}},
                {"details.author": {"$regex": "N$", "$options": "i"}},
            ]
        },
        ["a", "b", "d"],
    ),
]

# (sort field, descending, expected names) over FILTER_DOCS: missing/null first, then
# booleans, numbers, strings (code-point order), objects and arrays; ties in creation order.
SORT_CASES: list[tuple[str, bool, list[str]]] = [
    ("details.metrics.acc", False, ["d", "e", "b", "a", "c", "f"]),  # d's metrics is an array: no value
    ("details.metrics.acc", True, ["f", "c", "a", "b", "e", "d"]),
    ("details.author", False, ["e", "f", "a", "c", "b", "d"]),  # "Ann" < "Carl" < "bob"
    ("details.ok", False, ["d", "e", "f", "b", "a", "c"]),  # false < true < the number 1
    ("details.epochs", False, ["d", "e", "f", "a", "b", "c"]),  # 10 ties 10.0; the string "10" last
    ("details.epochs", True, ["c", "b", "a", "f", "e", "d"]),  # the whole order reversed, ties too
    ("details.tags", False, ["d", "e", "f", "a", "b", "c"]),  # arrays tie with each other
    ("name", True, ["f", "e", "d", "c", "b", "a"]),
    ("created_at", False, ["a", "b", "c", "d", "e", "f"]),
    ("created_at", True, ["f", "e", "d", "c", "b", "a"]),
]

MALFORMED_FILTERS: list[Any] = [
    {"a": {"$foo": 1}},
    {"$foo": []},
    {"a": {"$in": 5}},
    {"a": {"$nin": "x"}},
    {"a": {"$regex": "("}},
    {"a": {"$regex": 5}},
    {"a": {"$regex": "x", "$options": "q"}},
    {"a": {"$options": "i"}},
    {"$or": []},
    {"$and": {"a": 1}},
    {"a": {"$exists": "yes"}},
    {"a": {"$gt": [1]}},
    {"a": {"$gt": 1, "b": 2}},
    {"a": {"$not": 5}},
    {"a..b": 1},
    ["a"],
    # Server-side code and expressions are never passed on (MongoDB would run them).
    {"$where": "this.name == 'a'"},
    {"$expr": {"$gt": ["$a", 1]}},
    {"a": {"$function": {"body": "function() { return true }", "args": [], "lang": "js"}}},
    {"a": {"$elemMatch": {"$gt": 1}}},
]


def _names(records: list[Any]) -> list[str]:
    return [r.name for r in records]


def _seed(store: MetadataStore) -> None:
    for name, model, details, stored in FILTER_DOCS:
        store.create(ModelVersion(name=name, model=model, details=details, stored=stored))


class MetadataStoreConformance:
    """Subclasses provide a ``store`` fixture returning an empty store."""

    @pytest.fixture
    def store(self) -> MetadataStore:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- CRUD ----------------------------------------------------------------

    def test_create_then_get_returns_the_record_at_revision_1(self, store: MetadataStore) -> None:
        created = store.create(Model(name="iris", desc="flowers", revision=7))
        assert created.revision == 1
        got = store.get(Model, "iris")
        assert got == created
        assert got.desc == "flowers"

    def test_get_missing_names_the_record(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match=r"^model 'nope' not found$"):
            store.get(Model, "nope")
        with pytest.raises(NotFoundError, match=r"^model version 'iris:v9' not found$"):
            store.get(ModelVersion, "v9", scope="iris")

    def test_duplicate_create_is_refused(self, store: MetadataStore) -> None:
        store.create(Model(name="iris", desc="first"))
        with pytest.raises(AlreadyExistsError, match=r"^model 'iris' already exists$"):
            store.create(Model(name="iris", desc="second"))
        assert store.get(Model, "iris").desc == "first"

    def test_update_bumps_the_revision_and_persists(self, store: MetadataStore) -> None:
        created = store.create(Model(name="iris"))
        created.desc = "changed"
        updated = store.update(created)
        assert updated.revision == 2
        assert updated.modified_at >= created.modified_at
        assert store.get(Model, "iris").desc == "changed"
        assert store.get(Model, "iris").revision == 2

    def test_stale_update_is_a_conflict_and_changes_nothing(self, store: MetadataStore) -> None:
        first = store.create(Model(name="iris"))
        second = store.get(Model, "iris")
        first.desc = "writer one"
        store.update(first)
        second.desc = "writer two"
        with pytest.raises(ConflictError, match="model 'iris' was changed by someone else"):
            store.update(second)
        assert store.get(Model, "iris").desc == "writer one"

    def test_update_missing_is_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError, match=r"^model 'ghost' not found$"):
            store.update(Model(name="ghost", revision=1))

    def test_delete(self, store: MetadataStore) -> None:
        store.create(Model(name="iris"))
        store.delete(Model, "iris")
        assert not store.exists(Model, "iris")
        with pytest.raises(NotFoundError, match=r"^model 'iris' not found$"):
            store.delete(Model, "iris")

    def test_returned_records_are_copies(self, store: MetadataStore) -> None:
        record = ModelVersion(name="v1", model="iris", details={"metrics": {"acc": 0.5}})
        created = store.create(record)
        record.details["metrics"]["acc"] = 0.0
        created.details["metrics"]["acc"] = 0.1
        got = store.get(ModelVersion, "v1", scope="iris")
        got.details["metrics"]["acc"] = 0.2
        assert store.get(ModelVersion, "v1", scope="iris").details == {"metrics": {"acc": 0.5}}

    def test_snapshots_round_trip(self, store: MetadataStore) -> None:
        bvers = BuildVersion(name="b1", proj="p", code_hash="abc", details={"k": [1, 2.5, None]})
        train = Training(name="t1", proj="p", notebook="train.ipynb", bvers=bvers, params={"n": 3})
        mv = ModelVersion(name="v1", model="iris", train=train, details={"when": "2024-01-01T00:00:00Z"})
        created = store.create(mv)
        got = store.get(ModelVersion, "v1", scope="iris")
        assert got == created
        assert got.train is not None and got.train.bvers.details == {"k": [1, 2.5, None]}

    def test_stored_files_keep_their_digest_kind(self, store: MetadataStore) -> None:
        files = [{"name": "old.csv", "size": 1, "sha256": "a" * 64}, {"name": "new.csv", "size": 2, "blake3": "b" * 64}]
        store.create(ModelVersion.model_validate({"name": "v1", "model": "iris", "files": files}))
        got = store.get(ModelVersion, "v1", scope="iris")
        assert [f.model_dump() for f in got.files] == files  # a record of before BLAKE3 reads as it was stored
        assert [(f.algorithm, f.digest[0]) for f in got.files] == [("sha256", "a"), ("blake3", "b")]

    # -- scopes, kinds, order ------------------------------------------------

    def test_scopes_and_kinds_keep_names_apart(self, store: MetadataStore) -> None:
        store.create(Model(name="iris"))
        store.create(Project(name="iris"))
        store.create(ModelVersion(name="v1", model="iris"))
        store.create(ModelVersion(name="v1", model="wine"))
        assert _names(store.list(ModelVersion)) == ["v1", "v1"]
        assert [r.model for r in store.list(ModelVersion, scope="wine")] == ["wine"]
        assert store.list(ModelVersion, scope="none") == []
        store.delete(ModelVersion, "v1", scope="iris")
        assert [r.model for r in store.list(ModelVersion)] == ["wine"]
        assert store.get(Project, "iris").name == "iris"
        assert _names(store.list(Model)) == ["iris"]

    def test_list_is_in_creation_order_with_limit_and_count(self, store: MetadataStore) -> None:
        for name in ("zeta", "alpha", "mid"):
            store.create(Model(name=name))
        assert _names(store.list(Model)) == ["zeta", "alpha", "mid"]
        store.delete(Model, "zeta")
        store.create(Model(name="zeta"))
        assert _names(store.list(Model)) == ["alpha", "mid", "zeta"]
        assert _names(store.list(Model, limit=2)) == ["alpha", "mid"]
        assert _names(store.list(Model, filter={"name": {"$ne": "alpha"}}, limit=1)) == ["mid"]
        assert store.count(Model) == 3
        assert store.count(Model, filter={"name": {"$regex": "^[am]"}}) == 2

    def test_project_models_reference_list(self, store: MetadataStore) -> None:
        store.create(Project(name="p1", models=["iris", "wine"]))
        store.create(Project(name="p2"))
        assert _names(store.list(Project, filter={"models": "iris"})) == ["p1"]
        assert _names(store.list(Project, filter={"models": []})) == ["p2"]
        assert _names(store.list(Project, filter={"models": {"$ne": "wine"}})) == ["p2"]

    # -- filters -------------------------------------------------------------

    @pytest.mark.parametrize(("flt", "expected"), FILTER_CASES, ids=[str(f) for f, _ in FILTER_CASES])
    def test_filter_table(self, store: MetadataStore, flt: dict[str, Any], expected: list[str]) -> None:
        _seed(store)
        docs = [r.model_dump(mode="json") for r in store.list(ModelVersion)]
        assert [d["name"] for d in docs if matches(d, flt)] == expected  # the reference agrees
        assert _names(store.list(ModelVersion, filter=flt)) == expected
        assert store.count(ModelVersion, filter=flt) == len(expected)

    def test_filter_within_a_scope(self, store: MetadataStore) -> None:
        _seed(store)
        assert _names(store.list(ModelVersion, scope="iris", filter={"details.author": None})) == ["f"]
        assert _names(store.list(ModelVersion, scope="wine", filter={"stored": True})) == []

    def test_metric_filters_follow_updates_and_deletes(self, store: MetadataStore) -> None:
        _seed(store)
        flt = {"details.metrics.acc": {"$gt": 0.9}}
        b = store.get(ModelVersion, "b", scope="iris")
        store.update(b.model_copy(update={"details": {"metrics": {"acc": 0.91}}}))
        c = store.get(ModelVersion, "c", scope="iris")
        store.update(c.model_copy(update={"details": {"metrics": {"loss": 1}}}))
        store.delete(ModelVersion, "a", scope="iris")
        assert _names(store.list(ModelVersion, filter=flt)) == ["b", "d"]
        assert store.count(ModelVersion, filter=flt) == 2
        assert _names(store.list(ModelVersion, filter={"details.metrics.loss": 1})) == ["c"]
        store.create(ModelVersion(name="a", model="iris", details={"metrics": {"acc": [0.1, 2]}}))
        assert _names(store.list(ModelVersion, filter={"details.metrics.acc": {"$gte": 2}})) == ["a"]
        # an int a float cannot hold stays exact: 2**53 + 1 > 2**53
        store.create(ModelVersion(name="g", model="iris", details={"metrics": {"acc": 2**53 + 1}}))
        assert _names(store.list(ModelVersion, filter={"details.metrics.acc": {"$gt": 2**53}})) == ["g"]
        assert store.count(ModelVersion, filter={"details.metrics.acc": {"$gt": 2**53}}) == 1
        # a numeric segment indexes an array, "01" as "1"
        store.create(ModelVersion(name="h", model="iris", details={"metrics": [0.5, 0.75]}))
        assert _names(store.list(ModelVersion, filter={"details.metrics.01": {"$gt": 0.7}})) == ["h"]

    def test_name_and_date_filters(self, store: MetadataStore) -> None:
        _seed(store)
        every = store.list(ModelVersion)
        third = every[2].model_dump(mode="json")["created_at"]
        newer = _names(store.list(ModelVersion, filter={"created_at": {"$gt": third}}))
        assert newer == [r.name for r in every if r.model_dump(mode="json")["created_at"] > third]
        assert _names(store.list(ModelVersion, filter={"name": "c"})) == ["c"]
        assert _names(store.list(ModelVersion, filter={"name": {"$in": ["f", "a"]}, "model": "iris"})) == [
            "a",
            "f",
        ]

    # -- order and pages -------------------------------------------------------

    @pytest.mark.parametrize(
        ("sort", "descending", "expected"), SORT_CASES, ids=[f"{s}-{d}" for s, d, _ in SORT_CASES]
    )
    def test_sort_table(self, store: MetadataStore, sort: str, descending: bool, expected: list[str]) -> None:
        _seed(store)
        docs = [r.model_dump(mode="json") for r in store.list(ModelVersion)]
        path = sort_path(sort)
        reference = sorted(
            docs[::-1] if descending else docs, key=lambda d: sort_key(d, path), reverse=descending
        )
        assert [d["name"] for d in reference] == expected  # the reference agrees
        assert _names(store.list(ModelVersion, sort=sort, descending=descending)) == expected

    def test_pages_of_a_sorted_filtered_list(self, store: MetadataStore) -> None:
        _seed(store)
        flt = {"details.metrics.acc": {"$gt": 0.4}}  # a, b, c, and d through its array: Python-checked rows
        assert _names(store.list(ModelVersion, filter=flt, sort="details.metrics.acc")) == [
            "d",
            "b",
            "a",
            "c",
        ]
        page: dict[str, Any] = {"filter": flt, "sort": "details.metrics.acc", "limit": 2}
        assert _names(store.list(ModelVersion, offset=1, **page)) == ["b", "a"]
        assert _names(store.list(ModelVersion, offset=1, descending=True, **page)) == ["a", "b"]
        assert _names(store.list(ModelVersion, offset=3, **page)) == ["c"]
        assert _names(store.list(ModelVersion, offset=9, **page)) == []
        assert store.count(ModelVersion, filter=flt) == 4

    def test_newest_first_pages(self, store: MetadataStore) -> None:
        _seed(store)
        newest: dict[str, Any] = {"sort": "created_at", "descending": True}
        assert _names(store.list(ModelVersion, limit=2, **newest)) == ["f", "e"]
        assert _names(store.list(ModelVersion, limit=2, offset=2, **newest)) == ["d", "c"]
        assert _names(store.list(ModelVersion, offset=4, **newest)) == ["b", "a"]
        assert _names(store.list(ModelVersion, descending=True, limit=1)) == ["f"]  # creation order reversed
        assert _names(store.list(ModelVersion, scope="iris", sort="name", descending=True, limit=2)) == [
            "f",
            "d",
        ]
        assert _names(store.list(ModelVersion, limit=0)) == []

    @pytest.mark.parametrize(
        "page", [{"sort": "details..acc"}, {"sort": "details.tags.0"}, {"offset": -1}, {"sort": ""}]
    )
    def test_bad_pages_are_usage_errors(self, store: MetadataStore, page: dict[str, Any]) -> None:
        with pytest.raises(UsageError):
            store.list(ModelVersion, **page)

    @pytest.mark.parametrize("flt", MALFORMED_FILTERS, ids=[str(f) for f in MALFORMED_FILTERS])
    def test_malformed_filter_is_a_usage_error(self, store: MetadataStore, flt: Any) -> None:
        store.create(Model(name="iris"))
        with pytest.raises(UsageError) as info:
            store.list(Model, filter=flt)
        assert "\n" not in str(info.value)

    # -- concurrency ---------------------------------------------------------

    def test_racing_threads_create_one_record(self, store: MetadataStore) -> None:
        results: list[str] = []
        barrier = threading.Barrier(8)

        def create(i: int) -> None:
            barrier.wait(timeout=30)
            try:
                store.create(Model(name="iris", desc=str(i)))
                results.append("created")
            except AlreadyExistsError:
                results.append("exists")

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(results) == ["created"] + ["exists"] * 7
        assert len(store.list(Model)) == 1


class BlobConformance:
    """For stores that keep lightweight files (``put_blob`` and friends)."""

    def test_blobs_round_trip_replace_list_and_delete(self, store: MetadataStore, tmp_path: Path) -> None:
        data = bytes(range(256)) * 3000  # 768 kB: several chunks where a backend chunks
        src = tmp_path / "clf.pkl"
        src.write_bytes(data)
        assert store.put_blob("lightweight/versions/iris/v1/x/clf.pkl", src) == (
            len(data), hashlib.sha256(data).hexdigest()
        )
        assert store.get_blob("lightweight/versions/iris/v1/x/clf.pkl") == data
        src.write_bytes(b"")
        store.put_blob("lightweight/versions/iris/v1/x/empty", src)
        src.write_bytes(b"new")
        store.put_blob("lightweight/versions/iris/v1/x/clf.pkl", src)
        assert store.get_blob("lightweight/versions/iris/v1/x/clf.pkl") == b"new"
        assert store.get_blob("lightweight/versions/iris/v1/x/empty") == b""
        store.put_blob("lightweight/datasets/iris/d1/y/a.csv", src)
        assert store.list_blobs("lightweight/versions/") == [
            "lightweight/versions/iris/v1/x/clf.pkl", "lightweight/versions/iris/v1/x/empty"
        ]
        assert len(store.list_blobs()) == 3
        store.delete_blob("lightweight/versions/iris/v1/x/clf.pkl")
        store.delete_blob("lightweight/versions/iris/v1/x/clf.pkl")  # again: not an error
        with pytest.raises(NotFoundError, match="clf.pkl"):
            store.get_blob("lightweight/versions/iris/v1/x/clf.pkl")
        assert store.list_blobs("lightweight/versions/") == ["lightweight/versions/iris/v1/x/empty"]
        assert store.list(Model) == []  # blobs are not records


def create_in_process(url: str, names: list[str], barrier: Any, results: Any) -> None:
    """Child-process body of the race test: open, then per name wait for the peers and create."""
    store = get_metadata_store(url)
    try:
        for name in names:
            barrier.wait(60)
            try:
                store.create(Model(name=name))
                results.put((name, "created"))
            except AlreadyExistsError:
                results.put((name, "exists"))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("?", f"error {type(exc).__name__}: {exc}"))
    finally:
        store.close()


def race_processes(url: str, names: list[str], n: int = 2) -> dict[str, list[str]]:
    """Run ``n`` spawned processes creating the same records at once; outcomes per name."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=create_in_process, args=(url, names, barrier, results)) for _ in range(n)]
    for proc in procs:
        proc.start()
    outcomes: dict[str, list[str]] = {}
    try:
        for _ in range(n * len(names)):
            name, outcome = results.get(timeout=120)
            outcomes.setdefault(name, []).append(outcome)
            if name == "?":
                break
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
    return {name: sorted(found) for name, found in outcomes.items()}


class ProcessRaceConformance:
    """For stores several OS processes share: ``store_url`` is a fresh, unopened store."""

    @pytest.fixture
    def store_url(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_two_processes_creating_one_name_one_wins(self, store_url: str) -> None:
        store = get_metadata_store(store_url)  # schema in place before the race
        try:
            names = ["iris", "wine", "digits", "mnist", "cifar"]
            assert race_processes(store_url, names) == {name: ["created", "exists"] for name in names}
            assert _names(store.list(Model)) == names
        finally:
            store.close()

    def test_two_processes_opening_a_fresh_store_both_succeed(self, store_url: str) -> None:
        """The schema is created once even when two first users open the store together."""
        assert race_processes(store_url, ["iris"]) == {"iris": ["created", "exists"]}
