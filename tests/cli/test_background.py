"""The global ``-b/--background`` where a command cannot honour it yet."""

from __future__ import annotations

from typing import Any


def test_depl_new_refuses_background_before_touching_anything(atoll: Any) -> None:
    line = atoll.fails(2, "-b", "depl", "new", "--nb", "predict.ipynb", "--name", "d1")
    assert "-b/--background is not supported for depl new yet" in line
    assert not (atoll.home / "run").exists()  # no router, no supervisor was started
    assert "not supported" in atoll.ok("depl", "new", "--help").out


def test_background_is_documented_per_command(atoll: Any) -> None:
    assert "--detach" in atoll.ok("--help").out
