"""The global ``-b/--background`` and the commands' own (``depl new -b``: tests/runtime/test_deploy_background.py)."""

from __future__ import annotations

from typing import Any


def test_depl_new_documents_its_background_option(atoll: Any) -> None:
    out = atoll.ok("depl", "new", "--help").out
    assert "-b" in out and "--background" in out and "DEPLOYING" in out


def test_background_is_documented_per_command(atoll: Any) -> None:
    assert "--detach" in atoll.ok("--help").out
