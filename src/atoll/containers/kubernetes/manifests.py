"""The manifests of Atoll's tasks on Kubernetes, as plain dicts (pure functions, no I/O).

A task pod sees the DESIGN.md §4 layout::

    /app                     the image's own code (cwd)
    /atoll/meta/*.json       a ConfigMap of the records given to the task (read-only)
    /data, /model            inputs fetched by the ``fetch`` init container from the
                             file store into an emptyDir (or the configured NFS export
                             or PersistentVolumeClaim); read-only for the task
    /run/secrets/atoll/      the store settings (a Secret, mode 0440 for the pod's group, read-only)
    DST of each --mount      a PersistentVolumeClaim (SRC a name) or a hostPath (SRC a path)

Pods run as the base image's user (``TASK_USER``, ``runAsNonRoot``), never root.

Store credentials travel only in that Secret: never in env values, args or
image layers. Objects of one task (``<kind>-<project>-<name>``)::

    training    Job (backoffLimit 0, ttlSecondsAfterFinished) + Secret + ConfigMap
    deployment  Deployment (RollingUpdate, maxUnavailable 0, probes on /health)
                + headless Service (discovery) [+ exposed Service for --port]
                [+ HorizontalPodAutoscaler] + Secret + ConfigMap per generation
    IDE         Pod + Service + Secret (the Jupyter token and store settings)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from atoll.config import Config, ResourceProfile
from atoll.containers.base import TaskSpec
from atoll.containers.kubernetes.client import KubeClient
from atoll.containers.kubernetes.objects import (
    ANNOTATION_BUILD,
    ANNOTATION_RECORD,
    LABEL_GENERATION,
    SERVICE_PORT,
    Manifest,
    config_map,
    exact_name,
    exposed_service_type,
    http_probes,
    labels,
    metadata,
    object_name,
    pinned_image,
    resources,
    run_as,
    secret,
    service,
)
from atoll.containers.spec import TASK_USER
from atoll.domain.records import Record

SECRET_DIR = "/run/secrets/atoll"
STORE_FILE = "store.json"
JUPYTER_FILE = "jupyter_server_config.json"
IDE_PORT = 8888
# The runner's fetch step (fetch staging: the task fetches the inputs atoll/meta names).
FETCH_COMMAND = ["python", "-m", "atoll.runner", "fetch"]
TRAIN_COMMAND = ["python", "-m", "atoll.runner", "train"]
SERVE_COMMAND = ["python", "-m", "atoll.runner", "serve"]


@dataclass(frozen=True)
class TaskObjects:
    """Names of the objects of one task."""

    kind: str  # train | deploy | ide
    project: str
    name: str

    @property
    def base(self) -> str:
        if self.kind == "ide":
            return object_name("note", self.project)
        if self.kind == "deploy":
            # The router finds replicas through this name: it must be exact, never hashed.
            return exact_name("depl", self.project, self.name)
        return object_name(self.kind, self.project, self.name)

    @property
    def store_secret(self) -> str:
        return object_name(self.base, "store")

    def meta_config(self, generation: str | None = None) -> str:
        return object_name(self.base, "meta", generation or "")

    @property
    def exposed_service(self) -> str:
        return object_name(self.base, "port")

    @property
    def labels(self) -> dict[str, str]:
        return labels(self.kind, self.project, self.name)


class KubeTasks:
    """The tasks of one kind in one cluster namespace (trainings, deployments, the IDE): what they share."""

    kind: ClassVar[str]  # train | deploy | ide

    def __init__(self, kube: KubeClient, config: Config) -> None:
        self.kube = kube
        self.config = config

    @classmethod
    def objects(cls, project: str, name: str) -> TaskObjects:
        return TaskObjects(cls.kind, project, name)


def task_objects(spec: TaskSpec) -> TaskObjects:
    return TaskObjects(spec.kind, spec.project.name, spec.name)


def _dump(value: Any) -> str:
    data = value.public_dump() if isinstance(value, Record) else dict(value)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def meta_files(spec: TaskSpec) -> dict[str, str]:
    """``/atoll/meta`` as ``{relative path: JSON}``, as the task contract lays it out.

    The training / deployment record (``spec.meta``) says what to run and with which
    parameters; ``datasets/`` and ``versions/`` name the inputs the fetch init
    container puts in ``/data`` and ``/model``.
    """
    files = {"project.json": _dump(spec.project), "build.json": _dump(spec.build)}
    for key, value in spec.meta.items():
        files[f"{key}.json"] = _dump(value)
    for ds in spec.datasets:
        files[f"datasets/{ds.model}.{ds.name}.json"] = _dump(ds)
    for mv in spec.versions:
        files[f"versions/{mv.model}.{mv.name}.json"] = _dump(mv)
    return files


def _config_key(path: str) -> str:
    # ConfigMap keys are flat; the volume's items put them back in their subdirectories.
    return path.replace("/", ".")


def meta_config_map(spec: TaskSpec, config: Config, generation: str | None = None) -> Manifest:
    objects = task_objects(spec)
    extra = {LABEL_GENERATION: generation} if generation else {}
    files = {_config_key(path): text for path, text in meta_files(spec).items()}
    return config_map(objects.meta_config(generation), config.container_manager.namespace,
                      dict(objects.labels, **extra), files)


def store_secret(spec: TaskSpec, config: Config, store_config: dict[str, Any] | None = None) -> Manifest:
    """The store settings of a task as a Secret (``store_config`` overrides ``spec.store_config``)."""
    objects = task_objects(spec)
    data = orjson.dumps(spec.store_config if store_config is None else store_config)
    return secret(objects.store_secret, config.container_manager.namespace, objects.labels, {STORE_FILE: data})


def _input_volume(config: Config, objects: TaskObjects, which: str) -> tuple[Manifest, str | None]:
    """The volume holding ``/data`` or ``/model`` and the subPath inside it."""
    kube = config.container_manager.kubernetes
    if kube.nfs is not None:
        return {"name": which, "nfs": {"server": kube.nfs.server, "path": kube.nfs.path}}, f"{objects.base}/{which}"
    if kube.inputs_claim:
        return {"name": which, "persistentVolumeClaim": {"claimName": kube.inputs_claim}}, f"{objects.base}/{which}"
    return {"name": which, "emptyDir": {}}, None


def _mount(name: str, path: str, read_only: bool, sub_path: str | None = None) -> Manifest:
    mount: Manifest = {"name": name, "mountPath": path, "readOnly": read_only}
    if sub_path:
        mount["subPath"] = sub_path
    return mount


def _env(values: dict[str, str]) -> list[Manifest]:
    return [{"name": key, "value": value} for key, value in values.items()]


def _task_env(spec: TaskSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(spec.env)
    env.update({"ATOLL_TASK_DIR": "/", "ATOLL_STORE_CONFIG": f"{SECRET_DIR}/{STORE_FILE}", "ATOLL_STAGING": "fetch",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def pod_spec(spec: TaskSpec, config: Config, command: list[str], *, generation: str | None = None,
             env: dict[str, str] | None = None, ports: list[Manifest] | None = None,
             probes: Manifest | None = None, restart_policy: str = "Never",
             extra_secret: tuple[str, str] | None = None) -> Manifest:
    """The pod of a task: the fetch init container (when it has inputs) and the task container.

    Args:
        extra_secret: ``(secret name, file)`` mounted next to the store settings (the IDE's token).
    """
    objects = task_objects(spec)
    image = pinned_image(spec.build.digest, f"build {spec.build.name} of project {spec.project.name}")
    data_volume, data_sub = _input_volume(config, objects, "data")
    model_volume, model_sub = _input_volume(config, objects, "model")
    secret_items = [{"key": STORE_FILE, "path": STORE_FILE}]
    volumes: list[Manifest] = [
        {"name": "meta", "configMap": {"name": objects.meta_config(generation), "items": [
            {"key": _config_key(path), "path": path} for path in meta_files(spec)]}},
        {"name": "secrets", "projected": {"defaultMode": 0o400, "sources": [
            {"secret": {"name": objects.store_secret, "items": secret_items}},
            *([{"secret": {"name": extra_secret[0], "items": [{"key": extra_secret[1], "path": extra_secret[1]}]}}]
              if extra_secret else []),
        ]}},
        data_volume,
        model_volume,
        {"name": "scratch", "emptyDir": {}},  # /atoll/tmp: what a training publishes from
    ]
    common_mounts = [_mount("meta", "/atoll/meta", True), _mount("secrets", SECRET_DIR, True)]
    container: Manifest = {
        "name": spec.kind,
        "image": image,
        "command": list(command),
        "workingDir": "/app",
        "env": _env(_task_env(spec, env)),
        "volumeMounts": [*common_mounts, _mount("data", "/data", True, data_sub),
                         _mount("model", "/model", True, model_sub), _mount("scratch", "/atoll/tmp", False)],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    for index, mount in enumerate(spec.mounts):  # --mount: a claim, or a path of the node
        source: Manifest = ({"persistentVolumeClaim": {"claimName": mount.source, "readOnly": mount.read_only}}
                            if mount.volume else {"hostPath": {"path": mount.source}})
        volumes.append({"name": f"mount-{index}", **source})
        container["volumeMounts"].append(_mount(f"mount-{index}", mount.target, mount.read_only))
    if ports:
        container["ports"] = ports
    if probes:
        container.update(probes)
    limits = resources(spec.profile)
    if limits:
        container["resources"] = limits
    pod: Manifest = run_as({"restartPolicy": restart_policy, "containers": [container], "volumes": volumes,
                            "enableServiceLinks": False}, TASK_USER)
    if spec.datasets or spec.versions:
        pod["initContainers"] = [{
            "name": "fetch",
            "image": image,
            "command": list(FETCH_COMMAND),
            "workingDir": "/app",
            "env": _env(_task_env(spec)),
            "volumeMounts": [*common_mounts, _mount("data", "/data", False, data_sub),
                             _mount("model", "/model", False, model_sub)],
            "securityContext": {"allowPrivilegeEscalation": False},
        }]
    pull = config.container_manager.kubernetes.image_pull_secret
    if pull:
        pod["imagePullSecrets"] = [{"name": pull_secret_name(pull)}]
    return pod


def pull_secret_name(tchest: str) -> str:
    """The dockerconfigjson Secret made from treasure chest ``tchest``."""
    return object_name("registry", tchest)


def _annotations(spec: TaskSpec) -> dict[str, str]:
    return {ANNOTATION_RECORD: f"{spec.project.name}/{spec.kind}/{spec.name}",
            ANNOTATION_BUILD: f"{spec.project.name}:{spec.build.name}"}


def training_job(spec: TaskSpec, config: Config) -> Manifest:
    """The ``batch/v1 Job`` of a training: one pod, never retried, removed ``job_ttl_seconds`` after it ends."""
    objects = task_objects(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(objects.base, config.container_manager.namespace, objects.labels, _annotations(spec)),
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": config.container_manager.kubernetes.job_ttl_seconds,
            "template": {
                "metadata": {"labels": objects.labels, "annotations": _annotations(spec)},
                "spec": pod_spec(spec, config, TRAIN_COMMAND),
            },
        },
    }


def deployment(spec: TaskSpec, config: Config, generation: str, timeout: float) -> Manifest:
    """The ``apps/v1 Deployment`` of a prediction service (one generation of its pod template)."""
    objects = task_objects(spec)
    pod_labels = dict(objects.labels, **{LABEL_GENERATION: generation})
    replicas = spec.replicas
    if spec.profile is not None and spec.profile.auto_scale is not None:
        replicas = max(replicas, spec.profile.auto_scale.min_replicas)
    container_port = [{"name": "http", "containerPort": SERVICE_PORT, "protocol": "TCP"}]
    env = {"ATOLL_HOST": "0.0.0.0", "ATOLL_PORT": str(SERVICE_PORT)}
    pod = pod_spec(spec, config, SERVE_COMMAND, generation=generation, env=env, ports=container_port,
                   probes=http_probes(config.container_manager.healthcheck), restart_policy="Always")
    pod["containers"][0]["env"].append({"name": "ATOLL_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(objects.base, config.container_manager.namespace, objects.labels, _annotations(spec)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": objects.labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": max(1, int(timeout)),
            "revisionHistoryLimit": 2,
            "template": {"metadata": {"labels": pod_labels, "annotations": _annotations(spec)}, "spec": pod},
        },
    }


def discovery_service(spec: TaskSpec, config: Config) -> Manifest:
    """The headless Service whose DNS name lists the ready replicas (what the router resolves)."""
    objects = task_objects(spec)
    return service(objects.base, config.container_manager.namespace, objects.labels, objects.labels,
                   port=SERVICE_PORT, headless=True)


def exposed_service(spec: TaskSpec, config: Config) -> Manifest | None:
    """The NodePort/LoadBalancer Service of ``--port`` (None without one)."""
    if spec.port is None:
        return None
    objects = task_objects(spec)
    kind, node_port = exposed_service_type(config, spec.port)
    return service(objects.exposed_service, config.container_manager.namespace, objects.labels, objects.labels,
                   port=SERVICE_PORT if kind == "NodePort" else spec.port, service_type=kind, node_port=node_port)


def autoscaler(spec: TaskSpec, config: Config, profile: ResourceProfile | None = None) -> Manifest | None:
    """The ``autoscaling/v2 HorizontalPodAutoscaler`` of a profile's ``auto_scale`` (None without it)."""
    profile = profile or spec.profile
    if profile is None or profile.auto_scale is None:
        return None
    scale = profile.auto_scale
    objects = task_objects(spec)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(objects.base, config.container_manager.namespace, objects.labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": objects.base},
            "minReplicas": scale.min_replicas,
            "maxReplicas": scale.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": scale.target_cpu}}}],
        },
    }


def ide_token_secret(spec: TaskSpec, config: Config, token: str) -> Manifest:
    """Jupyter's settings with the token, as a Secret (never an argument or env value)."""
    objects = task_objects(spec)
    settings = {
        "IdentityProvider": {"token": token},
        "ServerApp": {"ip": "0.0.0.0", "port": IDE_PORT, "port_retries": 0, "open_browser": False,
                      "allow_remote_access": True, "root_dir": "/app"},
    }
    return secret(object_name(objects.base, "token"), config.container_manager.namespace, objects.labels,
                  {JUPYTER_FILE: orjson.dumps(settings)})


def ide_pod(spec: TaskSpec, config: Config) -> Manifest:
    """Jupyter Lab on the build, token-protected (the token Secret is :func:`ide_token_secret`)."""
    objects = task_objects(spec)
    command = ["python", "-m", "jupyterlab", f"--config={SECRET_DIR}/{JUPYTER_FILE}"]
    # Jupyter's API wants the token, which a probe must not carry: readiness is the port answering.
    tcp = {"tcpSocket": {"port": "jupyter"}, "periodSeconds": 2}
    pod = pod_spec(spec, config, command, env={"JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime"},
                   ports=[{"name": "jupyter", "containerPort": IDE_PORT, "protocol": "TCP"}],
                   probes={"readinessProbe": tcp}, restart_policy="Always",
                   extra_secret=(object_name(objects.base, "token"), JUPYTER_FILE))
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": metadata(objects.base, config.container_manager.namespace, objects.labels, _annotations(spec)),
            "spec": pod}


def ide_service(spec: TaskSpec, config: Config) -> Manifest:
    """The IDE's Service: NodePort ``--port`` when given, else ClusterIP (reach it with ``kubectl port-forward``)."""
    objects = task_objects(spec)
    if spec.port is None:
        return service(objects.base, config.container_manager.namespace, objects.labels, objects.labels,
                       port=IDE_PORT, target="jupyter")
    kind, node_port = exposed_service_type(config, spec.port)
    return service(objects.base, config.container_manager.namespace, objects.labels, objects.labels,
                   port=IDE_PORT if kind == "NodePort" else spec.port, target="jupyter", service_type=kind,
                   node_port=node_port)


def training_manifests(spec: TaskSpec, config: Config) -> list[Manifest]:
    """Everything a training creates, in creation order (the Job last: it starts the pod)."""
    return [store_secret(spec, config), meta_config_map(spec, config), training_job(spec, config)]


def deployment_manifests(spec: TaskSpec, config: Config, generation: str, timeout: float) -> list[Manifest]:
    """Everything a deployment creates, in creation order."""
    out = [store_secret(spec, config), meta_config_map(spec, config, generation),
           deployment(spec, config, generation, timeout), discovery_service(spec, config)]
    for optional in (exposed_service(spec, config), autoscaler(spec, config)):
        if optional is not None:
            out.append(optional)
    return out


def ide_manifests(spec: TaskSpec, config: Config, token: str) -> list[Manifest]:
    return [store_secret(spec, config), meta_config_map(spec, config), ide_token_secret(spec, config, token),
            ide_pod(spec, config), ide_service(spec, config)]


__all__ = [
    "FETCH_COMMAND",
    "IDE_PORT",
    "SECRET_DIR",
    "STORE_FILE",
    "TaskObjects",
    "autoscaler",
    "deployment",
    "deployment_manifests",
    "discovery_service",
    "exposed_service",
    "ide_manifests",
    "ide_pod",
    "ide_service",
    "ide_token_secret",
    "meta_config_map",
    "pod_spec",
    "pull_secret_name",
    "store_secret",
    "task_objects",
    "training_job",
    "training_manifests",
]
