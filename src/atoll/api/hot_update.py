"""Retrain and hot-update: ``atoll train new --target-deploy DEPL``.

Before the training starts, :func:`check_target` makes sure ``DEPL`` is a
deployment of the same project whose replicas run a ``LazyModelServer``;
once the training has FINISHED, :func:`update_target` tells every replica,
through ``POST /update?model_version=MODEL:VERSION&default=true``, to load
each version the training published and to serve it to requests that name
no version. The answer of each replica is returned, one row per replica and
version.

How a deployment is known to be lazy: every replica says which server its
notebook started in its ``GET /health`` answer (``{"status": "ok", "server":
"LazyModelServer"}``, or ``"OnlinePredict"``; see :mod:`atoll.toolkit.serving`).
That answer comes from the running code itself, so it is right whatever the
notebook looks like; every healthy replica is asked, and one that says
anything but ``LazyModelServer`` (replicas started by an Atoll older than this
say nothing) makes the deployment "not lazy".

Replicas are addressed as ``depl info`` shows them (the manager's replica
URLs), with the deployment's replica secret (``x-atoll-replica-secret``, see
:mod:`atoll.api.replica_secrets`): on the local manager they listen on
127.0.0.1; on swarm and Kubernetes their addresses must be reachable from
where ``atoll`` runs, else the check fails before the training starts.

The update is not recorded on the deployment: a replica started later (a
restart, a redeploy) serves its deployment's ``--movers`` by default again;
``depl new --movers`` makes a version the default for good.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from atoll.api.context import AtollContext
from atoll._http.keys import REPLICA_SECRET_HEADER
from atoll.api.deployments import get_deployment
from atoll.api.replica_secrets import known_replica_secret
from atoll.containers.spec import ReplicaStatus
from atoll.domain.records import Deployment, ModelVersion, Training
from atoll.errors import BackendUnavailableError, ConflictError, NotFoundError, UsageError

LAZY = "LazyModelServer"
PROBE_TIMEOUT = 10.0  # seconds for one replica's GET /health
UPDATE_TIMEOUT = 600.0  # seconds for one replica to load a version (a big model takes long)


def _health(replica: ReplicaStatus) -> dict[str, Any]:
    """The replica's ``GET /health`` answer (BackendUnavailableError when it cannot be read)."""
    try:
        with urllib.request.urlopen(f"{replica.url}/health", timeout=PROBE_TIMEOUT) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BackendUnavailableError(
            f"cannot reach replica {replica.name} at {replica.url} from here ({reason}); "
            "--target-deploy talks to every replica directly"
        ) from None
    return data if isinstance(data, dict) else {}


def check_target(ctx: AtollContext, name: str, proj: str | None = None) -> Deployment:
    """The deployment ``name`` of ``proj``, checked to serve a ``LazyModelServer`` from healthy replicas.

    Raises:
        NotFoundError: no such deployment in the project.
        UsageError: its replicas run another server (not lazy): nothing to hot-update.
        ConflictError: it has no healthy replica to ask (or to update later), or its
            replicas share one address (each one could not be told).
        BackendUnavailableError: a healthy replica cannot be reached from here.
    """
    try:
        depl = get_deployment(ctx, name, proj)
    except NotFoundError as exc:
        raise NotFoundError(f"--target-deploy {name}: {exc}") from None
    healthy = [r for r in ctx.containers.service_status(depl.proj, depl.name) if r.healthy and r.url]
    if not healthy:
        raise ConflictError(
            f"--target-deploy {depl.name}: deployment {depl.ref} has no healthy replica "
            f"({depl.task.state.value}); see `atoll depl info --name {depl.name}`"
        )
    urls = [r.url for r in healthy]
    if len(set(urls)) < len(urls):  # e.g. a port published on the host: one address, not one per replica
        raise ConflictError(
            f"--target-deploy {depl.name}: the replicas of {depl.ref} cannot be told apart from here "
            f"(they share the address {max(urls, key=urls.count)}); each one must load the version"
        )
    for replica in healthy:
        kind = _health(replica).get("server")
        if kind != LAZY:
            what = str(kind) if kind else "a server that does not say its kind (redeploy it)"
            raise UsageError(
                f"--target-deploy {depl.name}: deployment {depl.ref} runs {what}, not a LazyModelServer; "
                "only a lazy deployment can load new versions"
            )
    return depl


def published_versions(ctx: AtollContext, training: Training) -> list[ModelVersion]:
    """The model versions ``training`` published, oldest first."""
    found = ctx.metadata.list(ModelVersion, filter={"train.proj": training.proj, "train.name": training.name})
    return sorted(found, key=lambda v: v.created_at)


def _post_update(replica: ReplicaStatus, version: str, secret: str | None) -> dict[str, Any]:
    """One replica told to load ``version`` (``model:version``) as its default; its answer as a row."""
    row: dict[str, Any] = {"replica": replica.name, "model_version": version, "status": "failed", "error": None}
    if not replica.healthy or not replica.url:
        row.update(status="skipped", error=f"replica is {replica.state}")
        return row
    request = urllib.request.Request(
        f"{replica.url}/update?model_version={quote(version, safe=':')}&default=true",
        data=b"", method="POST", headers={REPLICA_SECRET_HEADER.decode(): secret} if secret else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=UPDATE_TIMEOUT) as answer:
            body = json.loads(answer.read())
        row.update(status=body.get("status", "loaded"), model_version=body.get("model_version", version))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error")
        except (ValueError, AttributeError, OSError):
            detail = None
        row["error"] = f"HTTP {exc.code}: {detail or exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        row["error"] = str(getattr(exc, "reason", exc))
    return row


def update_target(ctx: AtollContext, depl: Deployment, versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """Tell every replica of ``depl`` to load each of ``versions`` and serve it by default.

    Returns:
        One row per (version, replica): ``{replica, model_version, status, error}``,
        ``status`` being ``loaded``, ``failed`` (``error`` says why) or
        ``skipped`` (the replica was not healthy).
    """
    replicas = ctx.containers.service_status(depl.proj, depl.name)
    secret = known_replica_secret(ctx, depl.proj, depl.name)
    rows: list[dict[str, Any]] = []
    if not replicas:
        return [{"replica": None, "model_version": v.ref, "status": "failed",
                 "error": f"deployment {depl.ref} has no replica any more"} for v in versions]
    with ThreadPoolExecutor(max_workers=min(8, len(replicas)), thread_name_prefix="atoll-update") as pool:
        for version in versions:  # one version at a time: the last one published ends up the default
            rows.extend(pool.map(lambda r, ref=version.ref: _post_update(r, ref, secret), replicas))
    return rows


__all__ = ["LAZY", "check_target", "published_versions", "update_target"]
