"""The global options of the running ``atoll`` command, read by every CLI module.

Kept apart from :mod:`atoll.cli.common` so that :mod:`atoll.cli.output`, which
common uses to render, can read the output format without importing common.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from atoll.api.context import AtollContext
from atoll.config import Config

OutputFormat = Literal["table", "json", "yaml"]


@dataclass
class CliState:
    """The global options of one ``atoll`` invocation."""

    log_level: str | None = None
    debug: bool = False
    pretty: bool = False
    skip_questions: bool = False
    background: bool = False
    output: OutputFormat = "table"
    config: Config | None = field(default=None, repr=False)
    atoll: AtollContext | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.atoll is not None:
            self.atoll.close()
            self.atoll = None


# The state of the running command; also read by the error handler in main.py,
# which runs after the Typer context is gone.
_current: CliState | None = None


def set_state(state: CliState) -> None:
    global _current
    _current = state


def current_state() -> CliState:
    """The global options of the running command (defaults outside a command)."""
    return _current if _current is not None else CliState()


__all__ = ["CliState", "OutputFormat", "current_state", "set_state"]
