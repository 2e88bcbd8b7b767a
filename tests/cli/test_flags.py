"""Flags as users of the modelled framework type them: short forms, aliases, defaults.

The first test walks every command of ``atoll`` and fails when two options of
one command share a flag (``depl new -n`` is --n-tasks, so its --name has no
``-n``; ``-m`` is --mount on train/depl/note). The others drive the real
``atoll`` with the short forms.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer

from atoll.cli.main import app

Command = Any  # a click command of Typer's vendored click


def _commands(command: Command, path: str = "atoll") -> list[tuple[str, Command]]:
    found = [(path, command)]
    for name in getattr(command, "list_commands", lambda ctx: [])(None):
        found += _commands(command.get_command(None, name), f"{path} {name}")
    return found


def test_no_flag_means_two_things_within_one_command() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 60  # every subject was loaded, not just the root
    clashes = {}
    for path, command in commands:
        flags = Counter(flag for param in command.params for flag in [*param.opts, *param.secondary_opts]
                        if flag.startswith("-"))
        flags.update(["-h", "--help"])  # the help option, not among params
        taken = [flag for flag, n in flags.items() if n > 1]
        if taken:
            clashes[path] = taken
    assert clashes == {}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("train new", {"-n": "--name", "-t": "--tag", "-e": "--env", "-p": "--params", "-b": "--background"}),
        ("depl new", {"-n": "--n-tasks", "-t": "--tag", "-e": "--env"}),
        ("note", {"-t": "--tag", "-e": "--env", "-p": "--port", "-b": "--background"}),
        ("ds new", {"-n": "--name", "-m": "--model", "-d": "--details", "-p": "--path", "-c": "--compress"}),
        ("movers list", {"-m": "--model", "-f": "--filter", "-e": "--expand"}),
        ("proj new", {"-n": "--name", "-m": "--model", "-d": "--desc"}),
        ("proj build", {"-n": "--name", "-t": "--tag"}),
        ("bvers rm", {"-t": "--tag"}),
        ("tchest new", {"-n": "--name", "-u": "--user"}),
    ],
)
def test_short_forms_mean_what_the_modelled_framework_meant(command: str, expected: dict[str, str]) -> None:
    found = dict(_commands(typer.main.get_command(app)))[f"atoll {command}"]
    meaning = {short: next(flag for flag in param.opts if flag.startswith("--"))
               for param in found.params for short in param.opts if len(short) == 2}
    assert {short: meaning.get(short) for short in expected} == expected


def test_catalog_records_with_the_short_forms(atoll: Any, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "rows.csv").write_text("a,b\n1,2\n")
    model = atoll.js("-l", "WARN", "model", "new", "-n", "iris", "-d", "Iris classifier")
    assert model["desc"] == "Iris classifier"
    assert atoll.js("proj", "new", "-n", "demo", "-m", "iris", "-d", "the demo")["models"] == ["iris"]
    ds = atoll.js("ds", "new", "-m", "iris", "-n", "d1", "-p", str(files), "-d", '{"rows": 1}', "-c")
    assert (ds["details"], ds["compressed"]) == ({"rows": 1}, True)
    atoll.ok("movers", "new", "-m", "iris", "-n", "v1", "-p", str(files), "--ds", "d1",
             "-d", '{"metrics": {"acc": 0.9}}')
    [version] = atoll.js("movers", "list", "-m", "iris", "--ds", "d1", "-f", '{"details.metrics.acc": 0.9}', "-e")
    assert (version["name"], version["dataset"]["name"]) == ("v1", "d1")  # -e: the whole dataset snapshot
    chest = atoll.js("tchest", "new", "-n", "db", "-u", "atoll", "--pswd-stdin", input="s3cret\n")
    assert chest["user"] == "atoll" and "s3cret" not in json.dumps(chest)
    assert "invalid value" in atoll.fails(2, "-l", "LOUD", "model", "list").lower()


@pytest.fixture
def build(atoll: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Project ``demo`` homed in the working dir, with a build record ``latest`` whose files are ``app/``."""
    from atoll.api import models, projects
    from atoll.api.context import AtollContext
    from atoll.config import load_config
    from atoll.domain.records import BuildVersion

    monkeypatch.setenv("ATOLL_HOME", str(atoll.home))
    root = atoll.cwd.parent / "build"
    ctx = AtollContext(load_config(atoll.cwd), cwd=atoll.cwd)
    try:
        models.new_model(ctx, "iris")
        projects.new_project(ctx, "demo", models=["iris"], home_dir=str(atoll.cwd))
        ctx.metadata.create(BuildVersion(name="latest", proj="demo", location=str(root)))
    finally:
        ctx.close()
    (root / "app" / "notebooks").mkdir(parents=True)
    return root / "app"


def test_defaults_of_bvers_tag_and_of_the_notebooks(atoll: Any, build: Path) -> None:
    assert atoll.js("bvers", "info")["name"] == "latest"  # --tag latest, of the project homed here
    line = atoll.fails(2, "train", "new")
    assert "--nb" in line and "notebooks/train.ipynb" in line
    assert "notebooks/predict.ipynb" in atoll.fails(2, "depl", "new", "-t", "latest")
    # In the build but not a notebook: the default was taken and read (nothing started);
    # with -b nothing but the error reaches the terminal, and the log file has it too.
    (build / "notebooks" / "train.ipynb").write_text("not json")
    res = atoll("train", "new", "-b", "-n", "t1", "-t", "latest", "-e", "A=1", "-p", '{"x": 1}')
    assert res.code == 2 and res.out == ""
    [line] = res.err.splitlines()
    assert line.startswith("error: ") and "notebooks/train.ipynb: not a Jupyter notebook" in line
    assert line in (atoll.home / "logs" / "atoll.log").read_text()
    # In the project's home dir only: taken, then the build says it lacks it.
    (atoll.cwd / "notebooks").mkdir()
    (atoll.cwd / "notebooks" / "predict.ipynb").write_text("{}")
    line = atoll.fails(1, "depl", "new", "--mv", "iris:v9", "--env-var", "A=1")
    assert "has no notebook notebooks/predict.ipynb" in line
    (build / "notebooks" / "predict.ipynb").write_text("{}")
    assert "v9" in atoll.fails(1, "depl", "new", "--mv", "iris:v9")  # past the notebook: the version is missing
