"""``atoll proj``: projects, and building them (``proj build``)."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.api import projects as api
from atoll.cli.common import DESC, MODEL, NAME, TAG, confirm, get_context, get_state, render, render_done
from atoll.cli.records import add_record_commands, option
from atoll.errors import UsageError

app = typer.Typer(help="Projects: code hosted in Atoll.", no_args_is_help=True)

NAME_HELP = "Project name (default: the project homed in the working dir, else project.working_project)."


@app.command("new")
def new(
    ctx: typer.Context,
    name: str = typer.Option(..., *NAME, help="Project name."),
    desc: str = typer.Option("", *DESC, help="Description."),
    model: Annotated[list[str] | None, typer.Option(*MODEL, help="Model the project uses (repeatable).")] = None,
    home_dir: str | None = typer.Option(None, "--home-dir", help="Local directory holding the code."),
    git_repo: str | None = typer.Option(None, "--git-repo", help="Git repository URL."),
    docker_repo: str | None = typer.Option(None, "--docker-repo", help="Docker repository of pre-built images."),
) -> None:
    """Record a new project."""
    render(api.new_project(get_context(ctx), name, desc, model or [], home_dir, git_repo, docker_repo))


@app.command("update")
def update(
    ctx: typer.Context,
    name: str | None = typer.Option(None, *NAME, help=NAME_HELP),
    desc: str | None = typer.Option(None, *DESC, help="New description."),
    model: Annotated[list[str] | None, typer.Option(*MODEL, help="Models (repeatable; replaces the list).")] = None,
    home_dir: str | None = typer.Option(None, "--home-dir", help="Local directory holding the code."),
    git_repo: str | None = typer.Option(None, "--git-repo", help='Git repository URL ("" clears it).'),
    docker_repo: str | None = typer.Option(None, "--docker-repo", help='Docker repository ("" clears it).'),
) -> None:
    """Change a project (unspecified fields are kept)."""
    render(api.update_project(get_context(ctx), name, desc, model or None, home_dir, git_repo, docker_repo))


def _report(removal: api.ProjectRemoval, name: str | None) -> None:
    render_done(
        f"removed project {removal.project} ({len(removal.deployments)} deployment(s), "
        f"{len(removal.trainings)} training(s), {len(removal.builds)} build(s))",
        removed="project",
        name=removal.project,
        deployments=removal.deployments,
        trainings=removal.trainings,
        builds=removal.builds,
    )


add_record_commands(
    app,
    key=[option("name", str | None, *NAME, "--proj", default=None, text=NAME_HELP)],
    info=("Show a project.", api.get_project),
    rm=(
        "Remove a project, stopping its deployments and removing its trainings and builds (asks first).",
        lambda atoll, name: api.delete_project(atoll, name, confirm=confirm),
    ),
    report=_report,
    list_=("List projects.", lambda atoll, filter_, model: api.list_projects(atoll, model, filter_)),
    kind="project",
    list_options=[option("model", str | None, *MODEL, default=None, text="Only projects using this model.")],
)


@app.command("build")
def build(
    ctx: typer.Context,
    name: str | None = typer.Option(None, *NAME, "--proj", help=NAME_HELP),
    tag: str = typer.Option("latest", *TAG, help="Build version tag."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not reuse cached layers/environments."),
    from_here: bool = typer.Option(False, "--from-here", help="Build from the working directory (default)."),
    from_home: bool = typer.Option(False, "--from-home", help="Build from the project's home dir."),
    from_git: bool = typer.Option(False, "--from-git", help="Build from the project's git repository."),
    git_ref: str | None = typer.Option(None, "--git-ref", help="Branch, tag or commit for --from-git."),
    pre_built: bool = typer.Option(False, "--pre-built", help="Use <docker_repo>:<tag> as is."),
) -> None:
    """Build a project version (an image, or an environment on the local runtime)."""
    from atoll.api.builds import build_project

    chosen = [s for s, on in (("here", from_here), ("home", from_home), ("git", from_git), ("pre-built", pre_built)) if on]
    if len(chosen) > 1:
        raise UsageError("choose at most one of --from-here, --from-home, --from-git, --pre-built")
    source = chosen[0] if chosen else "here"
    if git_ref is not None and source != "git":
        raise UsageError("--git-ref needs --from-git")
    state = get_state(ctx)

    def log(line: str) -> None:
        if state.output == "table":
            typer.echo(line, err=True)

    record = build_project(get_context(ctx), name, tag=tag, no_cache=no_cache, source=source, git_ref=git_ref, log=log)
    render(record)
