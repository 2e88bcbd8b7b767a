"""What a free-form JSON value may hold, and the SQL store refusing what JSON cannot carry."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.domain.records import Model
from atoll.domain.values import MAX_DEPTH, check_json_value, check_text
from atoll.errors import ValidationError
from atoll.metadata.sql import SqlMetadataStore


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), 2**63, -(2**63) - 1, "\udc80", {"\ud800": 1}, {1: "x"}, b"bytes",
     {"a": [1, {"b": float("nan")}]}],
)
def test_values_json_cannot_carry_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        check_json_value({"v": value}, "--details")


def test_plain_json_passes_and_depth_is_bounded_without_recursion() -> None:
    value = {"a": [1, 2.5, "é", None, True, {"b": 2**63 - 1}]}
    assert check_json_value(value, "x") is value
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError, match=f"deeper than {MAX_DEPTH}"):
        check_json_value(deep, "x")
    assert check_text("café", "x") == "café"


def test_the_sql_store_refuses_text_that_is_not_unicode(tmp_path: Path) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with pytest.raises(ValidationError, match="cannot be stored"):
            store.create(Model(name="m", desc="caf\udce9"))
        assert store.list(Model) == []
    finally:
        store.close()
