"""Replica secrets: one random secret per deployment, kept 0600 for the router until the deployment goes."""

from __future__ import annotations

import os
import stat

import orjson

from atoll.api.context import AtollContext
from atoll.api.replica_secrets import drop_replica_secret, known_replica_secret, replica_secret
from atoll.router.auth import ReplicaSecretsFile


def test_a_deployment_keeps_its_secret_and_each_has_its_own(ctx: AtollContext) -> None:
    first = replica_secret(ctx, "iris", "svc")
    assert len(first) >= 40
    assert replica_secret(ctx, "iris", "svc") == first  # a redeploy: old and new replicas accept the same
    other = replica_secret(ctx, "iris", "other")
    assert other != first and replica_secret(ctx, "wine", "svc") not in (first, other)
    path = ctx.config.router_replica_secrets_file
    assert path.parent == ctx.config.router_keys_file.parent  # the swarm router's mount shows it
    assert stat.S_IMODE(os.stat(path).st_mode) == (0o640 if os.geteuid() == 0 else 0o600)  # see test_keys
    assert orjson.loads(path.read_bytes())["secrets"]["iris/svc"] == first


def test_the_router_reads_what_depl_new_wrote_and_forgets_a_removed_deployment(ctx: AtollContext) -> None:
    secret = replica_secret(ctx, "iris", "svc")
    reader = ReplicaSecretsFile(ctx.config.router_replica_secrets_file, recheck=0)
    assert reader.secret("iris", "svc") == secret.encode()
    assert reader.secret("iris", "nope") is None
    drop_replica_secret(ctx, "iris", "svc")
    assert known_replica_secret(ctx, "iris", "svc") is None
    assert reader.secret("iris", "svc") is None
    assert replica_secret(ctx, "iris", "svc") != secret  # a new deployment of that name: a new secret
    drop_replica_secret(ctx, "iris", "never-deployed")  # nothing to forget: no error


def test_no_file_means_no_secret(ctx: AtollContext) -> None:
    assert known_replica_secret(ctx, "iris", "svc") is None
    assert ReplicaSecretsFile(ctx.config.router_replica_secrets_file).secret("iris", "svc") is None
    assert ReplicaSecretsFile(None).secret("iris", "svc") is None


def test_removing_a_project_forgets_its_deployments_secrets(ctx: AtollContext) -> None:
    from atoll.api.records import _remove_deployment
    from atoll.domain.records import Deployment

    secret = replica_secret(ctx, "iris", "svc")
    depl = Deployment.model_construct(name="svc", proj="iris")
    _remove_deployment(ctx, depl)  # what `depl rm` and `proj rm` do for each deployment
    assert known_replica_secret(ctx, "iris", "svc") is None
    assert ("remove_service", "iris:svc") in ctx.containers.calls  # type: ignore[attr-defined]
    assert replica_secret(ctx, "iris", "svc") != secret
