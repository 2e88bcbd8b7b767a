"""The reference filter evaluator (every metadata backend is checked against it)."""

from __future__ import annotations

import pytest

from atoll.domain.query import matches, parse_filter, validate_filter
from atoll.errors import UsageError
from atoll.testing.conformance.metadata import MALFORMED_FILTERS

DOC = {
    "name": "v1",
    "details": {"metrics": {"acc": 0.93, "n": 3}, "tags": ["prod", "fast"], "flag": True, "none": None},
    "files": [{"name": "clf.pkl", "size": 10}, {"name": "meta.json", "size": 2}],
    "models": ["iris", "wine"],
    "created_at": "2024-05-01T10:00:00Z",
}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({}, True),
        ({"name": "v1"}, True),
        ({"name": "v2"}, False),
        ({"details.metrics.acc": {"$gt": 0.9}}, True),
        ({"details.metrics.acc": {"$gt": 0.95}}, False),
        ({"details.metrics.n": 3.0}, True),
        ({"details.metrics.n": "3"}, False),
        ({"details.flag": 1}, False),
        ({"details.flag": True}, True),
        ({"details.metrics.acc": {"$gt": "0"}}, False),  # no cross-bracket comparison
        ({"models": "iris"}, True),
        ({"models": ["iris", "wine"]}, True),
        ({"models": ["wine", "iris"]}, False),
        ({"files.name": "meta.json"}, True),
        ({"files.size": {"$gt": 5}}, True),
        ({"files.1.name": "meta.json"}, True),
        ({"files.0.name": "meta.json"}, False),
        ({"details.none": None}, True),
        ({"details.absent": None}, True),
        ({"details.none": {"$exists": True}}, True),
        ({"details.absent": {"$ne": 1}}, True),
        ({"details.absent": {"$nin": [1]}}, True),
        ({"details.absent": {"$in": [None]}}, True),
        ({"models": {"$nin": ["iris"]}}, False),
        ({"name": {"$regex": "^V", "$options": "i"}}, True),
        ({"name": {"$regex": "^V"}}, False),
        ({"created_at": {"$gte": "2024-05-01", "$lt": "2024-06"}}, True),
        ({"$or": [{"name": "x"}, {"models": "wine"}]}, True),
        ({"$nor": [{"name": "x"}, {"models": "wine"}]}, False),
        ({"$and": [{"name": "v1"}, {"details.flag": False}]}, False),
        ({"$not": {"name": "v1"}}, False),
        ({"details.metrics.acc": {"$not": {"$lt": 0.5}}}, True),
        ({"details.metrics": {"acc": 0.93, "n": 3}}, True),
        ({"details.metrics": {"acc": 0.93}}, False),
    ],
)
def test_matches(flt: dict, expected: bool) -> None:
    assert matches(DOC, flt) is expected


@pytest.mark.parametrize("flt", MALFORMED_FILTERS, ids=[str(f) for f in MALFORMED_FILTERS])
def test_malformed_filters_are_one_line_usage_errors(flt: object) -> None:
    with pytest.raises(UsageError) as info:
        validate_filter(flt)
    assert "\n" not in str(info.value)


def test_error_messages_say_what_is_wrong() -> None:
    with pytest.raises(UsageError, match=r"unknown operator \$foo on 'a' \(supported: \$eq"):
        validate_filter({"a": {"$foo": 1}})
    with pytest.raises(UsageError, match=r"\$in on 'a' needs a list, got 5"):
        validate_filter({"a": {"$in": 5}})
    with pytest.raises(UsageError, match=r"invalid \$regex on 'a': "):
        validate_filter({"a": {"$regex": "("}})


def test_parse_filter() -> None:
    assert parse_filter('{"details.metrics.acc": {"$gt": 0.9}}') == {"details.metrics.acc": {"$gt": 0.9}}
    with pytest.raises(UsageError, match=r"^malformed --filter JSON: "):
        parse_filter("{name: 1}")
    with pytest.raises(UsageError, match=r"^malformed --filter JSON: expected an object"):
        parse_filter("[1, 2]")
    with pytest.raises(UsageError, match="unknown operator"):
        parse_filter('{"a": {"$near": 1}}')
