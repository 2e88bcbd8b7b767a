"""``atoll note``: Jupyter Lab on a project's build (token-protected, loopback only)."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Annotated

import typer

from atoll.api import ide as api
from atoll.cli.common import (
    DATASET, ENV, MOVERS, TAG, BackgroundOption, ProjOption, get_context, get_state, parse_kv, render,
    render_done,
)
from atoll.cli.taskopts import MountOption, ResourceProfileOption

app = typer.Typer(help="Jupyter Lab on a project's build.", invoke_without_command=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.callback()
def note(
    ctx: typer.Context,
    proj: ProjOption = None,
    tag: str = typer.Option("latest", *TAG, help="Build version to run on."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port on 127.0.0.1 (default: ide.port, 30088)."),
    edit: bool = typer.Option(False, "--edit", help="Work on the project's home dir itself as /app."),
    allow_root: bool = typer.Option(
        False, "--allow-root", help="Let Jupyter run as root (--edit of a dir root owns, on swarm; refused without)."
    ),
    dataset: Annotated[list[str] | None, typer.Option(*DATASET, help="MODEL:DATASET to stage (repeatable).")] = None,
    movers: Annotated[list[str] | None, typer.Option(*MOVERS, help="MODEL:VERSION to stage (repeatable).")] = None,
    env: Annotated[list[str] | None, typer.Option(*ENV, help="KEY=VALUE for the notebook kernels (repeatable).")] = None,
    detach: bool = typer.Option(False, "--detach", help="Return at once; stop it later with --stop."),
    background: BackgroundOption = False,
    stop: bool = typer.Option(False, "--stop", help="Stop the project's detached IDE."),
    resource_profile: ResourceProfileOption = None,
    mount: MountOption = None,
) -> None:
    """Start Jupyter Lab; without --detach it runs until Ctrl-C and then stops."""
    atoll = get_context(ctx)
    if stop:
        project = api.stop_ide(atoll, proj)
        render_done(f"stopped the IDE of project {project}", stopped="ide", proj=project)
        return
    session = api.start_ide(
        atoll,
        proj,
        tag=tag,
        port=port,
        edit=edit,
        allow_root=allow_root,
        datasets=dataset or [],
        movers=movers or [],
        env=parse_kv(env, "--env"),
        resource_profile=resource_profile,
        mounts=mount,
    )
    if get_state(ctx).output == "table":
        print(f"Jupyter Lab for project {session.project}: {session.url}", flush=True)
        if session.runs_as_root:
            print("warning: Jupyter runs as root", file=sys.stderr, flush=True)
    else:
        render(session)
    if detach or get_state(ctx).background:
        return
    print("Press Ctrl-C to stop it.", file=sys.stderr, flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        api.stop_ide(atoll, session.project)
        print(f"stopped the IDE of project {session.project}", file=sys.stderr, flush=True)
