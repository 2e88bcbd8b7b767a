"""The IDE: Jupyter Lab on a project's build, token-protected, on the loopback interface.

``start_ide`` stages the build (or, with ``edit``, the project's own
directory) as ``/app`` with the requested datasets and model versions, and
asks the container manager to start Jupyter Lab with a fresh random token.
An IDE that would run as root (swarm: ``edit`` of a directory root owns) is
refused before anything starts unless ``allow_root`` (Jupyter's own rule).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from atoll.api.builds import get_build, task_options, task_spec
from atoll.api.context import AtollContext
from atoll.api.deployments import check_env, resolve_versions
from atoll.api.projects import get_project, resolve_project_name
from atoll.api.versions import parse_pretrained
from atoll.containers.spec import refuse_root_ide
from atoll.domain.records import Dataset
from atoll.errors import NotFoundError, UsageError


@dataclass
class IdeSession:
    """A started IDE: where to open it (the URL carries the token)."""

    project: str
    url: str
    port: int
    pid: str
    token: str
    runs_as_root: bool = False  # Jupyter runs as uid 0 (swarm: --allow-root; local: Atoll runs as root)


def resolve_datasets(ctx: AtollContext, refs: list[str] | None) -> list[Dataset]:
    """``["model:dataset", ...]`` → the dataset records."""
    out = []
    for ref in refs or []:
        model, name = parse_pretrained(ref)
        out.append(ctx.metadata.get(Dataset, name, model))
    return out


def start_ide(
    ctx: AtollContext,
    proj: str | None = None,
    *,
    tag: str = "latest",
    port: int | None = None,
    edit: bool = False,
    allow_root: bool = False,
    datasets: list[str] | None = None,
    movers: list[str] | None = None,
    env: dict[str, str] | None = None,
    resource_profile: str | None = None,
    mounts: list[str] | None = None,
) -> IdeSession:
    """Start Jupyter Lab for a project; returns once it answers.

    Raises:
        NotFoundError: project, build, dataset, version or (``edit``) home dir missing.
        ConflictError: the project's IDE already runs.
        UsageError: bad port or mount, unknown resource profile, Jupyter would run as root without
            ``allow_root``.
        ExecutionError: Jupyter did not start.
    """
    mount_list = task_options(ctx, "ide", resource_profile, mounts)[1]
    project = get_project(ctx, proj)
    port = port or ctx.config.ide.port
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 1-65535")
    edit_dir = None
    if edit:
        if not project.home_dir:
            raise UsageError(f"project {project.name} has no home dir to edit (set one with `atoll proj update --home-dir`)")
        edit_dir = Path(project.home_dir)
        if not edit_dir.is_dir():
            raise NotFoundError(f"the home dir {edit_dir} of project {project.name} is missing")
    uid = ctx.containers.ide_uid(edit_dir)
    refuse_root_ide(uid, edit_dir, allow_root)
    bvers = get_build(ctx, project.name, tag)
    spec = task_spec(
        ctx, "ide", project, bvers, "ide", resource_profile, mounts=mount_list,
        env=check_env(env), datasets=resolve_datasets(ctx, datasets), versions=resolve_versions(ctx, movers),
        port=port, edit_dir=edit_dir, allow_root=allow_root,
    )
    token = secrets.token_urlsafe(32)
    handle = ctx.containers.start_ide(spec, token)
    return IdeSession(project=project.name, url=handle.url, port=port, pid=handle.task_id, token=token,
                      runs_as_root=(os.geteuid() if uid is None else uid) == 0)


def stop_ide(ctx: AtollContext, proj: str | None = None) -> str:
    """Stop the project's IDE; returns the project name."""
    name = resolve_project_name(ctx, proj)
    ctx.containers.stop_ide(name)
    return name


__all__ = ["IdeSession", "resolve_datasets", "start_ide", "stop_ide"]
