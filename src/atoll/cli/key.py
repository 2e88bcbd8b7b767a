"""``atoll key``: API keys that let prediction requests through the router.

``key new`` prints the key once; Atoll keeps only a keyed hash of it, so it
cannot be shown again (make a new one and remove the lost one instead).
"""

from __future__ import annotations

from typing import Any

import typer

from atoll.api import keys as api
from atoll.api.projects import resolve_project_name
from atoll.cli.common import NAME, ProjOption, get_context, render_done
from atoll.cli.records import PROJ, add_record_commands, option

app = typer.Typer(help="API keys for prediction requests through the router.", no_args_is_help=True)


@app.command("new")
def new(
    ctx: typer.Context,
    proj: ProjOption = None,
    name: str | None = typer.Option(None, *NAME, help="Key name (default: a random one)."),
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


def _revoked(record: Any, **key: Any) -> None:
    render_done(f"revoked API key {record.ref}", removed="apikey", proj=record.proj, name=record.name)


add_record_commands(
    app,
    key=[option("name", str, *NAME, text="Key name."), PROJ],
    list_=(
        "List keys (name, project, deployment, expiry, prefix; never the key or its hash).",
        lambda atoll, filter_, proj: api.list_keys(atoll, proj, filter_),
    ),
    kind="apikey",
    list_options=[option("proj", str | None, "--proj", default=None, text="Only keys of this project (default: all).")],
    rm=(
        "Revoke a key (the router refuses it within a second).",
        lambda atoll, name, proj: api.delete_key(atoll, resolve_project_name(atoll, proj), name),
    ),
    report=_revoked,
    order=("list", "rm"),
)
