"""Deployments: N replicas of a prediction notebook serving HTTP, reachable through the router.

``new_deployment`` validates everything first (project, build, notebook, model
versions, port), records the deployment with snapshots of its build and
versions, makes sure the router island runs, then asks the container manager
to start or roll over the replicas. The record's task goes WAITING → RUNNING
once every replica is healthy, or FAILED with the replicas' error. A failed
*redeploy* leaves the old replicas serving and the record describing them
(the failure is kept in ``details.redeploy_error``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from atoll.api.builds import get_build, task_spec
from atoll.api.context import AtollContext
from atoll.api.islands import ensure_router
from atoll.api.projects import get_project, resolve_project_name
from atoll.api.records import Filter, build, fresh_name, get_record, list_records, remove_record
from atoll.api.versions import get_version, parse_pretrained
from atoll.containers.base import ReplicaStatus
from atoll.domain.names import validate_name
from atoll.domain.records import Deployment, ModelVersion, Task, TaskState, utcnow
from atoll.errors import AtollError, NotFoundError, UsageError

DEFAULT_TIMEOUT = 120.0


def check_notebook(notebook: str) -> str:
    """A notebook path relative to the project root, without ``..``.

    Raises:
        UsageError: absolute, escaping the project, or not an ``.ipynb``.
    """
    path = PurePosixPath(notebook)
    if not notebook or path.is_absolute() or ".." in path.parts:
        raise UsageError(f"--nb {notebook!r}: give a path relative to the project root, without '..'")
    if path.suffix != ".ipynb":
        raise UsageError(f"--nb {notebook!r}: expected a Jupyter notebook (.ipynb)")
    return str(path)


def check_env(env: dict[str, str] | None) -> dict[str, str]:
    """Environment variables for the replicas; names must be shell-safe and not Atoll's own."""
    out: dict[str, str] = {}
    for key, value in (env or {}).items():
        if not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(f"--env {key!r}: not a valid environment variable name")
        if key.startswith("ATOLL_"):
            raise UsageError(f"--env {key}: ATOLL_* variables are set by Atoll itself")
        out[key] = str(value)
    return out


def resolve_versions(ctx: AtollContext, refs: list[str] | None) -> list[ModelVersion]:
    """``["model:version", ...]`` → the version records (NotFoundError names a missing one)."""
    versions = []
    for ref in refs or []:
        model, version = parse_pretrained(ref)
        versions.append(get_version(ctx, model, version))
    return versions


def new_deployment(
    ctx: AtollContext,
    name: str | None = None,
    proj: str | None = None,
    *,
    notebook: str,
    params: dict[str, Any] | None = None,
    tag: str = "latest",
    n_tasks: int = 1,
    port: int | None = None,
    env: dict[str, str] | None = None,
    movers: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = print,
) -> Deployment:
    """Deploy (or redeploy) a prediction notebook; return the record once every replica is healthy.

    Raises:
        NotFoundError: project, build, notebook or model version missing.
        UsageError: malformed option (name, notebook path, params, port, env).
        ExecutionError: the replicas did not become healthy (record FAILED, nothing
            left running), or a redeploy failed (the old replicas keep serving).
    """
    project = get_project(ctx, proj)
    if params is not None and not isinstance(params, dict):
        raise UsageError("--params must be a JSON object")
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise UsageError(f"-n/--n-tasks must be a positive integer, not {n_tasks!r}")
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 1-65535")
    if port is not None and port in (ctx.config.router.port, ctx.config.ide.port):
        raise UsageError(f"--port {port} is the router's or the IDE's port; choose another")
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    notebook = check_notebook(notebook)
    env = check_env(env)
    bvers = get_build(ctx, project.name, tag)
    if bvers.location and not (Path(bvers.location) / "app" / notebook).is_file():
        raise NotFoundError(f"build {bvers.ref} has no notebook {notebook} (rebuild after adding it?)")
    versions = resolve_versions(ctx, movers)
    name = fresh_name(ctx, Deployment, project.name, name)

    existing: Deployment | None = None
    if ctx.metadata.exists(Deployment, name, project.name):
        existing = ctx.metadata.get(Deployment, name, project.name)
    fields: dict[str, Any] = {
        "name": name,
        "proj": project.name,
        "notebook": notebook,
        "params": params or {},
        "env_keys": sorted(env),
        "n_tasks": n_tasks,
        "port": port,
        "bvers": bvers,
        "movers": versions,
        "container_manager": ctx.config.container_manager.type,
    }
    task = Task(state=TaskState.WAITING, start_time=utcnow())
    if existing is None:
        record = ctx.metadata.create(build(Deployment, **fields, task=task))
        desired = record
    else:
        record = existing
        desired = build(Deployment, **fields, task=task, created_at=existing.created_at, revision=existing.revision)

    spec = task_spec(
        ctx, "deploy", project, bvers, name,
        notebook=notebook, env=env, versions=versions, replicas=n_tasks, port=port,
        meta={"deployment": desired.public_dump()},
    )
    router = ensure_router(ctx)
    if router is not None and router.message:
        log(router.message)
    try:
        ctx.containers.deploy(spec, timeout, log)
    except AtollError as exc:
        serving = _still_serving(ctx, project.name, name)
        if existing is not None and serving:
            record.details = {**record.details, "redeploy_error": str(exc)}
            ctx.metadata.update(record)
        else:
            failed = desired.model_copy(
                update={
                    "task": Task(state=TaskState.FAILED, start_time=task.start_time, error=str(exc)),
                    "revision": record.revision,
                    "modified_at": utcnow(),
                }
            )
            ctx.metadata.update(failed)
        raise
    done = desired.model_copy(
        update={
            "task": Task(state=TaskState.RUNNING, progress=1.0, start_time=task.start_time),
            "revision": record.revision,
            "modified_at": utcnow(),
            "details": {k: v for k, v in desired.details.items() if k != "redeploy_error"},
        }
    )
    return ctx.metadata.update(done)


def _still_serving(ctx: AtollContext, proj: str, name: str) -> bool:
    try:
        return bool(ctx.containers.service_status(proj, name))
    except AtollError:
        return False


def get_deployment(ctx: AtollContext, name: str, proj: str | None = None) -> Deployment:
    return get_record(ctx, Deployment, name, resolve_project_name(ctx, proj))


def router_url(ctx: AtollContext, depl: Deployment) -> str:
    router = ctx.config.router
    return f"http://{router.host}:{router.port}/predict?project={depl.proj}&deploy={depl.name}"


def deployment_info(ctx: AtollContext, name: str, proj: str | None = None) -> dict[str, Any]:
    """The record plus each replica's live state and the availability ``healthy/N``."""
    depl = get_deployment(ctx, name, proj)
    replicas: list[ReplicaStatus] = ctx.containers.service_status(depl.proj, depl.name)
    healthy = sum(1 for r in replicas if r.healthy)
    info = depl.public_dump()
    info["availability"] = f"{healthy}/{depl.n_tasks}"
    info["replicas"] = [dataclasses.asdict(r) for r in replicas]
    info["router_url"] = router_url(ctx, depl)
    if depl.port:
        info["balanced_url"] = f"http://127.0.0.1:{depl.port}/predict"
    return info


def availability(ctx: AtollContext, name: str, proj: str | None = None) -> tuple[int, int]:
    """(healthy replicas, wanted replicas)."""
    depl = get_deployment(ctx, name, proj)
    replicas = ctx.containers.service_status(depl.proj, depl.name)
    return sum(1 for r in replicas if r.healthy), depl.n_tasks


def list_deployments(ctx: AtollContext, proj: str | None = None, filter: Filter | None = None) -> list[Deployment]:
    return list_records(ctx, Deployment, resolve_project_name(ctx, proj), filter)


def remove_deployment(ctx: AtollContext, name: str, proj: str | None = None) -> Deployment:
    """Stop every replica and its supervisor, then remove the record."""
    validate_name(name, "deployment name")
    return remove_record(ctx, Deployment, name, resolve_project_name(ctx, proj))


def deployment_logs(ctx: AtollContext, name: str, proj: str | None = None, follow: bool = False) -> Iterator[str]:
    depl = get_deployment(ctx, name, proj)
    return ctx.containers.service_logs(depl.proj, depl.name, follow)


__all__ = [
    "DEFAULT_TIMEOUT",
    "availability",
    "check_env",
    "check_notebook",
    "deployment_info",
    "deployment_logs",
    "get_deployment",
    "list_deployments",
    "new_deployment",
    "remove_deployment",
    "resolve_versions",
    "router_url",
]
