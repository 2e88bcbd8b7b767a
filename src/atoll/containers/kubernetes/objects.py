"""Names, labels and the pod parts every Atoll manifest shares (pure functions, no I/O).

Every object Atoll creates carries ``app.kubernetes.io/managed-by: atoll`` and
the labels below, so ``kubectl get all -l atoll.io/project=iris`` shows a
project's objects and removal can find everything it created::

    atoll.io/kind        train | deploy | ide | island
    atoll.io/project     the project name (islands: none)
    atoll.io/name        the training / deployment / island name
    atoll.io/generation  deployments: the rollout that made a pod template

Images are always ``repository@sha256:...``: what runs is what was recorded.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

from atoll.config import Config, HealthcheckSection, ResourceProfile
from atoll.errors import UsageError, ValidationError

Manifest = dict[str, Any]

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_KIND = "atoll.io/kind"
LABEL_PROJECT = "atoll.io/project"
LABEL_NAME = "atoll.io/name"
LABEL_GENERATION = "atoll.io/generation"
ANNOTATION_RECORD = "atoll.io/record"
ANNOTATION_BUILD = "atoll.io/build"

SERVICE_PORT = 8080  # what the prediction server and the router listen on in their pod
MAX_NAME = 63  # DNS label: Service, Job and label values


def object_name(*parts: str) -> str:
    """``parts`` joined by dashes, kept within a DNS label (hash-suffixed when too long)."""
    name = "-".join(p for p in parts if p)
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 9].rstrip('-')}-{digest}"


def exact_name(*parts: str) -> str:
    """``parts`` joined by dashes; refused when too long (names others must predict, e.g. the router).

    Raises:
        ValidationError: the joined name exceeds 63 characters.
    """
    name = "-".join(parts)
    if len(name) > MAX_NAME:
        raise ValidationError(
            f"{name!r} is {len(name)} characters; a Kubernetes service name holds at most {MAX_NAME}: "
            "use a shorter project or deployment name"
        )
    return name


def labels(kind: str, project: str | None, name: str, **extra: str) -> dict[str, str]:
    """The identifying labels of an object (and its pods)."""
    out = {MANAGED_BY: "atoll", LABEL_KIND: kind, LABEL_NAME: name}
    if project:
        out[LABEL_PROJECT] = project
    out.update(extra)
    return out


def selector(kind: str, project: str | None, name: str) -> str:
    """A label selector string matching :func:`labels` (for list/delete calls)."""
    return ",".join(f"{k}={v}" for k, v in labels(kind, project, name).items())


def metadata(name: str, namespace: str | None, object_labels: dict[str, str],
             annotations: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "labels": dict(object_labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def pinned_image(ref: str | None, what: str) -> str:
    """``ref`` when it is ``repository@sha256:...`` (nodes pull it from the registry).

    Raises:
        UsageError: the build has no registry digest (not pushed to ``docker.target_registry``).
    """
    if not ref or "@sha256:" not in ref or ref.startswith("sha256:"):
        raise UsageError(
            f"{what} has no registry digest ({ref or 'no image'}): Kubernetes nodes pull images, "
            "so build with docker.target_registry set (the build is pushed there and recorded by digest)"
        )
    return ref


def cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def memory_quantity(mb: int) -> str:
    return f"{mb}Mi"


def resources(profile: ResourceProfile | None) -> Manifest:
    """``resources`` of a container: requests/limits from a profile, GPUs as ``nvidia.com/gpu``."""
    if profile is None:
        return {}
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if profile.cpu_request is not None:
        requests["cpu"] = cpu_quantity(profile.cpu_request)
    if profile.cpu_limit is not None:
        limits["cpu"] = cpu_quantity(profile.cpu_limit)
    if profile.memory_request is not None:
        requests["memory"] = memory_quantity(profile.memory_request)
    if profile.memory_limit is not None:
        limits["memory"] = memory_quantity(profile.memory_limit)
    if profile.gpu:
        # Extended resources cannot be overcommitted: Kubernetes wants the limit (request = limit).
        limits["nvidia.com/gpu"] = str(profile.gpu)
    out: Manifest = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def http_probes(healthcheck: HealthcheckSection, path: str = "/health", port: str = "http") -> Manifest:
    """Startup, readiness and liveness probes on ``GET path``.

    The startup probe gives the model ``start_period`` to load; after that the
    readiness probe takes a replica out of its Services while ``/health`` says
    503 and the liveness probe restarts one that stopped answering.
    """
    period = _seconds(healthcheck.interval)
    probe = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": _seconds(healthcheck.timeout),
        "failureThreshold": max(1, healthcheck.retries),
    }
    startup = dict(probe, failureThreshold=max(1, math.ceil(healthcheck.start_period / period)))
    return {"startupProbe": startup, "readinessProbe": dict(probe), "livenessProbe": dict(probe)}


def run_as(pod: Manifest, user: tuple[int, int]) -> Manifest:
    """``pod`` running as ``user`` (uid, gid; never root), its Secret and ConfigMap files given to that
    group (``fsGroup``) and readable by it (0440 where they were 0400)."""
    uid, gid = user
    pod["securityContext"] = {"runAsUser": uid, "runAsGroup": gid, "runAsNonRoot": True, "fsGroup": gid}
    for volume in pod.get("volumes", []):
        for source in (volume.get("secret"), volume.get("projected")):
            if source is not None and source.get("defaultMode") == 0o400:
                source["defaultMode"] = 0o440
    return pod


def secret(name: str, namespace: str, object_labels: dict[str, str], files: dict[str, bytes],
           secret_type: str = "Opaque") -> Manifest:
    """A Secret holding ``files`` (mounted read-only where a task needs them)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, object_labels),
        "type": secret_type,
        "immutable": False,
        "data": {key: base64.b64encode(value).decode() for key, value in files.items()},
    }


def config_map(name: str, namespace: str, object_labels: dict[str, str], files: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, namespace, object_labels),
        "data": dict(files),
    }


def image_pull_secret(name: str, namespace: str, registry: str, user: str, password: str) -> Manifest:
    """A ``kubernetes.io/dockerconfigjson`` Secret letting the nodes pull from ``registry``."""
    import orjson

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {registry: {"username": user, "password": password, "auth": auth}}}
    return secret(name, namespace, labels("registry", None, name), {".dockerconfigjson": orjson.dumps(config)},
                  secret_type="kubernetes.io/dockerconfigjson")


def service(name: str, namespace: str, object_labels: dict[str, str], pod_selector: dict[str, str], *,
            port: int, target: str = "http", service_type: str = "ClusterIP", node_port: int | None = None,
            headless: bool = False) -> Manifest:
    """A Service: headless for discovery (one DNS record per ready pod) or an exposed one."""
    port_spec: Manifest = {"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}
    if node_port is not None:
        port_spec["nodePort"] = node_port
    spec: Manifest = {"selector": dict(pod_selector), "ports": [port_spec]}
    if headless:
        spec["clusterIP"] = "None"
    else:
        spec["type"] = service_type
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(name, namespace, object_labels),
            "spec": spec}


def exposed_service_type(config: Config, port: int | None) -> tuple[str, int | None]:
    """Service type and nodePort for a ``--port``: the configured type, NodePort when that is ClusterIP.

    Raises:
        UsageError: a NodePort outside Kubernetes' default node-port range.
    """
    kind = config.container_manager.kubernetes.service_type
    if kind == "ClusterIP":
        kind = "NodePort"
    if kind == "NodePort" and port is not None and not 30000 <= port <= 32767:
        raise UsageError(f"--port {port}: a NodePort must be within 30000-32767 (the cluster's node-port range)")
    return kind, port if kind == "NodePort" else None


def namespace_manifest(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {MANAGED_BY: "atoll"}}}


__all__ = [
    "ANNOTATION_BUILD",
    "ANNOTATION_RECORD",
    "LABEL_GENERATION",
    "LABEL_KIND",
    "LABEL_NAME",
    "LABEL_PROJECT",
    "MANAGED_BY",
    "SERVICE_PORT",
    "Manifest",
    "config_map",
    "exact_name",
    "exposed_service_type",
    "http_probes",
    "image_pull_secret",
    "labels",
    "metadata",
    "namespace_manifest",
    "object_name",
    "pinned_image",
    "redacted",
    "resources",
    "secret",
    "selector",
    "service",
]


REDACTED_NOTE = "atoll.io/redacted"


def redacted(manifest: Manifest) -> Manifest:
    """``manifest`` safe to print: a Secret's values emptied (its keys kept), anything else unchanged."""
    if manifest.get("kind") != "Secret":
        return manifest
    out = dict(manifest, data={key: "" for key in manifest.get("data", {})})
    out["metadata"] = dict(manifest["metadata"])
    out["metadata"]["annotations"] = {
        **manifest["metadata"].get("annotations", {}),
        REDACTED_NOTE: "values not printed; atoll fills them from the stores' settings and treasure chests",
    }
    return out
