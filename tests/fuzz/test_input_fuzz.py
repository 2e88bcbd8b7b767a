"""Property tests: whatever a user (or an attacker) types, Atoll answers with a clear error or a
sane value — never a traceback, a path outside the store, or unbounded recursion.

Bounded: each property runs a fixed number of examples (no time-based settings),
derandomized so that a failure reproduces.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll.api.records import parse_model
from atoll.cli.common import parse_json_option
from atoll.domain.names import NAME_PATTERN, validate_name
from atoll.domain.query import FIELD_OPERATORS, LOGICAL_OPERATORS, compile_filter, evaluate
from atoll.domain.records import FileSpec, Model
from atoll.domain.values import MAX_DEPTH, check_json_value
from atoll.errors import AtollError, InvalidNameError, UsageError, ValidationError
from atoll.files.base import check_key
from atoll.metadata.sql import SqlMetadataStore
from atoll.testing.memory import MemoryMetadataStore

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Text that includes what breaks naive code: newlines, NUL, lone surrogates, dots and slashes.
nasty_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list(string.ascii_lowercase + "-./\\\n\0 ") + ["\udc80", "\ud800", "é"])),
    st.sampled_from(["", ".", "..", "../x", "a\n", "a/b", "-a", "a-", "\udcff", "a" * 64, "nan", "/etc/passwd"]),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), nasty_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=30,
)


def _nested(depth: int, leaf: str = "1") -> str:
    return '{"a": ' * depth + leaf + "}" * depth


@FUZZ
@given(nasty_text)
def test_names_are_valid_dns_labels_or_refused(name: str) -> None:
    try:
        assert validate_name(name) == name
    except InvalidNameError as exc:
        assert exc.exit_code == 2
        return
    assert NAME_PATTERN.fullmatch(name) and len(name) <= 63 and not name.endswith("-")
    assert "\n" not in name and "/" not in name and ".." not in name


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "desc", "required", "max_mb", "extra"]), json_values))
def test_file_specs_are_plain_names_with_finite_limits_or_refused(data: dict[str, Any]) -> None:
    try:
        spec = parse_model(FileSpec, data, "--model-file")
    except ValidationError as exc:
        assert exc.exit_code == 2 and "\n" not in exc.message
        return
    assert math.isfinite(spec.max_mb) and spec.max_mb > 0
    root = Path("/store/root")
    assert (root / spec.name).resolve().parent == root  # a spec name never leaves its directory
    assert PurePosixPath(spec.name).name == spec.name and "\0" not in spec.name
    Model(name="m", model_files=[spec]).model_dump_json()  # and it can be stored


@FUZZ
@given(json_values)
def test_json_options_parse_to_storable_json_or_are_refused(value: Any) -> None:
    text = json.dumps(value)  # json.dumps writes NaN / Infinity, which JSON itself has no words for
    try:
        parsed = parse_json_option(text, "--details")
    except UsageError as exc:
        assert exc.exit_code == 2 and "\n" not in exc.message
        return
    check_json_value(parsed, "--details")
    json.dumps(parsed, allow_nan=False).encode("utf-8")  # plain JSON, valid UTF-8


@FUZZ
@given(st.text(max_size=200))
def test_any_text_given_as_a_json_option_is_json_or_one_usage_error(text: str) -> None:
    try:
        parse_json_option(text, "--params")
    except UsageError:
        pass


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH + 1, 2_000, 100_000])
def test_deep_json_options_are_refused_without_recursion_errors(depth: int) -> None:
    for text in (_nested(depth), "[" * depth + "]" * depth):
        if depth < MAX_DEPTH:
            parse_json_option(text, "--details")
        else:
            with pytest.raises(UsageError, match="deeper than"):
                parse_json_option(text, "--details")


@FUZZ
@given(nasty_text)
def test_file_store_keys_never_escape_the_store(key: str) -> None:
    try:
        check_key(key)
    except UsageError:
        return
    root = Path("/store/root")
    assert (root / key).resolve().is_relative_to(root)


# -- the filter language -----------------------------------------------------------------------

paths = st.one_of(st.sampled_from(["name", "desc", "details.acc", "details.tags", "model_files.name",
                                   "model_files.0.max_mb", "details", "revision"]), nasty_text)
operands = st.one_of(json_scalars, st.lists(json_scalars, max_size=3))


def _conditions(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    field_ops = st.dictionaries(st.sampled_from([*FIELD_OPERATORS, "$options", "$where", "$bogus"]),
                                st.one_of(operands, inner), min_size=1, max_size=2)
    return st.one_of(
        st.dictionaries(paths, st.one_of(operands, field_ops), max_size=2),
        st.dictionaries(st.sampled_from([*LOGICAL_OPERATORS, "$where", "$expr"]),
                        st.one_of(st.lists(inner, max_size=3), inner, operands), min_size=1, max_size=1),
    )


filters = st.recursive(st.dictionaries(paths, operands, max_size=2), _conditions, max_leaves=12)



@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[SqlMetadataStore, MemoryMetadataStore]:
    sql = SqlMetadataStore(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    memory = MemoryMetadataStore()
    for store in (sql, memory):
        store.create(Model(name="a", desc="first", model_files=[FileSpec(name="clf.pkl", max_mb=2)]))
        store.create(Model(name="b", desc="", model_files=[FileSpec(name="x"), FileSpec(name="y", max_mb=0.5)]))
        store.create(Model(name="c", desc="nan"))
    yield sql, memory
    sql.close()


@FUZZ
@given(filters)
def test_filters_compile_or_are_refused_and_sql_agrees_with_the_reference(
    stores: tuple[SqlMetadataStore, MemoryMetadataStore], flt: Any
) -> None:
    sql, memory = stores
    try:
        node = compile_filter(flt)
    except UsageError as exc:
        assert "\n" not in exc.message
        with pytest.raises(UsageError):
            sql.list(Model, filter=flt)
        return
    evaluate(node, {"name": "a", "details": {"acc": 1}})
    try:
        got = [m.name for m in sql.list(Model, filter=flt)]
    except AtollError as exc:  # pragma: no cover - would be a bug: show which filter
        pytest.fail(f"SQL store failed on a valid filter {flt!r}: {exc}")
    assert got == [m.name for m in memory.list(Model, filter=flt)]


@pytest.mark.parametrize("depth", [10, 200, 5_000])
def test_deeply_nested_filters_are_refused_not_overflowing(
    stores: tuple[SqlMetadataStore, MemoryMetadataStore], depth: int
) -> None:
    sql, _ = stores
    flt: Any = {"name": "a"}
    for _ in range(depth):
        flt = {"$not": flt}
    if depth <= 10:
        assert [m.name for m in sql.list(Model, filter=flt)] == ["a"]
    else:
        with pytest.raises(UsageError, match="deeper than"):
            sql.list(Model, filter=flt)
