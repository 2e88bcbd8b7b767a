"""``atoll isle <name> setup|status|stop``: the services Atoll runs (router, db, files, registry)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from atoll.api import islands as api
from atoll.cli.common import get_context, render
from atoll.ui.island import LocalUiIsland

app = typer.Typer(help="Islands: services Atoll runs next to the tasks (router, db, files, registry).", no_args_is_help=True)


class Action(str, Enum):
    setup = "setup"
    status = "status"
    stop = "stop"


def _island_command(island: str) -> None:
    def command(
        ctx: typer.Context,
        action: Annotated[Action, typer.Argument(help="setup | status | stop")],
    ) -> None:
        atoll = get_context(ctx)
        if action is Action.setup:
            result = api.setup_island(atoll, island)
        elif action is Action.stop:
            result = api.stop_island(atoll, island)
        else:
            result = api.island_status(atoll, island)
        render(result)

    command.__doc__ = f"Set up, show or stop the {island} island."
    app.command(island)(command)


api.ISLANDS.setdefault("ui", {"local": LocalUiIsland})  # ported onto the islands package at merge
for _name in sorted(api.ISLANDS):
    _island_command(_name)
