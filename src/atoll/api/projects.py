"""Projects: code hosted in Atoll, referring to the models it trains and serves.

When a command omits the project name, the project is the one whose home
dir is the working directory, else ``project.working_project`` from the
configuration, else the command fails with a hint (:func:`resolve_project_name`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.api.context import AtollContext
from atoll.api.keys import delete_project_keys
from atoll.api.records import (
    Confirm,
    Filter,
    build,
    containers_or_none,
    create_named,
    read_for_removal,
    remove_records,
)
from atoll.domain.names import validate_name
from atoll.domain.records import BuildVersion, Deployment, Model, Project, Record, Training, utcnow
from atoll.errors import ConflictError, NotFoundError, UsageError

NO_PROJECT = (
    "no project given: use --name/--proj, run from a project's home dir, or set project.working_project"
)


def resolve_project_name(ctx: AtollContext, name: str | None) -> str:
    """The given name, else the project homed in ``ctx.cwd``, else ``project.working_project``.

    Raises:
        InvalidNameError: the given name is malformed.
        UsageError: nothing designates a project.
    """
    if name is not None:
        return validate_name(name, "project name")
    cwd = str(ctx.cwd)
    homed = [p.name for p in ctx.metadata.list(Project, filter={"home_dir": cwd})]
    if len(homed) == 1:
        return homed[0]
    if len(homed) > 1:
        raise UsageError(f"several projects have {cwd} as home dir ({', '.join(homed)}): use --name/--proj")
    working = ctx.config.project.working_project
    if working:
        return validate_name(working, "project.working_project")
    raise UsageError(NO_PROJECT)


def _check_models(ctx: AtollContext, models: list[str]) -> list[str]:
    out: list[str] = []
    for model in models:
        validate_name(model, "model name")
        if not ctx.metadata.exists(Model, model):
            raise NotFoundError(f"model {model} does not exist")
        if model not in out:
            out.append(model)
    return out


def _home_dir(path: str | None) -> str | None:
    if path is None or path == "":
        return None
    home = Path(path).expanduser().resolve()
    if not home.is_dir():
        raise UsageError(f"--home-dir {path}: not a directory")
    return str(home)


def new_project(
    ctx: AtollContext,
    name: str,
    desc: str = "",
    models: list[str] | None = None,
    home_dir: str | None = None,
    git_repo: str | None = None,
    docker_repo: str | None = None,
) -> Project:
    """Record a new project.

    Raises:
        InvalidNameError: bad project or model name.
        NotFoundError: a referenced model does not exist.
        UsageError: the home dir is not a directory.
        AlreadyExistsError: a project of that name exists.
    """
    return create_named(ctx, Project, name, lambda: {
        "desc": desc or "",
        "models": _check_models(ctx, models or []),
        "home_dir": _home_dir(home_dir),
        "git_repo": git_repo or None,
        "docker_repo": docker_repo or None,
    })


def get_project(ctx: AtollContext, name: str | None = None) -> Project:
    """The named (or resolved) project."""
    return ctx.metadata.get(Project, resolve_project_name(ctx, name))


def list_projects(
    ctx: AtollContext, model: str | None = None, filter: Filter | None = None
) -> list[Project]:
    """Projects, optionally only those referring to ``model``."""
    projects = ctx.metadata.list(Project, filter=filter)
    if model is not None:
        validate_name(model, "model name")
        projects = [p for p in projects if model in p.models]
    return projects


def update_project(
    ctx: AtollContext,
    name: str | None = None,
    desc: str | None = None,
    models: list[str] | None = None,
    home_dir: str | None = None,
    git_repo: str | None = None,
    docker_repo: str | None = None,
) -> Project:
    """Change the given fields only (``models`` replaces the list; ``""`` clears a repo)."""
    project = get_project(ctx, name)
    changes: dict[str, Any] = {"modified_at": utcnow()}
    if desc is not None:
        changes["desc"] = desc
    if models:
        changes["models"] = _check_models(ctx, models)
    if home_dir is not None:
        changes["home_dir"] = _home_dir(home_dir)
    if git_repo is not None:
        changes["git_repo"] = git_repo or None
    if docker_repo is not None:
        changes["docker_repo"] = docker_repo or None
    return ctx.metadata.update(build(Project, **{**project.model_dump(), **changes}))


@dataclass
class ProjectRemoval:
    """What removing a project took with it."""

    project: str
    deployments: list[str] = field(default_factory=list)
    trainings: list[str] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)


def delete_project(ctx: AtollContext, name: str | None = None, confirm: Confirm | None = None) -> ProjectRemoval:
    """Remove a project with its deployments (stopped), trainings and builds.

    Deployments go first (they run on builds), then trainings, then builds,
    then the project record, so an interrupted removal can be rerun.

    Raises:
        NotFoundError: no such project.
        ConflictError: it has builds, trainings or deployments and the removal
            was not confirmed.
    """
    project_name = resolve_project_name(ctx, name)
    validate_name(project_name, "project name")
    read_for_removal(ctx, Project, project_name)  # a damaged project is removed by its name too
    depls: list[Record] = list(ctx.metadata.list(Deployment, scope=project_name))
    trains: list[Record] = list(ctx.metadata.list(Training, scope=project_name))
    builds: list[Record] = list(ctx.metadata.list(BuildVersion, scope=project_name))
    if depls or trains or builds:
        summary = (
            f"project {project_name} has {len(depls)} deployment(s), {len(trains)} training(s) "
            f"and {len(builds)} build(s)"
        )
        if confirm is None or not confirm(f"{summary}. Stop and remove them all?"):
            raise ConflictError(f"{summary} (confirm, or use --skip-questions to remove them with it)")
    removal = ProjectRemoval(project=project_name)
    manager = containers_or_none(ctx)
    if manager is not None:
        manager.stop_ide(project_name)
    removal.deployments = remove_records(ctx, depls)
    removal.trainings = remove_records(ctx, trains)
    removal.builds = remove_records(ctx, builds)
    delete_project_keys(ctx, project_name)
    ctx.metadata.delete(Project, project_name)
    return removal
