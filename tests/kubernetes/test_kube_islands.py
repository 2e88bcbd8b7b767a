"""Islands on Kubernetes: `atoll isle router|db|files|ui setup|status|stop` and get-me-started on the emulated cluster.

The test controller plays the control plane (Deployment and StatefulSet
controllers, a scripted kubelet making pods ready or stuck); what Atoll does
is asserted through the API calls it made and the objects in the cluster.
Images are not built here: the island's image lookup is replaced by a pushed
reference (building and pushing is the swarm islands' code, tested there).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.api import islands as api
from atoll.api.context import AtollContext
from atoll.api.get_me_started import get_me_started
from atoll.api.keys import delete_key, keys_document, new_key
from atoll.api.replica_secrets import drop_replica_secret, replica_secret
from atoll.config import Config, ResourceProfile
from atoll.credentials import home_chest
from atoll.domain.records import Project
from atoll.errors import BackendUnavailableError, ConfigError
from atoll.islands import kubernetes as kube_islands
from kube_helpers import Cluster, wait_for

IMAGE = "registry.example:5000/atoll/isle@sha256:" + "cd" * 32
KINDS = ("deployments", "statefulsets", "services", "secrets", "persistentvolumeclaims", "pods",
         "poddisruptionbudgets")
ATOLL = Path(sys.executable).parent / "atoll"


@pytest.fixture
def ctx(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[AtollContext]:
    pushed: list[str] = []

    def push(config: Config, twin: Any, log: Any) -> tuple[str, None]:
        pushed.append(twin.name)
        return IMAGE.replace("isle", f"isle-{twin.name}"), None

    monkeypatch.setattr(kube_islands, "push_island_image", push)
    cluster.config.islands.setup_timeout = 20
    context = AtollContext(cluster.config)
    context.pushed = pushed  # type: ignore[attr-defined]
    yield context
    context.close()


def names(cluster: Cluster) -> dict[str, list[str]]:
    return {kind: sorted(o["metadata"]["name"] for o in cluster.emulated.objects(kind)) for kind in KINDS
            if cluster.emulated.objects(kind)}


def secret_files(cluster: Cluster, name: str) -> dict[str, bytes]:
    found = next(s for s in cluster.emulated.objects("secrets") if s["metadata"]["name"] == name)
    return {key: base64.b64decode(value) for key, value in found["data"].items()}


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`atoll -o json ...` as a user runs it, configured through the environment."""
    config = cluster.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    env.update({"ATOLL_HOME": str(config.home), "ATOLL_CONTAINER_MANAGER__TYPE": "kube",
                "ATOLL_CONTAINER_MANAGER__KUBERNETES__KUBECONFIG": str(config.container_manager.kubernetes.kubeconfig),
                "ATOLL_DOCKER__TARGET_REGISTRY": str(config.docker.target_registry)})
    return subprocess.run([str(ATOLL), "-o", "json", *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_the_router_island_runs_as_a_deployment_with_the_keys_as_a_secret(cluster: Cluster, ctx: AtollContext) -> None:
    status = api.setup_island(ctx, "router")
    assert (status.running, status.health) == (True, "healthy")
    assert ctx.pushed == ["router"]  # type: ignore[attr-defined]
    # ClusterIP (the default service type): the address this host gets through kubectl port-forward.
    assert status.url == "http://127.0.0.1:30080"
    assert "kubectl -n atoll port-forward service/atoll-isle-router 30080:8080" in status.message
    assert names(cluster) == {"deployments": ["atoll-isle-router"], "pods": names(cluster)["pods"],
                              "secrets": ["atoll-isle-router-keys"], "services": ["atoll-isle-router"],
                              "poddisruptionbudgets": ["atoll-isle-router"]}
    assert len(names(cluster)["pods"]) == 2  # router.replicas
    # The keys file as written by Atoll and the (still empty) replica secrets, as a Secret mounted
    # read-only (a directory: no subPath).
    assert secret_files(cluster, "atoll-isle-router-keys") == {
        "keys.json": cluster.config.router_keys_file.read_bytes(),
        "replica-secrets.json": b'{"version":1,"secrets":{}}'}
    posted = next(c[2] for c in cluster.emulated.calls("POST", "/deployments"))
    pod = posted["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE.replace("isle", "isle-router")
    assert container["command"][-4:] == ["--keys-file", "/run/secrets/atoll/keys.json",
                                         "--replica-secrets", "/run/secrets/atoll/replica-secrets.json"]
    assert container["volumeMounts"] == [{"name": "secrets", "mountPath": "/run/secrets/atoll", "readOnly": True}]
    assert pod["volumes"] == [{"name": "secrets", "secret": {"secretName": "atoll-isle-router-keys",
                                                             "defaultMode": 0o440}}]
    assert "env" not in container and "pepper" not in json.dumps(posted)

    shown = cli(cluster, "isle", "router", "status")
    assert shown.returncode == 0, shown.stderr
    seen = json.loads(shown.stdout)
    assert (seen["running"], seen["health"], seen["service"]) == (True, "healthy", "atoll-isle-router")
    assert "2/2 ready" in seen["message"]

    again = api.setup_island(ctx, "router")
    assert again.message.startswith("the router island is already running")
    assert len(cluster.emulated.calls("POST", "/deployments")) == 1
    assert not cluster.emulated.calls("PUT", "/deployments/atoll-isle-router")

    # One pod down: the other serves (still healthy for `depl info`), and status says which one is down.
    down = names(cluster)["pods"][0]
    cluster.outcome(lambda pod: "unready" if pod["metadata"]["name"] == down else "ready")
    status = wait_for(lambda: (s := api.island_status(ctx, "router")) and "1/2" in s.message and s,
                      what="the router's 1/2")
    assert (status.running, status.health) == (True, "healthy")
    assert f"the router island serves with 1/2 ready (pod {down} is down: not ready)" in status.message
    # `depl new` sets the router up meanwhile: same spec, one pod serving: left to the kubelet, nothing deleted.
    pods = names(cluster)["pods"]
    assert api.setup_island(ctx, "router").message.startswith("the router island is already running with 1/2 ready")
    assert names(cluster)["pods"] == pods
    cluster.outcome(lambda pod: "ready")
    wait_for(lambda: "2/2 ready" in api.island_status(ctx, "router").message, what="the router's 2/2")

    # One pod wanted: no disruption budget (it would block every node drain); the earlier one is deleted.
    cluster.config.router.replicas = 1
    assert api.setup_island(ctx, "router").message.startswith("the router island is running")
    assert "poddisruptionbudgets" not in names(cluster)
    assert cluster.emulated.objects("deployments")[0]["spec"]["replicas"] == 1


def test_an_island_runs_with_the_resource_profile_setup_names(cluster: Cluster, ctx: AtollContext) -> None:
    ctx.config.container_manager.resource_profiles = {
        "small": ResourceProfile(cpu_request=0.25, memory_limit=256), "big": ResourceProfile(memory_limit=1024)}

    def resources() -> Any:
        deployment = cluster.emulated.objects("deployments")[0]
        return deployment["spec"]["template"]["spec"]["containers"][0].get("resources")

    api.setup_island(ctx, "router", resource_profile="small")
    assert resources() == {"requests": {"cpu": "250m"}, "limits": {"memory": "256Mi"}}
    # Without the option a running island keeps what it runs with (`depl new` sets the router up this way).
    assert api.setup_island(ctx, "router").message.startswith("the router island is already running")
    assert resources() == {"requests": {"cpu": "250m"}, "limits": {"memory": "256Mi"}}
    api.setup_island(ctx, "router", resource_profile="big")
    assert resources() == {"limits": {"memory": "1024Mi"}}


def test_key_changes_reach_the_router_secret(cluster: Cluster, ctx: AtollContext) -> None:
    ctx.metadata.create(Project(name="iris"))
    api.setup_island(ctx, "router")
    record, key = new_key(ctx, "iris", "ci")
    files = secret_files(cluster, "atoll-isle-router-keys")
    assert files["keys.json"] == keys_document(ctx)
    assert record.hash in files["keys.json"].decode() and key not in files["keys.json"].decode()
    delete_key(ctx, "iris", "ci")
    assert record.hash not in secret_files(cluster, "atoll-isle-router-keys")["keys.json"].decode()


def _router_template(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.emulated.objects("deployments")[0]["spec"]["template"])


def test_replica_secrets_reach_the_router_and_a_new_one_rolls_it_over(cluster: Cluster, ctx: AtollContext) -> None:
    api.setup_island(ctx, "router")
    before = _router_template(cluster)["metadata"]["annotations"]["atoll.io/replica-secrets"]
    secret = replica_secret(ctx, "iris", "online")  # what `depl new` makes before it sets the router up
    shared = json.loads(secret_files(cluster, "atoll-isle-router-keys")["replica-secrets.json"])
    assert shared["secrets"] == {"iris/online": secret}
    # The kubelet refreshes a mounted Secret within about a minute: a new secret rolls the router over
    # at the next setup (as `depl new` does) so that the new deployment's first request carries it.
    again = api.setup_island(ctx, "router")
    assert again.message.startswith("the router island is running")
    after = _router_template(cluster)["metadata"]["annotations"]["atoll.io/replica-secrets"]
    assert after != before and secret not in json.dumps(cluster.emulated.objects("deployments"))
    assert replica_secret(ctx, "iris", "online") == secret  # a redeploy keeps it: no roll-over
    assert api.setup_island(ctx, "router").message.startswith("the router island is already running")
    drop_replica_secret(ctx, "iris", "online")  # depl rm
    shared = json.loads(secret_files(cluster, "atoll-isle-router-keys")["replica-secrets.json"])
    assert shared["secrets"] == {}


def test_without_router_auth_the_secret_holds_the_replica_secrets_only(cluster: Cluster, ctx: AtollContext) -> None:
    cluster.config.router.auth = False
    api.setup_island(ctx, "router")
    assert list(secret_files(cluster, "atoll-isle-router-keys")) == ["replica-secrets.json"]
    command = cluster.emulated.objects("deployments")[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[-4:] == ["--auth", "off", "--replica-secrets", "/run/secrets/atoll/replica-secrets.json"]


def test_router_tls_pair_is_a_secret_and_the_url_is_https(cluster: Cluster, ctx: AtollContext) -> None:
    status = api.setup_island(ctx, "router", self_signed=True)
    assert status.url == "https://127.0.0.1:30080"
    config = cluster.config
    cert, key = Path(str(config.router.tls_cert)).read_bytes(), Path(str(config.router.tls_key)).read_bytes()
    assert secret_files(cluster, "atoll-isle-router-tls") == {"tls.crt": cert, "tls.key": key}
    deployment = cluster.emulated.objects("deployments")[0]
    assert b"PRIVATE KEY" in key and key.decode() not in json.dumps(deployment)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    command = container["command"]
    assert command[command.index("--tls-cert") + 1] == "/run/secrets/atoll-tls/tls.crt"
    assert command[command.index("--tls-key") + 1] == "/run/secrets/atoll-tls/tls.key"
    assert {"name": "tls", "mountPath": "/run/secrets/atoll-tls", "readOnly": True} in container["volumeMounts"]
    assert {"name": "tls", "secret": {"secretName": "atoll-isle-router-tls", "defaultMode": 0o440}} in pod["volumes"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    # A new pair behind the same paths rolls the router over (it reads the pair when it starts).
    stamp = deployment["spec"]["template"]["metadata"]["annotations"]["atoll.io/tls-pair"]
    Path(str(config.router.tls_cert)).write_bytes(cert + b"\n")
    api.setup_island(ctx, "router")
    assert _router_template(cluster)["metadata"]["annotations"]["atoll.io/tls-pair"] != stamp
    api.stop_island(ctx, "router")
    assert "secrets" not in names(cluster)


def test_stop_deletes_what_setup_created_and_nothing_else(cluster: Cluster, ctx: AtollContext) -> None:
    api.setup_island(ctx, "router")
    foreign = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "depl-iris-online-store",
               "labels": {"app.kubernetes.io/managed-by": "atoll", "atoll.io/kind": "deploy",
                          "atoll.io/name": "online"}}, "data": {}}
    cluster.kube.apply(foreign)
    stopped = api.stop_island(ctx, "router")
    assert (stopped.running, stopped.message) == (False, "the router island was stopped")
    wait_for(lambda: "pods" not in names(cluster), what="the router pod's removal")
    assert names(cluster) == {"secrets": ["depl-iris-online-store"]}
    shown = cli(cluster, "isle", "router", "status")
    assert json.loads(shown.stdout)["running"] is False
    assert api.stop_island(ctx, "router").message == "the router island was not running"


def test_the_db_island_is_a_statefulset_whose_claim_outlives_stop(cluster: Cluster, ctx: AtollContext) -> None:
    cluster.config.metadata.native = True
    status = api.setup_island(ctx, "db")
    assert status.url == "postgresql://atoll@127.0.0.1:30432/atoll"  # no password in what is shown
    assert "kubectl -n atoll port-forward service/atoll-isle-db 30432:5432" in status.message
    found = names(cluster)
    assert (found["statefulsets"], found["services"], found["secrets"]) == (
        ["atoll-isle-db"], ["atoll-isle-db"], ["atoll-isle-db-auth"])
    assert found["persistentvolumeclaims"] == ["data-atoll-isle-db-0"]
    password = home_chest(cluster.config, "atoll-db", "atoll", lambda: "unused", "")[1]
    assert secret_files(cluster, "atoll-isle-db-auth") == {"password": password.encode()}
    assert password not in json.dumps(cluster.emulated.objects("statefulsets"))
    assert api.island_status(ctx, "db").health == "healthy"

    stopped = api.stop_island(ctx, "db")
    assert "data stays in the volume claim data-atoll-isle-db-0" in stopped.message
    wait_for(lambda: "pods" not in names(cluster), what="the db pod's removal")
    assert names(cluster) == {"persistentvolumeclaims": ["data-atoll-isle-db-0"]}
    claim = cluster.emulated.objects("persistentvolumeclaims")[0]["metadata"]["uid"]
    assert api.setup_island(ctx, "db").running  # set up again: on the same claim, the same password
    assert [c["metadata"]["uid"] for c in cluster.emulated.objects("persistentvolumeclaims")] == [claim]
    assert secret_files(cluster, "atoll-isle-db-auth") == {"password": password.encode()}


def test_get_me_started_sets_up_the_files_island_then_the_router(cluster: Cluster, ctx: AtollContext) -> None:
    cluster.config.file_store.native = True
    steps = get_me_started(ctx)
    assert [(s.island, s.done) for s in steps] == [("files", "set up"), ("router", "set up")]
    assert steps[0].url == "http://127.0.0.1:30900"
    found = names(cluster)
    assert found["deployments"] == ["atoll-isle-files", "atoll-isle-router"]
    assert found["persistentvolumeclaims"] == ["atoll-isle-files"]
    access, secret = home_chest(cluster.config, "atoll-files", "unused", lambda: "unused", "")
    assert secret_files(cluster, "atoll-isle-files-auth") == {"keys": f"{access},{secret}".encode()}
    again = get_me_started(ctx)
    assert [s.done for s in again] == ["already running", "already running"]
    api.stop_island(ctx, "files")
    assert names(cluster)["persistentvolumeclaims"] == ["atoll-isle-files"]
    assert names(cluster)["deployments"] == ["atoll-isle-router"]


def test_the_ui_island_gets_its_token_and_stores_as_a_secret(cluster: Cluster, ctx: AtollContext,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="SQLite file on this host"):
        api.setup_island(ctx, "ui")
    assert "deployments" not in names(cluster)
    stores = {"version": 1, "metadata": {"url": "postgresql://atoll:pg-secret@db.example:5432/atoll"},
              "file_store": {"type": "s3", "options": {"url": "http://s3.example", "password": "s3-secret"}}}
    monkeypatch.setattr(kube_islands.KubeUiIsland, "_store_config", lambda self: stores)
    cluster.config.container_manager.kubernetes.service_type = "NodePort"
    status = api.setup_island(ctx, "ui")
    token = home_chest(cluster.config, "atoll-ui", "ui", lambda: "unused", "")[1]
    assert status.url == f"http://<any node address>:30090/?token={token}"
    assert "NodePort 30090" in status.message
    files = secret_files(cluster, "atoll-isle-ui-auth")
    assert json.loads(files["token.json"]) == {"token": token} and json.loads(files["stores.json"]) == stores
    rest = json.dumps(cluster.emulated.objects("deployments") + cluster.emulated.objects("services"))
    assert token not in rest and "pg-secret" not in rest and "s3-secret" not in rest
    service = cluster.emulated.objects("services")[0]
    assert service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"] == 30090


def test_a_load_balancer_address_is_the_url(cluster: Cluster, ctx: AtollContext) -> None:
    cluster.config.container_manager.kubernetes.service_type = "LoadBalancer"
    status = api.setup_island(ctx, "router")
    assert status.url is None and "no address yet" in status.message
    from kubernetes import client as kube_client
    from kubernetes import config as kube_loader

    core = kube_client.CoreV1Api(kube_loader.new_client_from_config(cluster.config.container_manager.kubernetes.kubeconfig))
    core.patch_namespaced_service_status("atoll-isle-router", "atoll",
                                         {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}})
    assert api.island_status(ctx, "router").url == "http://203.0.113.7:30080"


def test_an_island_whose_pod_cannot_start_says_why_and_leaves_nothing(cluster: Cluster, ctx: AtollContext) -> None:
    cluster.outcome(lambda pod: "image-pull")
    with pytest.raises(BackendUnavailableError, match="the router island cannot start: ImagePullBackOff"):
        api.setup_island(ctx, "router")
    wait_for(lambda: "pods" not in names(cluster), what="the pod's removal")
    assert names(cluster) == {}


def test_a_pod_that_never_gets_ready_is_reported_by_status(cluster: Cluster, ctx: AtollContext) -> None:
    cluster.outcome(lambda pod: "run")
    cluster.config.islands.setup_timeout = 1
    with pytest.raises(BackendUnavailableError, match=r"not ready within 1s \(0/2 ready\)"):
        api.setup_island(ctx, "router")
    assert "deployments" not in names(cluster)
    cluster.kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "atoll-isle-router", "namespace": "atoll", "labels": {}},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"x": "y"}},
                                 "template": {"metadata": {"labels": {"x": "y"}},
                                              "spec": {"containers": [{"name": "x", "image": "y"}]}}}})
    status = api.island_status(ctx, "router")
    assert (status.running, status.health, status.message) == (
        True, "starting", "the router island is starting (0/1 ready)")


class _Image:
    def __init__(self, image_id: str) -> None:
        self.id = image_id
        self.attrs: dict[str, Any] = {"RepoDigests": []}
        self.tags: list[tuple[str, str]] = []

    def tag(self, repo: str, tag: str) -> None:
        self.tags.append((repo, tag))


class _Twin:
    """A swarm island whose image is built already (the engine is faked: no Docker here)."""

    def __init__(self, name: str, local: str, image: _Image) -> None:
        self.name, self.local, self.image = name, local, image
        self.client = type("Client", (), {"images": type("Images", (), {"get": lambda _, ref: image})()})()

    def ensure_image(self, log: Any) -> tuple[str, None]:
        return self.local, None


def test_island_images_are_tagged_into_the_registry_and_pushed_once(kube_config: Config,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from atoll import __version__
    from atoll.containers.swarm import build as swarm_build
    from atoll.islands.kube_images import push_island_image

    pushes: list[tuple[str, str]] = []

    def push(client: Any, config: Config, repo: str, tag: str, log: Any, auth: Any = None) -> str:
        pushes.append((repo, tag))
        return f"{repo}@sha256:{'ef' * 32}"

    monkeypatch.setattr(swarm_build, "push_image", push)
    db = _Image("sha256:" + "1" * 64)
    ref, _ = push_island_image(kube_config, _Twin("db", "atoll/isle-db:0.1.0-abc123", db), print)  # type: ignore[arg-type]
    assert ref == f"registry.example:5000/atoll/isle-db@sha256:{'ef' * 32}"
    assert db.tags == pushes == [("registry.example:5000/atoll/isle-db", "0.1.0-abc123")]
    router = _Image("sha256:" + "2" * 64)  # the router runs the base image, known by its id
    push_island_image(kube_config, _Twin("router", router.id, router), print)  # type: ignore[arg-type]
    assert pushes[-1] == ("registry.example:5000/atoll/isle-router", f"{__version__}-222222222222")
    db.attrs["RepoDigests"] = [ref]  # pushed before: the engine knows its digest in the registry
    assert push_island_image(kube_config, _Twin("db", "atoll/isle-db:0.1.0-abc123", db), print)[0] == ref  # type: ignore[arg-type]
    assert len(pushes) == 2
    kube_config.docker.target_registry = None
    with pytest.raises(ConfigError, match="needs docker.target_registry"):
        push_island_image(kube_config, _Twin("db", "x", db), print)  # type: ignore[arg-type]
