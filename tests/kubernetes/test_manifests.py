"""The manifests Atoll emits: valid for Kubernetes 1.30 and 1.37 (strict schemas), and what they promise."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.config import AutoScale, Config, NfsVolume, ResourceProfile
from atoll.containers.kubernetes import island_manifests as islands
from atoll.containers.kubernetes import manifests
from atoll.containers.kubernetes.objects import image_pull_secret, namespace_manifest
from atoll.containers.spec import parse_mounts
from atoll.errors import UsageError, ValidationError
from kube_helpers import DIGEST, STORE, sample_inputs, task_spec

VERSIONS = ("1.30.0", "1.37.0")
PROFILE = ResourceProfile(cpu_request=0.5, cpu_limit=2, memory_request=256, memory_limit=1024, gpu=1,
                          auto_scale=AutoScale(min_replicas=2, max_replicas=5, target_cpu=70))
SMALL = ResourceProfile(cpu_request=0.25, cpu_limit=1, memory_limit=512)
MOUNTS = parse_mounts(["features-pvc:/features:ro", "/srv/shared:/mnt/shared"], "kubernetes")


def every_manifest(config: Config) -> list[dict[str, Any]]:
    """One of each object Atoll creates, with the optional parts switched on."""
    train = task_spec(profile=SMALL, mounts=MOUNTS, **sample_inputs())
    depl = task_spec("deploy", "online", replicas=2, port=30123, profile=PROFILE, **sample_inputs())
    ide = task_spec("ide", "ide", port=30188, profile=SMALL, mounts=MOUNTS)
    image = DIGEST.replace("iris", "isle")
    return [
        namespace_manifest("atoll"),
        *manifests.training_manifests(train, config),
        *manifests.deployment_manifests(depl, config, "g1", timeout=120),
        *manifests.ide_manifests(ide, config, token="tok"),
        image_pull_secret("registry-chest", "atoll", "registry.example:5000", "user", "pw"),
        *islands.router_manifests(config, image, b'{"version": 1, "keys": []}'),
        *islands.router_manifests(_with_tls(config), image, tls=(b"cert", b"key")),  # + its TLS Secret, HTTPS probes
        *islands.db_manifests(config, image, "pw"),
        *islands.files_manifests(config, image, "access", "secret"),
        *islands.ui_manifests(config, image, "tok", STORE),
        *islands.rbac_manifests("atoll"),
    ]


def test_every_kind_validates_strictly_against_1_30_and_1_37(kube_config: Config, tmp_path: Path) -> None:
    kube_config.container_manager.kubernetes.image_pull_secret = "chest"  # every pod refers to its Secret
    docs = every_manifest(kube_config)
    assert all(pod["imagePullSecrets"] == [{"name": "registry-chest"}] for pod in _pod_specs(docs))
    assert all(pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
               for pod in _pod_specs(docs))  # tasks, IDE and every island: no pod runs as root
    kube_config.container_manager.kubernetes.nfs = NfsVolume(server="nfs.example", path="/exports/atoll")
    docs += manifests.training_manifests(task_spec(name="on-nfs", **sample_inputs()), kube_config)
    kinds = {(d["apiVersion"], d["kind"]) for d in docs}
    assert kinds == {
        ("v1", "Namespace"), ("v1", "Secret"), ("v1", "ConfigMap"), ("batch/v1", "Job"), ("apps/v1", "Deployment"),
        ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"), ("v1", "Pod"), ("apps/v1", "StatefulSet"),
        ("v1", "PersistentVolumeClaim"), ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("policy/v1", "PodDisruptionBudget"),
    }
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    validator = Path(sys.executable).with_name("kubernetes-validate")
    for version in VERSIONS:
        done = subprocess.run([str(validator), "--strict", "-k", version, str(path)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("passed") == len(docs), done.stdout


def _with_tls(config: Config) -> Config:
    copy = config.model_copy(deep=True)
    copy.router.tls_cert, copy.router.tls_key = "/etc/atoll/router.crt", "/etc/atoll/router.key"
    return copy


def _pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [d["spec"] for d in docs if d["kind"] == "Pod"]
    specs += [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    return specs + [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Job"]


def test_the_validator_rejects_an_unknown_field(tmp_path: Path, kube_config: Config) -> None:
    job = manifests.training_job(task_spec(), kube_config)
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(job))
    validator = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run([str(validator), "--strict", "-k", VERSIONS[0], str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "imagePullPolicyy" in done.stdout


def _text(docs: list[dict[str, Any]]) -> str:
    return json.dumps(docs)


def test_store_credentials_are_only_in_the_secret(kube_config: Config) -> None:
    docs = every_manifest(kube_config)
    secrets = [d for d in docs if d["kind"] == "Secret"]
    others = [d for d in docs if d["kind"] != "Secret"]
    assert "s3cr3t" not in _text(others)
    store = next(s for s in secrets if s["metadata"]["name"] == "train-iris-t1-store")
    assert json.loads(base64.b64decode(store["data"]["store.json"])) == STORE
    job = manifests.training_job(task_spec(), kube_config)
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["secrets"]["projected"]["defaultMode"] == 0o440  # for the pod's group only
    assert job["spec"]["template"]["spec"]["securityContext"] == {
        "runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True, "fsGroup": 10001}
    mounts = {m["name"]: m for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["secrets"] == {"name": "secrets", "mountPath": "/run/secrets/atoll", "readOnly": True}
    assert mounts["data"]["readOnly"] and mounts["model"]["readOnly"]


def test_training_job_runs_once_by_digest_and_fetches_inputs_first(kube_config: Config) -> None:
    job = manifests.training_job(task_spec(**sample_inputs()), kube_config)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["metadata"]["annotations"]["atoll.io/record"] == "iris/train/t1"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["image"] for c in pod["initContainers"] + pod["containers"]] == [DIGEST, DIGEST]
    fetch = pod["initContainers"][0]
    assert {m["name"]: m["readOnly"] for m in fetch["volumeMounts"]}["data"] is False
    assert {v["name"]: v for v in pod["volumes"]}["data"] == {"name": "data", "emptyDir": {}}
    assert fetch["command"] == ["python", "-m", "atoll.runner", "fetch"]
    assert {"name": "ATOLL_STAGING", "value": "fetch"} in fetch["env"]
    meta = manifests.meta_config_map(task_spec(**sample_inputs()), kube_config)
    assert json.loads(meta["data"]["datasets.iris-clf.ds1.json"])["name"] == "ds1"
    assert json.loads(meta["data"]["versions.iris-clf.mv1.json"])["name"] == "mv1"
    items = {v["name"]: v for v in pod["volumes"]}["meta"]["configMap"]["items"]
    assert {"key": "datasets.iris-clf.ds1.json", "path": "datasets/iris-clf.ds1.json"} in items


def test_each_kind_of_task_gets_its_profile_and_its_mounts(kube_config: Config) -> None:
    job = manifests.training_job(task_spec(profile=SMALL, mounts=MOUNTS), kube_config)
    depl = manifests.deployment(task_spec("deploy", "online", profile=SMALL, mounts=MOUNTS), kube_config, "g1", 60)
    ide = next(d for d in manifests.ide_manifests(task_spec("ide", "ide", profile=SMALL, mounts=MOUNTS), kube_config,
                                                  token="t") if d["kind"] == "Pod")
    for pod in (job["spec"]["template"]["spec"], depl["spec"]["template"]["spec"], ide["spec"]):
        container = pod["containers"][0]
        assert container["resources"] == {"requests": {"cpu": "250m"}, "limits": {"cpu": "1000m", "memory": "512Mi"}}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["mount-0"]["persistentVolumeClaim"] == {"claimName": "features-pvc", "readOnly": True}
        assert volumes["mount-1"]["hostPath"] == {"path": "/srv/shared"}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["mount-0"] == {"name": "mount-0", "mountPath": "/features", "readOnly": True}
        assert mounts["mount-1"] == {"name": "mount-1", "mountPath": "/mnt/shared", "readOnly": False}
    plain = manifests.training_job(task_spec(), kube_config)["spec"]["template"]["spec"]
    assert "resources" not in plain["containers"][0] and not any(v["name"].startswith("mount") for v in plain["volumes"])


def test_a_task_without_inputs_has_no_init_container(kube_config: Config) -> None:
    pod = manifests.training_job(task_spec(), kube_config)["spec"]["template"]["spec"]
    assert "initContainers" not in pod


def test_inputs_go_to_nfs_or_a_claim_when_configured(kube_config: Config) -> None:
    kube = kube_config.container_manager.kubernetes
    kube.nfs = NfsVolume(server="nfs.example", path="/exports/atoll")
    pod = manifests.training_job(task_spec(**sample_inputs()), kube_config)["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["data"]["nfs"] == {"server": "nfs.example", "path": "/exports/atoll"}
    assert {m["name"]: m for m in pod["initContainers"][0]["volumeMounts"]}["data"]["subPath"] == "train-iris-t1/data"
    kube.nfs = None
    kube.inputs_claim = "atoll-inputs"
    pod = manifests.training_job(task_spec(**sample_inputs()), kube_config)["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["model"]["persistentVolumeClaim"] == {"claimName": "atoll-inputs"}


def test_a_build_without_registry_digest_is_refused(kube_config: Config) -> None:
    spec = task_spec()
    spec.build.digest = "sha256:" + "0" * 64  # a local image id: no node can pull it
    with pytest.raises(UsageError, match="docker.target_registry"):
        manifests.training_job(spec, kube_config)


def test_deployment_rolls_without_losing_capacity_and_probes_health(kube_config: Config) -> None:
    spec = task_spec("deploy", "online", replicas=3, profile=PROFILE)
    depl = manifests.deployment(spec, kube_config, "g7", timeout=90)
    assert depl["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert depl["spec"]["progressDeadlineSeconds"] == 90
    assert depl["spec"]["replicas"] == 3
    template = depl["spec"]["template"]
    assert template["metadata"]["labels"]["atoll.io/generation"] == "g7"
    assert set(depl["spec"]["selector"]["matchLabels"]) < set(template["metadata"]["labels"])
    container = template["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "2000m", "memory": "1024Mi", "nvidia.com/gpu": "1"}}
    assert {v["name"]: v for v in template["spec"]["volumes"]}["meta"]["configMap"]["name"] == "depl-iris-online-meta-g7"


def test_autoscaler_and_services(kube_config: Config) -> None:
    spec = task_spec("deploy", "online", port=30123, profile=PROFILE)
    hpa = manifests.autoscaler(spec, kube_config)
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "depl-iris-online"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert manifests.deployment(spec, kube_config, "g", 60)["spec"]["replicas"] == 2  # at least min_replicas
    assert manifests.discovery_service(spec, kube_config)["spec"]["clusterIP"] == "None"
    exposed = manifests.exposed_service(spec, kube_config)
    assert exposed is not None
    assert exposed["spec"]["type"] == "NodePort" and exposed["spec"]["ports"][0]["nodePort"] == 30123
    kube_config.container_manager.kubernetes.service_type = "LoadBalancer"
    exposed = manifests.exposed_service(spec, kube_config)
    assert exposed is not None and exposed["spec"]["ports"][0]["port"] == 30123
    assert manifests.autoscaler(task_spec("deploy", "plain"), kube_config) is None


def test_node_port_outside_the_range_is_a_usage_error(kube_config: Config) -> None:
    with pytest.raises(UsageError, match="30000-32767"):
        manifests.exposed_service(task_spec("deploy", "online", port=8080), kube_config)


def test_deployment_names_the_router_predicts_are_never_hashed(kube_config: Config) -> None:
    with pytest.raises(ValidationError, match="at most 63"):
        manifests.discovery_service(task_spec("deploy", "d" * 60), kube_config)
    long_training = manifests.training_job(task_spec(name="t" * 63), kube_config)
    assert len(long_training["metadata"]["name"]) <= 63


def test_ide_token_is_in_a_secret_not_the_pod(kube_config: Config) -> None:
    docs = manifests.ide_manifests(task_spec("ide", "ide"), kube_config, token="very-secret-token")
    assert "very-secret-token" not in _text([d for d in docs if d["kind"] != "Secret"])
    pod = next(d for d in docs if d["kind"] == "Pod")
    assert pod["spec"]["containers"][0]["command"][-1] == "--config=/run/secrets/atoll/jupyter_server_config.json"
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["type"] == "ClusterIP"  # no --port: reached through kubectl port-forward


def test_island_credentials_are_secret_files(kube_config: Config) -> None:
    image = DIGEST
    db = islands.db_manifests(kube_config, image, "db-password-1")
    files = islands.files_manifests(kube_config, image, "ak", "sk-secret")
    assert "db-password-1" not in _text([d for d in db if d["kind"] != "Secret"])
    assert "sk-secret" not in _text([d for d in files if d["kind"] != "Secret"])
    statefulset = next(d for d in db if d["kind"] == "StatefulSet")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10240Mi"
    kube_config.container_manager.kubernetes.storage_class = "fast"
    claim = next(d for d in islands.files_manifests(kube_config, image, "a", "b") if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "fast"


def test_the_router_reads_the_keys_from_a_secret_directory(kube_config: Config) -> None:
    docs = islands.router_manifests(kube_config, DIGEST, b'{"pepper": "p3pp3r"}', b'{"secrets": {"i/o": "r3pl1ca"}}')
    assert [d["kind"] for d in docs] == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
    assert "p3pp3r" not in _text(docs[1:]) and "r3pl1ca" not in _text(docs[1:])
    assert base64.b64decode(docs[0]["data"]["keys.json"]) == b'{"pepper": "p3pp3r"}'
    assert base64.b64decode(docs[0]["data"]["replica-secrets.json"]) == b'{"secrets": {"i/o": "r3pl1ca"}}'
    pod = docs[1]["spec"]["template"]["spec"]
    mount = pod["containers"][0]["volumeMounts"][0]
    assert "subPath" not in mount and mount["readOnly"]  # a subPath mount would never see the Secret's updates
    assert pod["automountServiceAccountToken"] is False
    kube_config.router.auth = False
    docs = islands.router_manifests(kube_config, DIGEST)
    assert [d["kind"] for d in docs] == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
    assert list(docs[0]["data"]) == ["replica-secrets.json"]
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["command"][-4:-2] == ["--auth", "off"]


def test_the_router_runs_several_pods_that_a_roll_out_or_a_drain_never_all_stops(kube_config: Config) -> None:
    """router.replicas pods (default 2): ready ones only behind the Service, on different nodes where possible."""
    assert kube_config.router.replicas == 2
    docs = {d["kind"]: d for d in islands.router_manifests(kube_config, DIGEST)}
    spec = docs["Deployment"]["spec"]
    own = spec["selector"]["matchLabels"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = spec["template"]["spec"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert pod["affinity"] == {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": own},
                                            "topologyKey": "kubernetes.io/hostname"}}]}}
    assert docs["Service"]["spec"]["selector"] == own
    budget = docs["PodDisruptionBudget"]
    assert budget["metadata"]["name"] == "atoll-isle-router"
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": own}}
    kube_config.router.replicas = 1  # one pod: a budget of one would block every node drain
    docs = {d["kind"]: d for d in islands.router_manifests(kube_config, DIGEST)}
    assert docs["Deployment"]["spec"]["replicas"] == 1 and "PodDisruptionBudget" not in docs
    rules = {(g, r) for rule in islands.RBAC_RULES for g in rule["apiGroups"] for r in rule["resources"]}
    assert ("policy", "poddisruptionbudgets") in rules  # what `isle router setup|stop` needs


def test_a_replica_gets_its_secret_in_the_store_secret_only(kube_config: Config, tmp_path: Path) -> None:
    from atoll.containers.kubernetes.manager import KubernetesContainerManager
    from atoll.testing.memory import MemoryMetadataStore
    from atoll.testing.memory_files import MemoryFileStore

    manager = KubernetesContainerManager(kube_config, MemoryMetadataStore(), MemoryFileStore())
    manager._ensure_pull_secret = lambda: None  # type: ignore[method-assign]  # no cluster here
    replica = {"secret": "r3pl1ca-s3cr3t", "limits": {"max_body": 1024}}
    spec = manager._for_cluster(task_spec("deploy", "online", replica=replica))
    docs = manifests.deployment_manifests(spec, kube_config, "g1", 60)
    store = next(d for d in docs if d["kind"] == "Secret")
    assert json.loads(base64.b64decode(store["data"]["store.json"]))["replica"] == replica
    assert "r3pl1ca-s3cr3t" not in _text([d for d in docs if d["kind"] != "Secret"])


def test_pull_secret_is_a_dockerconfigjson(kube_config: Config) -> None:
    secret = image_pull_secret("registry-chest", "atoll", "registry.example:5000", "u", "p")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["registry.example:5000"]["auth"] == base64.b64encode(b"u:p").decode()
    kube_config.container_manager.kubernetes.image_pull_secret = "chest"
    pod = manifests.training_job(task_spec(), kube_config)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-chest"}]


def test_auto_scale_needs_a_cpu_request() -> None:
    from pydantic import ValidationError as PydanticError

    with pytest.raises(PydanticError, match="cpu_request"):
        ResourceProfile(auto_scale=AutoScale(max_replicas=3))
