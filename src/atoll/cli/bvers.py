"""``atoll bvers``: build versions of a project (created by ``atoll proj build``)."""

from __future__ import annotations

import typer

from atoll.api import records as api
from atoll.api.projects import resolve_project_name
from atoll.cli.common import (
    ExpandOption,
    FilterOption,
    ProjOption,
    confirm,
    get_context,
    parse_filter,
    render,
    render_removed,
)
from atoll.domain.records import BuildVersion

app = typer.Typer(help="Build versions of projects.", no_args_is_help=True)


@app.command("info")
def info(
    ctx: typer.Context,
    tag: str = typer.Option(..., "--tag", "--name", help="Build version tag."),
    proj: ProjOption = None,
) -> None:
    """Show a build version."""
    atoll = get_context(ctx)
    render(api.get_record(atoll, BuildVersion, tag, resolve_project_name(atoll, proj)))


@app.command("rm")
def rm(
    ctx: typer.Context,
    tag: str = typer.Option(..., "--tag", "--name", help="Build version tag."),
    proj: ProjOption = None,
) -> None:
    """Remove a build version and what was built for it."""
    atoll = get_context(ctx)
    record = api.remove_record(atoll, BuildVersion, tag, resolve_project_name(atoll, proj), confirm=confirm)
    render_removed("build version", "bvers", record)


@app.command("list")
def list_(
    ctx: typer.Context,
    proj: ProjOption = None,
    filter_: FilterOption = None,
    expand: ExpandOption = False,
) -> None:
    """List the build versions of a project."""
    atoll = get_context(ctx)
    scope = resolve_project_name(atoll, proj)
    records = api.list_records(atoll, BuildVersion, scope, parse_filter(filter_))
    render(records, kind="bvers", expand=expand)
