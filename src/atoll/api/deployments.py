"""Deployments: N replicas of a prediction notebook serving HTTP, reachable through the router.

``new_deployment`` validates everything first (project, build, notebook, model
versions, port), records the deployment with snapshots of its build and
versions, makes sure the router island runs, then asks the container manager
to start or roll over the replicas. The record's task goes WAITING → RUNNING
once every replica is healthy, or FAILED with the replicas' error. A failed
*redeploy* leaves the old replicas serving and the record describing them
(the failure is kept in ``details.redeploy_error``).

With ``wait=False`` (``depl new -b``) it returns once the replicas are
started, the record DEPLOYING with the roll-out in ``details.rollout``; the
roll-out goes on in the runtime, and every later read (:func:`reconcile`)
asks the manager how it went until it settles RUNNING or FAILED (a failed
redeploy: the previous record back, with ``details.redeploy_error``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from atoll.api.builds import get_build, task_options, task_spec
from atoll.api.context import AtollContext
from atoll.api.islands import available, ensure_router, island_status
from atoll.api.projects import get_project, resolve_project_name
from atoll.api.records import Filter, build, fresh_name, get_record, list_records, remove_record
from atoll.api.replica_secrets import replica_secret
from atoll.api.versions import get_version, parse_pretrained
from atoll.config import Config, ResourceProfile
from atoll.containers.base import PendingRollout, ReplicaStatus, Rollout
from atoll.containers.local.process import pid_alive, proc_start_time
from atoll.domain.names import validate_name
from atoll.domain.records import Deployment, ModelVersion, Task, TaskState, utcnow
from atoll.errors import AtollError, ConflictError, NotFoundError, UsageError

DEFAULT_TIMEOUT = 120.0
DEPLOYER = "deployer"  # details key: {host, pid, start_time} of the process deploying a WAITING record
ROLLOUT = "rollout"  # details key of a DEPLOYING record: {generation, previous, deadline, previous_record}


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


def check_replicas(config: Config, n_tasks: int, profile: ResourceProfile | None = None) -> None:
    """``n_tasks`` replicas (and the profile's autoscaling) within ``container_manager.max_replicas``.

    Raises:
        UsageError: not a positive integer, or above the bound (the message names the setting).
    """
    if not isinstance(n_tasks, int) or isinstance(n_tasks, bool) or n_tasks < 1:
        raise UsageError(f"-n/--n-tasks must be a positive integer, not {n_tasks!r}")
    limit = config.container_manager.max_replicas
    if n_tasks > limit:
        raise UsageError(
            f"-n/--n-tasks {n_tasks} is above container_manager.max_replicas ({limit}); raise that setting for more"
        )
    scale = profile.auto_scale if profile is not None else None
    if scale is not None and scale.max_replicas > limit:
        raise UsageError(
            f"the deploy profile's auto_scale.max_replicas ({scale.max_replicas}) is above "
            f"container_manager.max_replicas ({limit}); lower it or raise that setting"
        )


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
    resource_profile: str | None = None,
    mounts: list[str] | None = None,
    wait: bool = True,
) -> Deployment:
    """Deploy (or redeploy) a prediction notebook; return the record once every replica is healthy.

    With ``wait=False``, return once the replicas are started (record DEPLOYING; later reads settle it).

    Raises:
        NotFoundError: project, build, notebook or model version missing.
        UsageError: malformed option (name, notebook path, params, port, env, mounts), unknown resource profile.
        ExecutionError: the replicas did not become healthy (record FAILED, nothing
            left running), or a redeploy failed (the old replicas keep serving).
    """
    profile, mount_list = task_options(ctx, "deploy", resource_profile, mounts)
    project = get_project(ctx, proj)
    if params is not None and not isinstance(params, dict):
        raise UsageError("--params must be a JSON object")
    check_replicas(ctx.config, n_tasks, ctx.config.container_manager.pick_profile("deploy", resource_profile)[1])
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
        if existing.task.state == TaskState.DEPLOYING:
            existing = reconcile(ctx, existing)
        if existing.task.state == TaskState.DEPLOYING:
            raise ConflictError(
                f"deployment {project.name}:{name} is still being deployed (`depl new -b`); "
                "wait until `atoll depl info` shows it RUNNING or FAILED, or remove it"
            )
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
        "resource_profile": profile,
        "mounts": mount_list,
    }
    task = Task(state=TaskState.WAITING, start_time=utcnow())
    marker = {DEPLOYER: _this_process()}  # lets a later look tell a `depl new` cut short (see reconcile)
    if existing is None:
        record = ctx.metadata.create(build(Deployment, **fields, task=task, details=marker))
        desired = record.model_copy(update={"details": {}})
    else:
        record = existing
        if existing.task.state == TaskState.WAITING:  # left by one cut short: this process deploys it now
            record = ctx.metadata.update(existing.model_copy(update={"details": {**existing.details, **marker}}))
        desired = build(Deployment, **fields, task=task, created_at=existing.created_at, revision=record.revision)

    spec = task_spec(
        ctx, "deploy", project, bvers, name, resource_profile,
        notebook=notebook, env=env, versions=versions, replicas=n_tasks, port=port, mounts=mount_list,
        meta={"deployment": desired.public_dump()},
        replica={"secret": replica_secret(ctx, project.name, name), "limits": ctx.config.serving.limits()},
    )
    try:
        router = ensure_router(ctx)
        if router is not None and router.message:
            log(router.message)
        if wait:
            ctx.containers.deploy(spec, timeout, log)
        else:
            pending = ctx.containers.start_deploy(spec, timeout, log)
    except (AtollError, KeyboardInterrupt) as exc:  # KeyboardInterrupt: Ctrl-C, or SIGTERM in the CLI
        error = str(exc) if isinstance(exc, AtollError) else "interrupted before the replicas were healthy"
        serving = _still_serving(ctx, project.name, name)
        if existing is not None and serving:
            details = {k: v for k, v in record.details.items() if k != DEPLOYER}
            record.details = {**details, "redeploy_error": error}
            ctx.metadata.update(record)
        else:
            failed = desired.model_copy(
                update={
                    "task": Task(state=TaskState.FAILED, start_time=task.start_time, error=error),
                    "revision": record.revision,
                    "modified_at": utcnow(),
                }
            )
            ctx.metadata.update(failed)
        raise
    if not wait:
        previous = existing.public_dump() if existing is not None and pending.previous is not None else None
        deploying = desired.model_copy(
            update={
                "task": Task(state=TaskState.DEPLOYING, start_time=task.start_time),
                "revision": record.revision,
                "modified_at": utcnow(),
                "details": {ROLLOUT: {**pending.to_dict(), "previous_record": previous}},
            }
        )
        return ctx.metadata.update(deploying)
    done = desired.model_copy(
        update={
            "task": Task(state=TaskState.RUNNING, progress=1.0, start_time=task.start_time),
            "revision": record.revision,
            "modified_at": utcnow(),
            "details": {k: v for k, v in desired.details.items() if k not in ("redeploy_error", DEPLOYER)},
        }
    )
    return ctx.metadata.update(done)


def _still_serving(ctx: AtollContext, proj: str, name: str) -> bool:
    try:
        ctx.containers.recover_service(proj, name)  # e.g. the old replicas of a supervisor that died meanwhile
        return bool(ctx.containers.service_status(proj, name))
    except AtollError:
        return False


def _this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start_time": proc_start_time(pid)}


def _deployer_alive(record: Deployment) -> bool:
    """False when the process that recorded ``record`` WAITING is known to be gone."""
    deployer = record.details.get(DEPLOYER)
    if not isinstance(deployer, dict):
        return False  # recorded by an Atoll that kept no marker: long gone
    if deployer.get("host") != socket.gethostname():
        return True  # cannot tell from here
    return pid_alive(deployer.get("pid"), deployer.get("start_time"))


def _settle(ctx: AtollContext, record: Deployment) -> Deployment:
    """A DEPLOYING record (``depl new -b``): ask the manager how its roll-out goes; record the outcome."""
    rollout = record.details.get(ROLLOUT)
    rollout = rollout if isinstance(rollout, dict) else {}
    try:
        pending = PendingRollout.from_dict(rollout)
    except (TypeError, KeyError, ValueError):
        return record  # not a roll-out this Atoll wrote: left as it is
    try:
        outcome = ctx.containers.settle_deploy(record.proj, record.name, pending)
    except AtollError:
        return record  # the runtime cannot say now: the next look will
    if outcome.state == "running":
        return record
    details = {k: v for k, v in record.details.items() if k != ROLLOUT}
    previous = rollout.get("previous_record")
    if outcome.state == "done":
        task = Task(state=TaskState.RUNNING, progress=1.0, start_time=record.task.start_time)
        updated = record.model_copy(update={"task": task, "details": details, "modified_at": utcnow()})
    elif pending.previous is not None and isinstance(previous, dict):
        error = f"redeploying {record.proj}:{record.name} failed, the previous replicas keep serving: {_why(outcome)}"
        old = Deployment.model_validate(previous)
        updated = old.model_copy(update={"revision": record.revision, "modified_at": utcnow(),
                                         "details": {**old.details, "redeploy_error": error}})
    else:
        task = Task(state=TaskState.FAILED, start_time=record.task.start_time,
                    error=f"deployment {record.proj}:{record.name} did not start: {_why(outcome)}")
        updated = record.model_copy(update={"task": task, "details": details, "modified_at": utcnow()})
    try:
        return ctx.metadata.update(updated)
    except ConflictError:  # another look settled it first
        return ctx.metadata.get(Deployment, record.name, record.proj)


def _why(outcome: Rollout) -> str:
    """The roll-out's error and the last line its replicas printed (the exception, mostly)."""
    error = outcome.error or "the replicas did not become healthy"
    last = next((line.strip() for line in reversed(outcome.log_tail.splitlines()) if line.strip()), "")
    return f"{error} (last line: {last})" if last and last not in error else error


def reconcile(ctx: AtollContext, record: Deployment) -> Deployment:
    """Settle what a look at ``record`` finds: a dead supervisor, a ``depl new -b``, a cut-short ``depl new``.

    First the manager recovers what a crashed part of the runtime left
    (:meth:`~atoll.containers.base.ContainerManager.recover_service`: the local
    runtime adopts the replicas of a supervisor that died). A DEPLOYING record
    is settled by asking the manager (:func:`_settle`).

    A WAITING deployment whose ``depl new`` died (SIGKILL, a crashed host...) is
    settled too:

    RUNNING when every replica is healthy (the roll-out finished, only the last
    write was lost); otherwise FAILED, and whatever it left is stopped (the local
    supervisor abandons such a roll-out by itself; this covers the rest), as
    when a new deployment does not get healthy. Every read goes through it.
    """
    try:  # whatever the record says: no replica may be left without a supervisor
        ctx.containers.recover_service(record.proj, record.name)
    except AtollError:
        pass  # the next look tries again
    if record.task.state == TaskState.DEPLOYING:
        return _settle(ctx, record)
    if record.task.state != TaskState.WAITING or _deployer_alive(record):
        return record
    try:
        healthy = sum(1 for r in ctx.containers.service_status(record.proj, record.name) if r.healthy)
    except AtollError:
        return record  # the runtime cannot say now: the next look will
    details = {k: v for k, v in record.details.items() if k != DEPLOYER}
    if healthy >= record.n_tasks:
        task = Task(state=TaskState.RUNNING, progress=1.0, start_time=record.task.start_time)
    else:
        ctx.containers.remove_service(record.proj, record.name)
        task = Task(
            state=TaskState.FAILED,
            start_time=record.task.start_time,
            error="the `depl new` deploying it exited before the replicas were healthy; nothing was left running",
        )
    try:
        return ctx.metadata.update(record.model_copy(update={"task": task, "details": details, "modified_at": utcnow()}))
    except ConflictError:  # another look settled it first
        return ctx.metadata.get(Deployment, record.name, record.proj)


def get_deployment(ctx: AtollContext, name: str, proj: str | None = None) -> Deployment:
    return reconcile(ctx, get_record(ctx, Deployment, name, resolve_project_name(ctx, proj)))


def router_url(ctx: AtollContext, depl: Deployment) -> str:
    return f"{ctx.config.router.url}/predict?project={depl.proj}&deploy={depl.name}"


def router_down(ctx: AtollContext) -> str | None:
    """Why the router does not serve right now (None: it does, or the runtime has no router island)."""
    return _router_state(ctx)[0]


def _router_state(ctx: AtollContext) -> tuple[str | None, str | None]:
    """(why the router does not serve, or None; a note when it serves degraded: ``1/2 router tasks``)."""
    if not available(ctx, "router"):
        return None, None
    try:
        status = island_status(ctx, "router")
    except AtollError as exc:
        return f"the router's state is unknown: {exc}", None
    if status.running and status.health == "degraded":
        return None, status.message
    if status.running and status.health in (None, "healthy", "running"):
        return None, None
    return status.message, None


def deployment_info(ctx: AtollContext, name: str, proj: str | None = None) -> dict[str, Any]:
    """The record plus each replica's live state and the availability ``healthy/N``."""
    depl = get_deployment(ctx, name, proj)
    replicas: list[ReplicaStatus] = ctx.containers.service_status(depl.proj, depl.name)
    healthy = sum(1 for r in replicas if r.healthy)
    info = depl.public_dump()
    info["availability"] = f"{healthy}/{depl.n_tasks}"
    info["replicas"] = [dataclasses.asdict(r) for r in replicas]
    down, degraded = _router_state(ctx)
    info["router_url"] = None if down else router_url(ctx, depl)
    if down or degraded:
        info["router"] = down or degraded
    if depl.port:
        info["balanced_url"] = f"http://127.0.0.1:{depl.port}/predict"
    return info


def availability(ctx: AtollContext, name: str, proj: str | None = None) -> tuple[int, int]:
    """(healthy replicas, wanted replicas)."""
    depl = get_deployment(ctx, name, proj)
    replicas = ctx.containers.service_status(depl.proj, depl.name)
    return sum(1 for r in replicas if r.healthy), depl.n_tasks


def list_deployments(ctx: AtollContext, proj: str | None = None, filter: Filter | None = None) -> list[Deployment]:
    return [reconcile(ctx, d) for d in list_records(ctx, Deployment, resolve_project_name(ctx, proj), filter)]


def recover_deployments(ctx: AtollContext) -> None:
    """Let the manager recover every deployment of every project (the router is about to route to them).

    The local runtime adopts there the replicas of supervisors that died (see :func:`reconcile`).
    """
    for record in ctx.metadata.list(Deployment):
        try:
            ctx.containers.recover_service(record.proj, record.name)
        except AtollError:
            continue  # the next look tries again


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
    "check_replicas",
    "deployment_info",
    "deployment_logs",
    "get_deployment",
    "list_deployments",
    "new_deployment",
    "reconcile",
    "recover_deployments",
    "remove_deployment",
    "resolve_versions",
    "router_url",
]
