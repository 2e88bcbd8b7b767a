"""``atoll key``: API keys that let prediction requests through the router.

``key new`` prints the key once; Atoll keeps only a keyed hash of it, so it
cannot be shown again (make a new one and remove the lost one instead).
"""

from __future__ import annotations

import typer

from atoll.api import keys as api
from atoll.api.projects import resolve_project_name
from atoll.cli.common import (
    ExpandOption,
    FilterOption,
    ProjOption,
    get_context,
    parse_filter,
    render,
    render_done,
)

app = typer.Typer(help="API keys for prediction requests through the router.", no_args_is_help=True)


@app.command("new")
def new(
    ctx: typer.Context,
    proj: ProjOption = None,
    name: str | None = typer.Option(None, "--name", help="Key name (default: a random one)."),
    deploy: str | None = typer.Option(None, "--deploy", help="Only this deployment (default: all of the project)."),
    expires: float | None = typer.Option(None, "--expires", help="Days until the key stops working."),
) -> None:
    """Make a key and print it once (send it as `Authorization: Bearer <key>`)."""
    atoll = get_context(ctx)
    record, key = api.new_key(atoll, resolve_project_name(atoll, proj), name, deploy, expires)
    target = record.proj + (f"/{record.deploy}" if record.deploy else "")
    expiry = f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else ""
    render_done(
        f"API key {record.name} for {target}{expiry}:\n{key}\n"
        "Keep it now: Atoll stores only a hash and cannot show it again.",
        created="apikey",
        name=record.name,
        proj=record.proj,
        deploy=record.deploy,
        expires_at=record.expires_at,
        prefix=record.prefix,
        key=key,
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    proj: str | None = typer.Option(None, "--proj", help="Only keys of this project (default: all)."),
    filter_: FilterOption = None,
    expand: ExpandOption = False,
) -> None:
    """List keys (name, project, deployment, expiry, prefix; never the key or its hash)."""
    render(api.list_keys(get_context(ctx), proj, parse_filter(filter_)), kind="apikey", expand=expand)


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Key name."),
    proj: ProjOption = None,
) -> None:
    """Revoke a key (the router refuses it within a second)."""
    atoll = get_context(ctx)
    record = api.delete_key(atoll, resolve_project_name(atoll, proj), name)
    render_done(f"revoked API key {record.ref}", removed="apikey", proj=record.proj, name=record.name)
