"""What ``train new --td`` prints after the training, in-process (the real command runs in tests/e2e)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from atoll.api import hot_update
from atoll.cli import common, target_deploy
from atoll.cli.common import CliState
from atoll.domain.records import BuildVersion, Deployment, ModelVersion, Task, TaskState, Training
from atoll.errors import AtollError, UsageError

BUILD = BuildVersion(name="latest", proj="p")
TARGET = Deployment(name="lazy", proj="p", notebook="nb.ipynb", bvers=BUILD)
FINISHED = Training(name="t", proj="p", notebook="nb.ipynb", bvers=BUILD, task=Task(state=TaskState.FINISHED))


@pytest.fixture(autouse=True)
def _state() -> Iterator[None]:
    common.set_state(CliState())
    yield
    common.set_state(CliState())


def _published(monkeypatch: pytest.MonkeyPatch, versions: list[str], rows: list[dict[str, Any]]) -> None:
    records = [ModelVersion(name=v, model="wine") for v in versions]
    monkeypatch.setattr(hot_update, "published_versions", lambda atoll, training: records)
    monkeypatch.setattr(hot_update, "update_target", lambda atoll, depl, found: rows)


def _row(replica: str, status: str = "loaded", error: str | None = None) -> dict[str, Any]:
    return {"replica": replica, "model_version": "wine:t", "status": status, "error": error}


def test_table_shows_a_row_per_replica(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _published(monkeypatch, ["t"], [_row("lazy-0"), _row("lazy-1")])
    target_deploy.update(None, TARGET, FINISHED, "table")  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    lines = [[word for word in line.split() if word not in ("│", "┃")] for line in out.splitlines()]  # a terminal gets borders
    assert ["replica", "model_version", "status", "error"] in lines
    assert ["lazy-0", "wine:t", "loaded"] in lines and ["lazy-1", "wine:t", "loaded"] in lines
    assert err == "deployment p:lazy: 2 replica(s) now serve wine:t by default\n"


def test_json_carries_the_rows_and_a_failed_replica_fails_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    common.set_state(CliState(output="json"))
    _published(monkeypatch, ["t"], [_row("lazy-0"), _row("lazy-1", "failed", "HTTP 500: out of memory")])
    with pytest.raises(AtollError, match="1 of 2 replica updates of deployment p:lazy did not load: "
                                         "lazy-1: HTTP 500: out of memory"):
        target_deploy.update(None, TARGET, FINISHED, "json")  # type: ignore[arg-type]
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "t" and shown["task"]["state"] == "FINISHED"
    assert shown["target_deploy"] == {"deployment": "p:lazy", "versions": ["wine:t"],
                                      "replicas": [_row("lazy-0"), _row("lazy-1", "failed", "HTTP 500: out of memory")]}


def test_nothing_published_fails_and_an_unfinished_training_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _published(monkeypatch, [], [])
    with pytest.raises(AtollError, match="training p:t published no model version: deployment p:lazy was not updated"):
        target_deploy.update(None, TARGET, FINISHED, "table")  # type: ignore[arg-type]

    def never(*args: Any) -> None:
        raise AssertionError("nothing is sent for a training that did not finish")

    monkeypatch.setattr(hot_update, "update_target", never)
    failed = FINISHED.model_copy(update={"task": Task(state=TaskState.FAILED, error="boom")})
    target_deploy.update(None, TARGET, failed, "table")  # type: ignore[arg-type]
    assert capsys.readouterr().out == ""


def test_detach_is_refused_before_anything_is_asked() -> None:
    with pytest.raises(UsageError, match="drop --detach/--background") as info:
        target_deploy.check(None, "lazy", "p", detach=True)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
