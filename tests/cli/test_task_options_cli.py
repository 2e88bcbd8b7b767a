"""``--resource-profile/--rp`` and ``--mount/-m`` on the commands that start tasks: refused before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

PROFILES = "container_manager:\n  resource_profiles:\n    small: {cpu_limit: 1, memory_limit: 512}\n" \
           "    big: {memory_limit: 4096}\n"

TASK_COMMANDS = [
    ("train", "new", "--nb", "notebooks/train.ipynb"),
    ("depl", "new", "--nb", "notebooks/predict.ipynb"),
    ("note",),
]


@pytest.fixture
def configured(atoll):
    (atoll.cwd / "atoll.yaml").write_text(PROFILES)
    return atoll


@pytest.mark.parametrize(("command", "flag"), zip(TASK_COMMANDS, ["--rp", "--resource-profile", "--rp"]),
                         ids=lambda c: c[0] if isinstance(c, tuple) else c)
def test_an_unknown_profile_is_a_usage_error_listing_the_defined_ones(configured, command, flag) -> None:
    line = configured.fails(2, *command, flag, "huge")
    assert line == ("error: --resource-profile 'huge': not one of container_manager.resource_profiles "
                    "(defined: big, small)")


def test_train_new_refuses_mounts_inside_the_layout_duplicated_or_missing(configured, tmp_path: Path) -> None:
    source = tmp_path / "features"
    source.mkdir()
    command = TASK_COMMANDS[0]
    assert "inside Atoll's own layout" in configured.fails(2, *command, "-m", f"{source}:/data/features")
    assert "given twice" in configured.fails(2, *command, "-m", f"{source}:/mnt/f", "-m", f"{source}:/mnt/f:ro")
    assert "does not exist on this host" in configured.fails(2, *command, "-m", f"{tmp_path}/nope:/mnt/f")
    assert "host paths only" in configured.fails(2, *command, "-m", "a-volume:/mnt/f")


@pytest.mark.parametrize("command", TASK_COMMANDS[1:], ids=lambda c: c[0])
def test_depl_new_and_note_refuse_bad_mounts_too(configured, command, tmp_path: Path) -> None:
    assert "inside Atoll's own layout" in configured.fails(2, *command, "-m", f"{tmp_path}:/mnt/f:ro", "--mount",
                                                           f"{tmp_path}:/model")


def test_isle_setup_takes_a_profile_where_the_island_is_a_container(configured) -> None:
    line = configured.fails(2, "isle", "db", "setup", "--rp", "huge")
    assert "(defined: big, small)" in line
    line = configured.fails(2, "isle", "router", "setup", "--resource-profile", "small")
    assert "the router island runs as a process of this host here" in line
    line = configured.fails(2, "isle", "db", "status", "--rp", "small")
    assert "goes with `atoll isle db setup` only" in line
