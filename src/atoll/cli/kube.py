"""``atoll kube render train|depl|note|isle|rbac``: the exact manifests, as YAML, without a cluster.

For GitOps users and reviews: the options are those of the real command; the
records (project, build, datasets, model versions) are read from the metadata
store, nothing is recorded or started. Secrets are printed with their keys and
empty values: Atoll fills them from the stores' settings and treasure chests.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Any

import typer
import yaml

from atoll.api.builds import get_build
from atoll.api.context import AtollContext
from atoll.api.deployments import DEFAULT_TIMEOUT, check_env, check_notebook, check_replicas, resolve_versions
from atoll.api.ide import resolve_datasets
from atoll.api.projects import get_project
from atoll.api.records import build as build_record
from atoll.api.trainings import parse_ref
from atoll.cli.common import DATASET, ENV, MOVERS, TAG, ProjOption, get_context, parse_json_option, parse_kv
from atoll.cli.taskopts import MountOption, ResourceProfileOption
from atoll.containers.base import TaskSpec
from atoll.containers.kubernetes import island_manifests, manifests
from atoll.containers.kubernetes.objects import Manifest, namespace_manifest, redacted
from atoll.containers.spec import parse_mounts, profile_summary
from atoll.domain.names import validate_name
from atoll.domain.records import Dataset, Deployment, ModelVersion, Training

app = typer.Typer(help="Kubernetes: print the manifests Atoll would apply (no cluster needed).", no_args_is_help=True)
render_app = typer.Typer(help="Print the exact manifests of a task or island as YAML.", no_args_is_help=True)
app.add_typer(render_app, name="render")

EnvOption = Annotated[list[str] | None, typer.Option(*ENV, help="KEY=VALUE for the task (repeatable).")]
TagOption = Annotated[str, typer.Option(*TAG, help="Build version to run.")]
RENDER_TOKEN = "<generated-at-start>"


def _emit(docs: list[Manifest]) -> None:
    # A JSON round trip unshares repeated parts (probes, mounts), so the YAML has no anchors.
    plain = [json.loads(json.dumps(redacted(doc))) for doc in docs]
    sys.stdout.write(yaml.safe_dump_all(plain, sort_keys=False))


def _spec(atoll: AtollContext, kind: str, proj: str | None, name: str, tag: str, **fields: Any) -> TaskSpec:
    project = get_project(atoll, proj)
    bvers = get_build(atoll, project.name, tag)
    return TaskSpec(kind=kind, project=project, build=bvers, name=name, **fields)  # type: ignore[arg-type]


def _task_options(
    ctx: typer.Context, kind: str, resource_profile: str | None, mount: list[str] | None
) -> tuple[AtollContext, dict[str, Any], str]:
    """The context, and ``--rp`` and ``-m`` as the real command checks them: the spec's fields
    (``profile``, ``profile_name``, ``mounts``) and the record's profile summary."""
    atoll = get_context(ctx)
    config = atoll.config
    name, profile = config.container_manager.pick_profile(kind, resource_profile)  # type: ignore[arg-type]
    mounts = parse_mounts(mount or [], "kubernetes")
    summary = profile_summary(name, profile, "kubernetes")
    return atoll, {"profile": profile, "profile_name": name, "mounts": mounts}, summary


def _notebook_options(
    name: str, what: str, notebook: str, params: str | None, env: list[str] | None
) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    """``--name``, ``--nb``, ``--params`` and ``--env`` of a training or deployment, checked as `new` does."""
    name, notebook = validate_name(name, what), check_notebook(notebook)
    values = parse_json_option(params, "--params", expect=dict) or {}
    return name, notebook, values, check_env(parse_kv(env, "--env"))


@render_app.command("train")
def render_train(
    ctx: typer.Context,
    proj: ProjOption = None,
    notebook: str = typer.Option(..., "--nb", "--notebook", help="Training notebook, relative to the project root."),
    name: str = typer.Option(..., "--name", help="Training name."),
    params: str | None = typer.Option(None, "--params", help="Notebook parameters as a JSON object."),
    tag: TagOption = "latest",
    env: EnvOption = None,
    dataset: Annotated[list[str] | None, typer.Option(*DATASET, help="MODEL:DATASET to stage (repeatable).")] = None,
    pretrained: Annotated[list[str] | None, typer.Option("--pretrained", help="MODEL:VERSION (repeatable).")] = None,
    resource_profile: ResourceProfileOption = None,
    mount: MountOption = None,
) -> None:
    """The Job of `atoll train new` (with its Secret and ConfigMap)."""
    atoll, options, summary = _task_options(ctx, "train", resource_profile, mount)
    name, notebook, values, envs = _notebook_options(name, "training name", notebook, params, env)
    datasets = [atoll.metadata.get(Dataset, ds, model)
                for model, ds in (parse_ref(ref, "--dataset", "dataset") for ref in dataset or [])]
    versions = [atoll.metadata.get(ModelVersion, v, model)
                for model, v in (parse_ref(ref, "--pretrained", "version") for ref in pretrained or [])]
    spec = _spec(atoll, "train", proj, name, tag, notebook=notebook, env=envs, datasets=datasets,
                 versions=versions, **options)
    record = build_record(Training, name=name, proj=spec.project.name, notebook=notebook, params=values,
                          env_keys=sorted(envs), bvers=spec.build, datasets=datasets,
                          pretrained=[v.ref for v in versions], container_manager="kubernetes",
                          resource_profile=summary, mounts=options["mounts"])
    spec.meta = {"training": record.public_dump()}
    _emit(manifests.training_manifests(spec, atoll.config))


@render_app.command("depl")
def render_depl(
    ctx: typer.Context,
    proj: ProjOption = None,
    name: str = typer.Option(..., "--name", help="Deployment name."),
    notebook: str = typer.Option(..., "--nb", "--notebook", help="Prediction notebook, relative to the project root."),
    params: str | None = typer.Option(None, "--params", help="Notebook parameters as a JSON object."),
    tag: TagOption = "latest",
    n_tasks: int = typer.Option(1, "-n", "--n-tasks", help="Number of replicas."),
    port: int | None = typer.Option(None, "--port", help="Also expose the replicas on this NodePort/LoadBalancer port."),
    env: EnvOption = None,
    movers: Annotated[list[str] | None, typer.Option(*MOVERS, help="MODEL:VERSION to stage (repeatable).")] = None,
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", help="Seconds the new pods have to get ready."),
    generation: str = typer.Option("g1", "--generation", help="Rollout label of the pod template."),
    resource_profile: ResourceProfileOption = None,
    mount: MountOption = None,
) -> None:
    """The Deployment, Services and autoscaler of `atoll depl new`."""
    atoll, options, summary = _task_options(ctx, "deploy", resource_profile, mount)
    check_replicas(atoll.config, n_tasks, options["profile"])
    name, notebook, values, envs = _notebook_options(name, "deployment name", notebook, params, env)
    versions = resolve_versions(atoll, movers)
    spec = _spec(atoll, "deploy", proj, name, tag, notebook=notebook, env=envs, versions=versions,
                 replicas=n_tasks, port=port, **options)
    record = build_record(Deployment, name=name, proj=spec.project.name, notebook=notebook, params=values,
                          env_keys=sorted(envs), n_tasks=n_tasks, port=port, bvers=spec.build, movers=versions,
                          container_manager="kubernetes", resource_profile=summary, mounts=options["mounts"])
    spec.meta = {"deployment": record.public_dump()}
    generation = validate_name(generation, "generation")
    _emit(manifests.deployment_manifests(spec, atoll.config, generation, timeout))


@render_app.command("note")
def render_note(
    ctx: typer.Context,
    proj: ProjOption = None,
    tag: TagOption = "latest",
    port: int | None = typer.Option(None, "--port", help="NodePort to expose Jupyter on (else ClusterIP)."),
    dataset: Annotated[list[str] | None, typer.Option(*DATASET, help="MODEL:DATASET to stage (repeatable).")] = None,
    movers: Annotated[list[str] | None, typer.Option(*MOVERS, help="MODEL:VERSION to stage (repeatable).")] = None,
    env: EnvOption = None,
    resource_profile: ResourceProfileOption = None,
    mount: MountOption = None,
) -> None:
    """The Pod, Service and token Secret of `atoll note`."""
    atoll, options, _ = _task_options(ctx, "ide", resource_profile, mount)
    spec = _spec(atoll, "ide", proj, "ide", tag, env=check_env(parse_kv(env, "--env")),
                 datasets=resolve_datasets(atoll, dataset), versions=resolve_versions(atoll, movers), port=port,
                 **options)
    _emit(manifests.ide_manifests(spec, atoll.config, RENDER_TOKEN))


class Island(str, Enum):
    router = "router"
    db = "db"
    files = "files"
    ui = "ui"


@render_app.command("isle")
def render_isle(
    ctx: typer.Context,
    island: Annotated[Island, typer.Argument(help="router | db | files | ui")],
    image: str = typer.Option(..., "--image", help="The island image as pushed: REGISTRY/REPO@sha256:DIGEST."),
) -> None:
    """The objects of `atoll isle <island> setup` on Kubernetes."""
    config = get_context(ctx).config
    if island is Island.router:
        docs = island_manifests.router_manifests(config, image)
    elif island is Island.db:
        docs = island_manifests.db_manifests(config, image, password="")
    elif island is Island.ui:
        docs = island_manifests.ui_manifests(config, image, token="", store_config={})
    else:
        docs = island_manifests.files_manifests(config, image, access_key="", secret_key="")
    _emit(docs)


@render_app.command("rbac")
def render_rbac(
    ctx: typer.Context,
    account: str = typer.Option("atoll", "--account", help="ServiceAccount (and Role) name."),
    with_namespace: bool = typer.Option(False, "--with-namespace", help="Also print the Namespace."),
) -> None:
    """The Namespace, ServiceAccount, Role and RoleBinding Atoll needs in container_manager.namespace."""
    namespace = get_context(ctx).config.container_manager.namespace
    docs = [namespace_manifest(namespace)] if with_namespace else []
    _emit(docs + island_manifests.rbac_manifests(namespace, validate_name(account, "account name")))
