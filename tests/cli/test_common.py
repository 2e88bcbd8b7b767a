"""The shared CLI helpers, in-process."""

from __future__ import annotations

import json

import pytest

from atoll.cli import common
from atoll.cli.common import CliState, parse_json_option, parse_kv, render, render_done
from atoll.domain.records import BuildVersion, Training
from atoll.errors import UsageError


@pytest.fixture(autouse=True)
def _state() -> None:
    common.set_state(CliState())
    yield
    common.set_state(CliState())


def test_parse_json_option() -> None:
    assert parse_json_option(None, "--details") is None
    assert parse_json_option('{"a": [1, 2]}', "--details", expect=dict) == {"a": [1, 2]}
    with pytest.raises(UsageError, match="--details: malformed JSON") as info:
        parse_json_option("{oops", "--details")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    with pytest.raises(UsageError, match="expected an object"):
        parse_json_option("[1]", "--filter", expect=dict)


def test_parse_kv() -> None:
    assert parse_kv(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    assert parse_kv(None) == {}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_kv(["novalue"])
    with pytest.raises(UsageError):
        parse_kv(["=v"])


def _training() -> Training:
    return Training(name="t1", proj="demo", notebook="train.ipynb", bvers=BuildVersion(name="latest", proj="demo"))


def test_json_list_collapses_snapshots_unless_expanded(capsys: pytest.CaptureFixture[str]) -> None:
    common.set_state(CliState(output="json"))
    render([_training()])
    doc = json.loads(capsys.readouterr().out)
    assert doc[0]["bvers"] == "demo:latest" and doc[0]["task"]["state"] == "WAITING"
    render([_training()], expand=True)
    assert json.loads(capsys.readouterr().out)[0]["bvers"]["name"] == "latest"
    render(_training())
    assert json.loads(capsys.readouterr().out)["bvers"]["proj"] == "demo"
    render_done("removed x", removed="train", name="t1")
    assert json.loads(capsys.readouterr().out) == {"removed": "train", "name": "t1", "message": "removed x"}


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    render([_training()])
    out = capsys.readouterr().out
    assert "t1" in out and "WAITING" in out and "latest" in out
    render_done("removed x")
    assert capsys.readouterr().out == "removed x\n"
    common.set_state(CliState(output="yaml"))
    render({"a": 1})
    assert capsys.readouterr().out == "a: 1\n"
