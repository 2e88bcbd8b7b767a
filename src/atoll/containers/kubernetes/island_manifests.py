"""Manifests of the native islands on Kubernetes and the RBAC Atoll needs (pure functions).

Islands::

    router   Deployment (python -m atoll.router, DNS discovery of the deployments'
             headless Services; router.replicas pods) + Secret (the replica secrets file,
             and the API keys file when router.auth) [+ Secret (TLS pair)] + Service of
             ``kubernetes.service_type`` [+ PodDisruptionBudget when router.replicas > 1]
    db       PostgreSQL StatefulSet + its volume claim + Secret (password file) + Service
    files    S3 server (rclone serve s3) Deployment + PersistentVolumeClaim + Secret + Service
    ui       the web UI Deployment + Secret (token, store settings) + Service

Island images are the ones Atoll builds for swarm, pushed to
``docker.target_registry`` and referred to by digest. Credentials come from
the islands' treasure chests and reach the pods only as Secret files.
"""

from __future__ import annotations

import hashlib
import json

from atoll.config import Config
from atoll.containers.kubernetes.manifests import pull_secret_name
from atoll.containers.kubernetes.objects import (
    SERVICE_PORT,
    Manifest,
    exact_name,
    http_probes,
    labels,
    memory_quantity,
    metadata,
    object_name,
    pinned_image,
    run_as,
    secret,
    service,
)
from atoll.containers.spec import TASK_USER

DB_PORT = 5432
FILES_PORT = 9000
ISLAND_SECRET_DIR = "/run/secrets/atoll"
DATA_DIR = "/data"


def island_name(config: Config, island: str) -> str:
    """``<namespace>-isle-<island>``: the name tasks reach it by, as on swarm (``task_store_config(in_network=True)``)."""
    return exact_name(config.container_manager.namespace, "isle", island)


def _island_labels(island: str) -> dict[str, str]:
    return labels("island", None, island)


def _claim_spec(config: Config) -> Manifest:
    kube = config.container_manager.kubernetes
    spec: Manifest = {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": memory_quantity(kube.island_volume_mb)}}}
    if kube.storage_class:
        spec["storageClassName"] = kube.storage_class
    return spec


def _container(name: str, image: str, command: list[str] | None, port: int, mounts: list[Manifest]) -> Manifest:
    container: Manifest = {"name": name, "image": image}
    if command:  # else the image's entry point (the db and files islands' own scripts)
        container["command"] = command
    return container | {
            "ports": [{"name": "tcp" if name == "db" else "http", "containerPort": port, "protocol": "TCP"}],
            "volumeMounts": mounts, "securityContext": {"allowPrivilegeEscalation": False}}


def _secret_volume(secret_name: str) -> Manifest:
    return {"name": "secrets", "secret": {"secretName": secret_name, "defaultMode": 0o400}}


def _run_as_island_user(workload: Manifest) -> Manifest:
    """The db and files images run as uid/gid 999 (``ISLAND_USER``): the claim and the secret files
    are given to that group (``fsGroup``), the secrets readable by it (0440)."""
    run_as(workload["spec"]["template"]["spec"], (999, 999))
    return workload


def _pull_secrets(config: Config, pod: Manifest) -> Manifest:
    """``pod`` with the ``kubernetes.image_pull_secret`` Secret the task pods use too (when set)."""
    chest = config.container_manager.kubernetes.image_pull_secret
    if chest:
        pod["imagePullSecrets"] = [{"name": pull_secret_name(chest)}]
    return pod


KEYS_FILE = "keys.json"
REPLICA_SECRETS_FILE = "replica-secrets.json"
#: Where the router pod sees its TLS pair (the Secret ``<name>-tls``).
TLS_DIR = "/run/secrets/atoll-tls"
TLS_FILES = ("tls.crt", "tls.key")
#: Pod-template annotations: a digest of what the router reads only when it starts (a change rolls it over).
ANNOTATION_REPLICA_SECRETS = "atoll.io/replica-secrets"
ANNOTATION_TLS = "atoll.io/tls-pair"
#: Spread the router pods over nodes (pod anti-affinity, preferred).
HOST_TOPOLOGY = "kubernetes.io/hostname"


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def router_keys_secret(config: Config, keys: bytes = b"", replica_secrets: bytes = b"") -> Manifest:
    """The Secret ``<name>-keys``: the deployments' replica secrets file, and the API keys file (``router.auth``)."""
    files = {REPLICA_SECRETS_FILE: replica_secrets}
    if config.router.auth:
        files[KEYS_FILE] = keys
    name = island_name(config, "router")
    return secret(object_name(name, "keys"), config.container_manager.namespace, _island_labels("router"), files)


def router_manifests(config: Config, image: str, keys: bytes = b"", replica_secrets: bytes = b"",
                     tls: tuple[bytes, bytes] = (b"", b"")) -> list[Manifest]:
    """The router island: finds replicas as A records of ``depl-<proj>-<name>`` headless Services.

    ``router.replicas`` pods (default 2) behind the Service, each with a
    readiness probe on ``/health`` (the Service sends traffic to ready pods
    only), preferably on different nodes; a rolling update never has fewer
    than that many ready (``maxUnavailable: 0``, ``maxSurge: 1``) and, with
    more than one, a PodDisruptionBudget keeps one through voluntary
    disruptions (``minAvailable: 1``). A killed pod's container is restarted by
    its kubelet while the others keep serving.

    The API keys file (``atoll.api.keys.keys_document``: hashes and the
    pepper, no key; with ``router.auth``) and the replica secrets file
    (``atoll.api.replica_secrets``: what the router sends replicas as
    ``x-atoll-replica-secret``) are the Secret ``<name>-keys`` mounted read-only
    as a directory (no ``subPath``), so the kubelet refreshes the files when
    Atoll updates the Secret and the router re-reads them. A replica secret must
    be there before the deployment's first request, sooner than the kubelet's
    refresh: the pod template carries a digest of the secrets file, so a new
    one rolls the router over (a new pod reads the files when it starts).

    With ``router.tls_cert``/``tls_key`` the pair (``tls``: PEM contents) is the
    Secret ``<name>-tls`` mounted at ``/run/secrets/atoll-tls``; the probes use
    HTTPS and a new pair rolls the router over.
    """
    ns = config.container_manager.namespace
    name = island_name(config, "router")
    own = _island_labels("router")
    auth = (["--keys-file", f"{ISLAND_SECRET_DIR}/{KEYS_FILE}"] if config.router.auth else ["--auth", "off"])
    tls_args = (["--tls-cert", f"{TLS_DIR}/{TLS_FILES[0]}", "--tls-key", f"{TLS_DIR}/{TLS_FILES[1]}"]
                if config.router.tls else [])
    command = ["python", "-m", "atoll.router", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
               "--discovery", "dns", "--dns-pattern", f"depl-{{project}}-{{deployment}}.{ns}.svc.cluster.local",
               "--dns-port", str(SERVICE_PORT), *tls_args, *auth,
               "--replica-secrets", f"{ISLAND_SECRET_DIR}/{REPLICA_SECRETS_FILE}"]
    mounts: list[Manifest] = [{"name": "secrets", "mountPath": ISLAND_SECRET_DIR, "readOnly": True}]
    keys_secret = router_keys_secret(config, keys, replica_secrets)
    volumes = [_secret_volume(keys_secret["metadata"]["name"])]
    docs = [keys_secret]
    annotations = {ANNOTATION_REPLICA_SECRETS: _digest(replica_secrets)}
    if config.router.tls:
        tls_name = object_name(name, "tls")
        docs.append(secret(tls_name, ns, own, dict(zip(TLS_FILES, tls, strict=True))))
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": tls_name, "defaultMode": 0o400}})
        annotations[ANNOTATION_TLS] = _digest(*tls)
    container = _container("router", pinned_image(image, "the router island image"), command, SERVICE_PORT, mounts)
    probes = http_probes(config.container_manager.healthcheck)
    if config.router.tls:  # the kubelet does not verify the certificate of an HTTPS probe
        for probe in probes.values():
            probe["httpGet"]["scheme"] = "HTTPS"
    container.update(probes)
    pod: Manifest = {"containers": [container], "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "volumes": volumes}
    # Pods on different nodes where the scheduler can: a lost node leaves another router serving.
    pod["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": own}, "topologyKey": HOST_TOPOLOGY}}]}}
    replicas = config.router.replicas
    deployment: Manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name, ns, own),
        "spec": {"replicas": replicas, "selector": {"matchLabels": own},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": own, "annotations": annotations},
                              "spec": _pull_secrets(config, run_as(pod, TASK_USER))}},
    }
    kind = config.container_manager.kubernetes.service_type
    node_port = config.router.port if kind == "NodePort" and 30000 <= config.router.port <= 32767 else None
    port = SERVICE_PORT if kind != "LoadBalancer" else config.router.port
    docs += [deployment, service(name, ns, own, own, port=port, service_type=kind, node_port=node_port)]
    if replicas > 1:  # a node drain evicts one router pod at a time
        docs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(name, ns, own),
                     "spec": {"minAvailable": 1, "selector": {"matchLabels": own}}})
    return docs


def db_manifests(config: Config, image: str, password: str) -> list[Manifest]:
    """PostgreSQL as a one-replica StatefulSet; the ``atoll`` user's password is a Secret file.

    The image's entry point (``db-entrypoint.sh``) initialises ``PGDATA`` on the claim
    and (re)applies the password from ``POSTGRES_PASSWORD_FILE`` on every start.
    """
    ns = config.container_manager.namespace
    name = island_name(config, "db")
    own = _island_labels("db")
    secret_name = object_name(name, "auth")
    mounts: list[Manifest] = [{"name": "data", "mountPath": DATA_DIR},
              {"name": "secrets", "mountPath": ISLAND_SECRET_DIR, "readOnly": True}]
    container = _container("db", pinned_image(image, "the db island image"), None, DB_PORT, mounts)
    container["env"] = [{"name": "POSTGRES_PASSWORD_FILE", "value": f"{ISLAND_SECRET_DIR}/password"},
                        {"name": "PGDATA", "value": f"{DATA_DIR}/pgdata"}]
    container["readinessProbe"] = {"tcpSocket": {"port": "tcp"}, "periodSeconds": 2}
    statefulset: Manifest = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": metadata(name, ns, own),
        "spec": {
            "serviceName": name, "replicas": 1, "selector": {"matchLabels": own},
            "template": {"metadata": {"labels": own},
                         "spec": _pull_secrets(config, {
                             "containers": [container], "volumes": [_secret_volume(secret_name)],
                             "automountServiceAccountToken": False, "enableServiceLinks": False})},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": own}, "spec": _claim_spec(config)}],
        },
    }
    _run_as_island_user(statefulset)
    return [secret(secret_name, ns, own, {"password": password.encode()}), statefulset,
            service(name, ns, own, own, port=DB_PORT, target="tcp")]


def files_manifests(config: Config, image: str, access_key: str, secret_key: str) -> list[Manifest]:
    """The S3 server on a PersistentVolumeClaim; its keys are a Secret file read by the entry point."""
    ns = config.container_manager.namespace
    name = island_name(config, "files")
    own = _island_labels("files")
    secret_name = object_name(name, "auth")
    claim: Manifest = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata(name, ns, own),
                       "spec": _claim_spec(config)}
    mounts: list[Manifest] = [{"name": "data", "mountPath": DATA_DIR},
              {"name": "secrets", "mountPath": ISLAND_SECRET_DIR, "readOnly": True}]
    container = _container("files", pinned_image(image, "the files island image"), None, FILES_PORT, mounts)
    container["env"] = [{"name": "ATOLL_FILES_KEYS_FILE", "value": f"{ISLAND_SECRET_DIR}/keys"},
                        {"name": "ATOLL_FILES_DATA", "value": DATA_DIR}]
    container["readinessProbe"] = {"tcpSocket": {"port": "http"}, "periodSeconds": 2}
    deployment: Manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name, ns, own),
        # One writer on a ReadWriteOnce claim: replace the pod, never run two.
        "spec": {"replicas": 1, "selector": {"matchLabels": own}, "strategy": {"type": "Recreate"},
                 "template": {"metadata": {"labels": own}, "spec": _pull_secrets(config, {
                     "containers": [container], "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}},
                                 _secret_volume(secret_name)]})}},
    }
    _run_as_island_user(deployment)
    keys = f"{access_key},{secret_key}".encode()
    return [secret(secret_name, ns, own, {"keys": keys}), claim, deployment,
            service(name, ns, own, own, port=FILES_PORT)]


def ui_manifests(config: Config, image: str, token: str, store_config: Manifest) -> list[Manifest]:
    """The web UI (``python -m atoll.ui``): Deployment + Secret (token, store settings) + Service.

    ``image`` is the ui island image (the base image plus the ``ui`` extra,
    ``atoll.islands.ui.SwarmUiIsland.ensure_image``); ``store_config`` the store
    settings a task gets in the cluster (``task_store_config(..., in_network=True)``).
    Embedded stores (a SQLite file, a local directory) cannot reach a pod: the
    caller refuses them. The token and the store settings are Secret files only;
    the pod gets no service account token (the UI never talks to the API server),
    so pages needing the container manager say so, as on swarm.
    """
    ns = config.container_manager.namespace
    name = island_name(config, "ui")
    own = _island_labels("ui")
    secret_name = object_name(name, "auth")
    mounts: list[Manifest] = [{"name": "secrets", "mountPath": ISLAND_SECRET_DIR, "readOnly": True}]
    command = ["python", "-m", "atoll.ui", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
               "--state-file", f"{ISLAND_SECRET_DIR}/token.json", "--store-config", f"{ISLAND_SECRET_DIR}/stores.json"]
    container = _container("ui", pinned_image(image, "the ui island image"), command, SERVICE_PORT, mounts)
    container["readinessProbe"] = {"tcpSocket": {"port": "http"}, "periodSeconds": 2}  # every path needs the token
    deployment: Manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name, ns, own),
        "spec": {"replicas": 1, "selector": {"matchLabels": own},
                 "template": {"metadata": {"labels": own}, "spec": _pull_secrets(config, run_as({
                     "containers": [container], "volumes": [_secret_volume(secret_name)],
                     "automountServiceAccountToken": False, "enableServiceLinks": False}, TASK_USER))}},
    }
    files = {"token.json": json.dumps({"token": token}).encode(), "stores.json": json.dumps(store_config).encode()}
    kind = config.container_manager.kubernetes.service_type
    node_port = config.ui.port if kind == "NodePort" and 30000 <= config.ui.port <= 32767 else None
    port = SERVICE_PORT if kind != "LoadBalancer" else config.ui.port
    return [secret(secret_name, ns, own, files), deployment,
            service(name, ns, own, own, port=port, service_type=kind, node_port=node_port)]


RBAC_RULES: list[Manifest] = [
    {"apiGroups": [""], "resources": ["pods", "services", "secrets", "configmaps", "persistentvolumeclaims"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],  # the router island's
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
]


def rbac_manifests(namespace: str, account: str = "atoll") -> list[Manifest]:
    """ServiceAccount + Role + RoleBinding: what Atoll needs in its namespace, nothing cluster-wide.

    (Creating the namespace itself needs a cluster-level grant; create it beforehand
    and set ``kubernetes.create_namespace: false`` instead.)
    """
    own = {"app.kubernetes.io/managed-by": "atoll"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(account, namespace, own)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata(account, namespace, own),
         "rules": RBAC_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata(account, namespace, own),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]


__all__ = [
    "DB_PORT",
    "FILES_PORT",
    "KEYS_FILE",
    "RBAC_RULES",
    "REPLICA_SECRETS_FILE",
    "db_manifests",
    "files_manifests",
    "island_name",
    "rbac_manifests",
    "router_keys_secret",
    "router_manifests",
    "ui_manifests",
]


#: The annotation of an island workload carrying the hash of its non-Secret objects.
ANNOTATION_SPEC = "atoll.io/spec-hash"


def stamp_spec(docs: list[Manifest], kind: str) -> str:
    """Annotate the workload with a hash of the island's non-Secret objects; return it."""
    plain = [doc for doc in docs if doc["kind"] != "Secret"]
    digest = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]
    for doc in docs:
        if doc["kind"] == kind:
            doc["metadata"].setdefault("annotations", {})[ANNOTATION_SPEC] = digest
    return digest


def workload_containers(workload: Manifest) -> list[Manifest]:
    return list((((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or [])


def spec_annotation(workload: Manifest) -> str | None:
    return ((workload.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SPEC)


def ready_replicas(workload: Manifest) -> tuple[int, int]:
    """``(ready, wanted)`` replicas."""
    wanted = int((workload.get("spec") or {}).get("replicas", 1))
    return int((workload.get("status") or {}).get("readyReplicas") or 0), wanted


def rolled_out(workload: Manifest) -> bool:
    """The controller saw the current spec and every replica runs it, ready; no old one is left."""
    status = workload.get("status") or {}
    ready, wanted = ready_replicas(workload)
    return (int(status.get("observedGeneration") or 0) >= int(workload["metadata"].get("generation") or 1)
            and int(status.get("updatedReplicas") or 0) >= wanted and ready >= wanted
            and int(status.get("replicas") or 0) <= wanted)
