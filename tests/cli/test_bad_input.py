"""Regression tests for input that used to be saved wrongly or crash (issue 12, item 7).

Each case is refused with exit 2 and one ``error:`` line before anything is
saved, or — for a record damaged in the store — reported and skipped by
``list`` and removable by ``rm``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest

from cli.conftest import ATOLL


def _models(atoll) -> list[str]:
    return [m["name"] for m in atoll.js("model", "list")]


@pytest.mark.parametrize(
    "spec",
    [
        '{"name": "clf.pkl", "max_mb": Infinity}',
        '{"name": "clf.pkl", "max_mb": NaN}',
        '{"name": "clf.pkl", "max_mb": 1e999}',
        '{"name": "clf.pkl", "max_mb": -Infinity}',
        '{"name": "clf\\u0000.pkl"}',
        '{"name": "clf.pkl", "desc": "\\ud800"}',
    ],
)
def test_non_finite_or_broken_file_specs_are_refused_before_saving(atoll, spec: str) -> None:
    line = atoll.fails(2, "model", "new", "--name", "m", "--model-file", spec)
    assert "internal error" not in line
    assert _models(atoll) == []


def test_names_ending_in_a_newline_are_refused(atoll) -> None:
    assert "invalid model name" in atoll.fails(2, "model", "new", "--name", "abc\n")
    atoll.ok("model", "new", "--name", "abc")
    assert "invalid" in atoll.fails(2, "ds", "new", "--model", "abc", "--name", "d\n")
    assert _models(atoll) == ["abc"]


@pytest.mark.parametrize(
    "details",
    ['{"acc": NaN}', '{"acc": Infinity}', '{"x": "\\udc80"}', '{"a": ' * 2000 + "1" + "}" * 2000],
)
def test_details_nan_surrogates_and_deep_nesting_are_refused(atoll, details: str) -> None:
    atoll.ok("model", "new", "--name", "m")
    line = atoll.fails(2, "ds", "new", "--model", "m", "--name", "d", "--details", details)
    assert "internal error" not in line
    assert atoll.js("ds", "list") == []


def test_deep_filters_are_refused_without_a_stack_overflow(atoll) -> None:
    atoll.ok("model", "new", "--name", "m")
    deep = '{"$not": ' * 200 + '{"name": "m"}' + "}" * 200
    line = atoll.fails(2, "model", "list", "--filter", deep)
    assert "deeper than" in line
    shallow = '{"$not": ' * 4 + '{"name": "m"}' + "}" * 4  # an even number of $not: the model matches
    assert [m["name"] for m in atoll.js("model", "list", "--filter", shallow)] == ["m"]


def test_arguments_that_are_not_utf8_are_refused(atoll, tmp_path) -> None:
    env = atoll.environ()
    proc = subprocess.run(
        [os.fsencode(ATOLL), b"model", b"new", b"--name", b"m", b"--desc", b"caf\xe9"],
        capture_output=True, env=env, cwd=atoll.cwd, check=False, timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert err.startswith("error: ") and "UTF-8" in err and "Traceback" not in err
    assert _models(atoll) == []


def _damage(atoll, name: str, doc: str) -> None:
    with sqlite3.connect(atoll.home / "atoll.db") as db:
        db.execute("UPDATE records SET doc = ? WHERE kind = 'model' AND name = ?", (doc, name))


@pytest.mark.parametrize(
    "doc",
    [
        '{"name": "bad", "model_files": [{"name": "x", "max_mb": null}]',  # broken JSON
        '{"name": "bad", "model_files": [{"name": "x", "max_mb": null}]}',  # valid JSON, no longer valid
    ],
)
def test_a_damaged_record_is_skipped_by_list_and_removable(atoll, doc: str) -> None:
    for name in ("good", "bad", "also-good"):
        atoll.ok("model", "new", "--name", name)
    _damage(atoll, "bad", doc)

    res = atoll("-o", "json", "model", "list")
    assert res.code == 0, res.err
    assert [m["name"] for m in res.json()] == ["good", "also-good"]
    assert "damaged" in res.err and "Traceback" not in res.err
    res = atoll("-o", "json", "model", "list", "--filter", '{"name": {"$regex": "good"}}')
    assert res.code == 0, res.err
    assert [m["name"] for m in res.json()] == ["good", "also-good"]

    line = atoll.fails(1, "model", "info", "--name", "bad")
    assert "damaged" in line

    res = atoll("model", "rm", "--name", "bad")
    assert res.code == 0, res.err
    assert _models(atoll) == ["good", "also-good"]
    assert "damaged" not in atoll("model", "list").err
