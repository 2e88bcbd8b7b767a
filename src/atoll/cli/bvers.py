"""``atoll bvers``: build versions of a project (created by ``atoll proj build``)."""

from __future__ import annotations

import typer

from atoll.api import records as api
from atoll.api.projects import resolve_project_name
from atoll.cli.common import confirm, get_context, parse_json_option, render, render_done
from atoll.domain.records import BuildVersion

app = typer.Typer(help="Build versions of projects.", no_args_is_help=True)

PROJ_HELP = "Project (default: the project homed in the working dir, else project.working_project)."


@app.command("info")
def info(
    ctx: typer.Context,
    tag: str = typer.Option(..., "--tag", "--name", help="Build version tag."),
    proj: str | None = typer.Option(None, "--proj", help=PROJ_HELP),
) -> None:
    """Show a build version."""
    atoll = get_context(ctx)
    render(api.get_record(atoll, BuildVersion, tag, resolve_project_name(atoll, proj)))


@app.command("rm")
def rm(
    ctx: typer.Context,
    tag: str = typer.Option(..., "--tag", "--name", help="Build version tag."),
    proj: str | None = typer.Option(None, "--proj", help=PROJ_HELP),
) -> None:
    """Remove a build version and what was built for it."""
    atoll = get_context(ctx)
    record = api.remove_record(atoll, BuildVersion, tag, resolve_project_name(atoll, proj), confirm=confirm)
    render_done(f"removed build version {record.ref}", removed="bvers", proj=record.proj, name=record.name)


@app.command("list")
def list_(
    ctx: typer.Context,
    proj: str | None = typer.Option(None, "--proj", help=PROJ_HELP),
    filter_: str | None = typer.Option(None, "--filter", help="MongoDB-style JSON query."),
    expand: bool = typer.Option(False, "--expand", help="Show whole records."),
) -> None:
    """List the build versions of a project."""
    atoll = get_context(ctx)
    scope = resolve_project_name(atoll, proj)
    records = api.list_records(atoll, BuildVersion, scope, parse_json_option(filter_, "--filter", expect=dict))
    render(records, kind="bvers", expand=expand)
