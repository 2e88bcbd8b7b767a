"""``atoll isle <name> build|setup|status|stop``: the services Atoll runs (router, db, files, registry, ui)."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from atoll.api import islands as api
from atoll.api.deployments import recover_deployments
from atoll.cli.common import get_context, render
from atoll.cli.taskopts import ResourceProfileOption
from atoll.errors import UsageError

app = typer.Typer(help="Islands: services Atoll runs next to the tasks (router, db, files, registry, ui).", no_args_is_help=True)


class Action(str, Enum):
    build = "build"
    setup = "setup"
    status = "status"
    stop = "stop"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # build progress: stdout stays the result


def _island_command(island: str) -> None:
    def command(
        ctx: typer.Context,
        action: Annotated[Action, typer.Argument(help="build (its image, up front) | setup | status | stop")],
        self_signed: Annotated[bool, typer.Option(
            "--self-signed",
            help="router setup: serve HTTPS with a self-signed certificate made under $ATOLL_HOME/tls "
                 "(sets router.tls_cert/tls_key; prints the certificate's path for clients)",
        )] = False,
        resource_profile: ResourceProfileOption = None,
    ) -> None:
        atoll = get_context(ctx)
        if self_signed and (island != "router" or action is not Action.setup):
            raise UsageError("--self-signed goes with `atoll isle router setup` only")
        if resource_profile is not None and action is not Action.setup:
            raise UsageError(f"--resource-profile goes with `atoll isle {island} setup` only")
        if action is Action.build:
            result = api.build_island(atoll, island, _log)
        elif action is Action.setup:
            if island == "router":  # what it will route to: no deployment without its supervisor
                recover_deployments(atoll)
            result = api.setup_island(atoll, island, self_signed=self_signed, resource_profile=resource_profile)
        elif action is Action.stop:
            result = api.stop_island(atoll, island)
        else:
            if island == "router":
                recover_deployments(atoll)
            result = api.island_status(atoll, island)
        render(result)

    command.__doc__ = f"Build the image of, set up, show or stop the {island} island."
    app.command(island)(command)


for _name in api.island_names():
    _island_command(_name)
