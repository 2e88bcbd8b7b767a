"""Builds: turn a project's code into a build version the runtime can run.

The files come from the working directory (``here``), the project's home dir
(``home``) or a clone of its git repository at a ref (``git``); ``pre-built``
uses an image pushed elsewhere (Docker runtimes only). The container manager
does the runtime-specific part (an image, or a local venv + snapshot) and the
record is written last, so a failed build leaves no record behind.
Re-building a tag replaces its record; trainings keep their own snapshot of
the build they ran on. :func:`task_spec` describes a task (training,
deployment, IDE) to run on a build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.api.context import AtollContext
from atoll.api.projects import get_project
from atoll.containers.base import BuildRequest, TaskSpec
from atoll.containers.sources import code_hash
from atoll.containers.spec import TaskKind, parse_mounts, profile_summary
from atoll.domain.names import validate_name
from atoll.domain.records import BuildVersion, Project, TaskMount, utcnow
from atoll.errors import BackendError, ExecutionError, NotFoundError, UsageError

SOURCES = ("here", "home", "git", "pre-built")


def _git(args: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    """Run git; raise ExecutionError with its message when it fails."""
    git = shutil.which("git")
    if git is None:
        raise BackendError("git is not installed (needed for --from-git)")
    try:
        done = subprocess.run(
            [git, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except subprocess.TimeoutExpired as exc:
        raise ExecutionError(f"git {args[0]} took longer than {timeout:.0f}s") from exc
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()
        raise ExecutionError(f"git {args[0]} failed: {message[-1] if message else done.returncode}")
    return done.stdout.strip()


def git_commit_of(path: Path) -> tuple[str | None, bool]:
    """``(HEAD commit, dirty)`` when ``path`` is inside a git checkout, else ``(None, False)``."""
    if shutil.which("git") is None:
        return None, False
    try:
        commit = _git(["rev-parse", "HEAD"], cwd=path, timeout=30)
        dirty = bool(_git(["status", "--porcelain"], cwd=path, timeout=30))
    except ExecutionError:
        return None, False
    return commit, dirty


def gather_source(
    ctx: AtollContext, project: Project, source: str, git_ref: str | None, workdir: Path
) -> tuple[Path, str | None, bool]:
    """The directory holding the project's files, its git commit, and whether it was dirty.

    Raises:
        UsageError: the source is unknown or the project lacks a home dir / git repo.
        ExecutionError: cloning or checking out failed.
    """
    if source == "here":
        path = ctx.cwd
    elif source == "home":
        if not project.home_dir:
            raise UsageError(
                f"project {project.name} has no home dir (set it with `atoll proj update --home-dir`)"
            )
        path = Path(project.home_dir)
        if not path.is_dir():
            raise NotFoundError(f"the home dir {path} of project {project.name} does not exist")
    elif source == "git":
        if not project.git_repo:
            raise UsageError(
                f"project {project.name} has no git repo (set it with `atoll proj update --git-repo`)"
            )
        path = workdir / "src"
        _git(["clone", "--quiet", "--", project.git_repo, str(path)])
        if git_ref:
            _git(["checkout", "--quiet", "--detach", git_ref], cwd=path)
        return path, _git(["rev-parse", "HEAD"], cwd=path), False
    else:
        raise UsageError(f"unknown build source {source!r}; use one of {', '.join(SOURCES)}")
    commit, dirty = git_commit_of(path)
    return path, commit, dirty


def build_project(
    ctx: AtollContext,
    name: str | None,
    *,
    tag: str = "latest",
    no_cache: bool = False,
    source: str = "here",
    git_ref: str | None = None,
    log: Callable[[str], None] = print,
) -> BuildVersion:
    """Build the project and record (or replace) build version ``tag``.

    Raises:
        NotFoundError: no such project, or its home dir is missing.
        UsageError: bad tag/source, or ``pre-built`` on the local runtime.
        ExecutionError: the build failed (with the installer's last lines).
    """
    project = get_project(ctx, name)
    validate_name(tag, "build tag")
    if git_ref is not None and source != "git":
        raise UsageError("a git ref only makes sense when building from git")
    manager_type = ctx.config.container_manager.type
    if source == "pre-built" and manager_type == "local":
        raise UsageError(
            "--pre-built uses a Docker image; the local runtime builds from files (--from-here/home/git)"
        )
    with tempfile.TemporaryDirectory(prefix="atoll-build-") as tmp:
        if source == "pre-built":
            src, commit, dirty, digest = Path(tmp), None, False, ""
        else:
            src, commit, dirty = gather_source(ctx, project, source, git_ref, Path(tmp))
            digest = code_hash(src)
            log(f"building {project.name}:{tag} from {source} ({src}), code hash {digest[:16]}")
        request = BuildRequest(
            project=project,
            source_dir=src,
            tag=tag,
            built_from=source,
            code_hash=digest,
            git_commit=commit,
            no_cache=no_cache,
        )
        record = ctx.containers.build(request, log)
    if dirty:
        record.details["git_dirty"] = True
    if git_ref:
        record.details["git_ref"] = git_ref
    return save_build(ctx, record)


def save_build(ctx: AtollContext, record: BuildVersion) -> BuildVersion:
    """Create the record, or replace an existing build of the same tag."""
    try:
        old = ctx.metadata.get(BuildVersion, record.name, record.proj)
    except NotFoundError:
        return ctx.metadata.create(record)
    record = record.model_copy(
        update={"revision": old.revision, "created_at": old.created_at, "modified_at": utcnow()}
    )
    return ctx.metadata.update(record)


def get_build(ctx: AtollContext, proj: str, tag: str) -> BuildVersion:
    """One build version; NotFoundError tells how to build it."""
    validate_name(tag, "build tag")
    try:
        return ctx.metadata.get(BuildVersion, tag, proj)
    except NotFoundError as exc:
        raise NotFoundError(
            f"project {proj} has no build {tag!r}; run `atoll proj build --tag {tag}`"
        ) from exc


def task_spec(
    ctx: AtollContext, kind: TaskKind, project: Project, bvers: BuildVersion, name: str,
    resource_profile: str | None = None, **fields: Any,
) -> TaskSpec:
    """A task of ``kind`` on ``bvers``, with the resource profile ``resource_profile`` names (else
    the one ``container_manager.<kind>_profile`` names) and the store settings handed to the task.

    Raises:
        UsageError: ``resource_profile`` is not one of ``resource_profiles``.
        ConfigError: the ``<kind>_profile`` named is not one of ``resource_profiles``.
    """
    from atoll.backends import task_store_config
    from atoll.task.layout import NORONHA_COMPAT_ENV

    profile_name, profile = ctx.config.container_manager.pick_profile(kind, resource_profile)
    if not ctx.config.container_manager.noronha_compat:  # `import noronha` fails in the task, saying why
        fields["env"] = {**(fields.get("env") or {}), NORONHA_COMPAT_ENV: "0"}
    return TaskSpec(
        kind=kind, project=project, build=bvers, name=name, **fields,
        profile=profile, profile_name=profile_name,
        store_config=task_store_config(ctx.config, ctx.metadata),
    )


def task_options(
    ctx: AtollContext, kind: TaskKind, resource_profile: str | None, mounts: list[str] | None
) -> tuple[dict[str, Any] | None, list[TaskMount]]:
    """Check ``--resource-profile`` and ``--mount`` before anything starts.

    Returns what the training / deployment record keeps: the profile's summary
    (with a note naming what this runtime does not enforce) and the mounts.

    Raises:
        UsageError: an unknown profile, a malformed or refused mount.
        ConfigError: the ``<kind>_profile`` named is not one of ``resource_profiles``.
    """
    manager = ctx.config.container_manager.type
    name, profile = ctx.config.container_manager.pick_profile(kind, resource_profile)
    checked = parse_mounts(mounts or [], manager)
    summary = profile_summary(name, profile, manager, ctx.containers.unenforced(kind) if profile else ())
    return summary, checked


__all__ = [
    "SOURCES", "build_project", "gather_source", "get_build", "git_commit_of", "save_build", "task_options",
    "task_spec",
]
