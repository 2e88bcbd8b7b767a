"""Atoll's pods really run: the emulated cluster's test kubelet runs them on the local Docker engine.

Marked ``docker``: skipped where no engine answers, failed instead with
``ATOLL_REQUIRE_DOCKER=1``. Containers are named after a per-test prefix and
removed by exact name. The image is ``python:3.11-slim`` referred to as
``registry.example:5000/python@<image id>`` (the test kubelet resolves a digest
to the local image with that id: no registry runs here).
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.config import Config, ResourceProfile
from atoll.containers.kubernetes.client import KubeClient
from atoll.containers.kubernetes.jobs import KubeTrainings
from atoll.containers.kubernetes.manifests import deployment_manifests, training_manifests
from atoll.containers.kubernetes.rollouts import KubeDeployments
from atoll.testing.kube_api import EmulatedCluster
from atoll.testing.kube_control import TestController
from atoll.testing.kube_docker import LABEL, DockerKubelet
from kube_helpers import Cluster, sample_inputs, task_spec, wait_for

pytestmark = pytest.mark.docker
PYTHON_IMAGE = os.environ.get("ATOLL_PYTHON_IMAGE", "python:3.11-slim")

# The training's task container: prove what the pod sees (secret file, meta, fetched input, env, read-only /data).
TRAIN = """
import json, os, pathlib
store = json.loads(pathlib.Path(os.environ["ATOLL_STORE_CONFIG"]).read_text())
project = json.loads(pathlib.Path("/atoll/meta/project.json").read_text())
dataset = json.loads(pathlib.Path("/atoll/meta/datasets/iris-clf.ds1.json").read_text())
print("store", store["metadata"]["url"].split("@")[-1])
print("project", project["name"], "dataset", dataset["name"])
print("fetched", pathlib.Path("/data/iris-clf.ds1/measures.csv").read_text().strip())
print("staging", os.environ["ATOLL_STAGING"], "cwd", os.getcwd())
try:
    pathlib.Path("/data/x").write_text("no")
except OSError as exc:
    print("data read-only", exc.errno == 30)
print("secret mode", oct(os.stat(os.environ["ATOLL_STORE_CONFIG"]).st_mode & 0o777))
"""
FETCH = ("import os, pathlib; d = pathlib.Path('/data/iris-clf.ds1'); d.mkdir(parents=True); "
         "(d / 'measures.csv').write_text('5.1,3.5'); print('fetch done')")
SERVE = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
        self.wfile.write(os.environ["ATOLL_REPLICA"].encode())
    def log_message(self, *args): pass
print("serving", flush=True)
http.server.HTTPServer(("0.0.0.0", int(os.environ["ATOLL_PORT"])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    try:
        from docker import from_env

        client = from_env(timeout=60)
        client.ping()
        client.images.get(PYTHON_IMAGE)
    except Exception as exc:  # noqa: BLE001 - any reason the engine or image is not usable
        message = f"Docker engine or {PYTHON_IMAGE} not available: {exc}"
        if os.environ.get("ATOLL_REQUIRE_DOCKER") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture
def docker_cluster(kube_config: Config, tmp_path: Path, docker_client: Any) -> Iterator[Cluster]:
    from kubernetes import config as kube_loader

    prefix = f"atoll-kubelet-{secrets.token_hex(4)}"
    with EmulatedCluster() as emulated:
        path = emulated.kubeconfig(tmp_path)
        kube_config.container_manager.kubernetes.kubeconfig = str(path)
        kube_config.container_manager.api_timeout = 60
        reader = KubeClient(kube_config)

        def read_object(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            return reader.read(kind, name)

        kubelet = DockerKubelet(docker_client, read_object, emulated.api.set_pod_log, tmp_path / "volumes", prefix)
        try:
            with TestController(kube_loader.new_client_from_config(str(path)), kubelet) as controller:
                kube = KubeClient(kube_config)
                yield Cluster(emulated, controller, kubelet, kube_config, kube)  # type: ignore[arg-type]
                kube.close()
        finally:
            reader.close()
            ours = {"label": f"{LABEL}={prefix}"}
            left = docker_client.containers.list(all=True, filters=ours, ignore_removed=True)
            deadline = time.monotonic() + 30  # a removal the kubelet started may still be in progress
            while left and time.monotonic() < deadline:
                time.sleep(0.5)
                left = docker_client.containers.list(all=True, filters=ours, ignore_removed=True)
            for container in left:
                container.remove(force=True)
            assert not left, [c.name for c in left]


def image_spec(docker_client: Any, kind: str = "train", name: str = "t1", **extra: Any) -> Any:
    spec = task_spec(kind, name, **extra)
    spec.build.digest = f"registry.example:5000/python@{docker_client.images.get(PYTHON_IMAGE).id}"
    return spec


def apply_all(cluster: Cluster, docs: list[dict[str, Any]]) -> None:
    """Create Atoll's objects as the manager would (after a test replaced a command)."""
    cluster.kube.ensure_namespace()
    for doc in docs:
        cluster.kube.apply(doc)


def run_training(cluster: Cluster) -> tuple[Any, str]:
    """Wait for training iris:t1 to end; its status and log."""
    trainings = KubeTrainings(cluster.kube, cluster.config)
    status = wait_for(lambda: (s := trainings.status("iris", "t1")) and not s.running and s, timeout=120,
                      what="the training's end")
    log = "\n".join(trainings.logs("iris", "t1"))
    trainings.discard("iris", "t1")
    return status, log


def test_a_training_pod_runs_init_container_secret_config_and_empty_dir(docker_cluster: Cluster,
                                                                         docker_client: Any) -> None:
    spec = image_spec(docker_client, **sample_inputs())
    docs = training_manifests(spec, docker_cluster.config)
    pod = docs[-1]["spec"]["template"]["spec"]
    pod["initContainers"][0]["command"] = ["python", "-c", FETCH]  # the runner is not in python:3.11-slim
    pod["containers"][0]["command"] = ["python", "-c", TRAIN]
    apply_all(docker_cluster, docs)
    status, log = run_training(docker_cluster)
    assert (status.exit_code, status.error) == (0, None), log
    assert "store db:5432/atoll" in log
    assert "project iris dataset ds1" in log
    assert "fetched 5.1,3.5" in log
    assert "staging fetch cwd /app" in log
    assert "data read-only True" in log
    assert "secret mode 0o440" in log  # for the pod's group (fsGroup): the pod runs as no root


def test_the_real_fetch_step_fails_without_atoll_in_the_image(docker_cluster: Cluster, docker_client: Any) -> None:
    KubeTrainings(docker_cluster.kube, docker_cluster.config).start(image_spec(docker_client, **sample_inputs()))
    status, log = run_training(docker_cluster)
    assert status.error == "fetching the inputs failed: exit code 1"
    assert "No module named" in log


def test_a_container_over_its_memory_limit_is_oom_killed(docker_cluster: Cluster, docker_client: Any) -> None:
    spec = image_spec(docker_client, profile=ResourceProfile(memory_limit=32))
    docs = training_manifests(spec, docker_cluster.config)
    docs[-1]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "python", "-c", "chunks = [bytearray(8 << 20) for _ in range(64)]"]
    apply_all(docker_cluster, docs)
    status, _ = run_training(docker_cluster)
    assert status.error == "killed: out of memory (limit 32Mi)"


def test_a_deployment_pod_gets_ready_through_its_probe_and_answers(docker_cluster: Cluster,
                                                                    docker_client: Any) -> None:
    deployments = KubeDeployments(docker_cluster.kube, docker_cluster.config)
    docs = deployment_manifests(image_spec(docker_client, "deploy", "online"), docker_cluster.config, "g1", 60)
    for doc in docs:  # the objects Atoll applies, with a stand-in server for the runner (not in python:3.11-slim)
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["command"] = ["python", "-c", SERVE]
    apply_all(docker_cluster, docs)
    view = wait_for(lambda: (v := deployments.rollout("iris", "online", "g1")).state != "running" and v,
                    timeout=120, what="the roll-out")
    assert view.state == "done", view
    [replica] = deployments.status("iris", "online")
    assert replica.healthy and replica.url
    with urllib.request.urlopen(f"{replica.url}/health", timeout=10) as answer:
        assert answer.status == 200 and answer.read().decode() == replica.name
    # The kubelet copies container logs periodically: wait for the line rather than race it.
    line = wait_for(lambda: next(iter(deployments.logs("iris", "online")), None), what="the replica's log")
    assert line == f"[{replica.name}] serving"
    deployments.discard("iris", "online")
    assert json.dumps(docker_cluster.emulated.objects("pods")) == "[]"


def _post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"{}", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# A stand-in for a deployment's replica (the runner is not in the base image's router command): answers a
# prediction with the headers it got, on the name the router looks replicas up by.
PREDICT = """
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"prediction": "setosa", "headers": sorted(k.lower() for k in self.headers)}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


@pytest.fixture
def replica_network(docker_client: Any) -> Iterator[Any]:
    """A Docker network where a stand-in replica answers to the name the router pods look replicas up by.

    Made before the cluster (a test names it first), so removed after the cluster's containers left it.
    """
    name = f"atoll-router-net-{secrets.token_hex(4)}"
    network = docker_client.networks.create(name, driver="bridge")
    replica = docker_client.containers.create(PYTHON_IMAGE, ["python", "-c", PREDICT], name=f"{name}-replica")
    try:
        network.connect(replica, aliases=["depl-iris-online.atoll.svc.cluster.local"])
        replica.start()
        yield network
    finally:
        replica.remove(force=True)
        network.remove()


def _router_pods(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {pod["metadata"]["name"]: pod for pod in cluster.emulated.objects("pods")}


def _predict(pod: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    """POST a prediction straight to a router pod's IP (the test kubelet has no Service routing)."""
    request = urllib.request.Request(f"http://{pod['status']['podIP']}:8080/predict?project=iris&deploy=online",
                                     data=b"{}", headers={"Authorization": f"Bearer {key}"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), {}


def test_the_router_island_pods_read_the_keys_from_their_secret_and_one_serves_while_the_other_is_killed(
        docker_client: Any, replica_network: Any, docker_cluster: Cluster) -> None:
    """`atoll isle router setup` on the cluster: router.replicas (2) pods of the base image's router, the keys
    file a mounted Secret that `key new/rm` refresh in both; one pod's container SIGKILLed: the other stays
    ready and serves, status says 1/2 until the kubelet restarts it.

    Not measured here: how soon a cluster is back to serving. The test kubelet has no Service routing (a
    client calls a pod on its IP) and a fixed 10 s crash-loop back-off; on a cluster the Service stops
    sending to the killed pod once its readiness probe fails, and the kubelet's own back-off applies.
    """
    from atoll.api.context import AtollContext
    from atoll.api.keys import delete_key, new_key
    from atoll.containers.swarm.images import base_image_ref, ensure_base_image, image_id
    from atoll.domain.records import Project
    from atoll.islands.kube_router import KubeRouterIsland

    config = docker_cluster.config
    assert config.router.replicas == 2  # the default
    # The router's code is what the base image holds: one of another Atoll build does (not rebuilt for this test).
    found = image_id(docker_client, config, base_image_ref(config))
    base = docker_client.images.get(found or ensure_base_image(docker_client, config, lambda line: None))
    kubelet = docker_cluster.kubelet
    assert isinstance(kubelet, DockerKubelet)
    # The router pods find replicas by DNS (depl-iris-online.atoll.svc.cluster.local): they join the network
    # where a stand-in replica answers to that name.
    kubelet.network = replica_network.name
    ctx = AtollContext(config)
    try:
        ctx.metadata.create(Project(name="iris"))
        first, key = new_key(ctx, "iris")  # writes the keys file the island hands over
        island = KubeRouterIsland(config, kube=docker_cluster.kube, image=f"registry.example:5000/atoll/base@{base.id}")
        status = island.setup()
        assert (status.running, status.health) == (True, "healthy"), status
        assert "2/2 ready" in island.status().message
        pods = _router_pods(docker_cluster)
        assert len(pods) == 2
        for pod in pods.values():
            router = f"http://{pod['status']['podIP']}:8080"
            with urllib.request.urlopen(f"{router}/health", timeout=10) as answer:
                assert answer.status == 200
            predict = f"{router}/predict?project=iris&deploy=online"
            assert _post(predict, {}) == 401
            assert _post(predict, {"Authorization": "Bearer atk_not-a-key"}) in (401, 403)
            _, body = wait_for(lambda pod=pod: (a := _predict(pod, key))[0] == 200 and a, timeout=30,
                               what="a prediction through the router pod")
            assert body["prediction"] == "setosa" and "authorization" not in body["headers"]

        # `key new` / `key rm` update the Secret; every pod's files are swapped in and its router re-reads them.
        _, second = new_key(ctx, "iris", "second")
        delete_key(ctx, "iris", first.name)
        for pod in pods.values():
            wait_for(lambda pod=pod: _predict(pod, second)[0] == 200 and _predict(pod, key)[0] == 401, timeout=30,
                     what=f"the new key and the revoked one in {pod['metadata']['name']}")

        # SIGKILL one pod's router: the other stays ready and serves; status says 1/2 and which pod is down.
        killed, kept = sorted(pods)
        docker_client.containers.get(f"{kubelet.prefix}-{killed}-router").kill()
        shown = wait_for(lambda: (m := island.status().message) and "1/2" in m and m, timeout=30,
                         what="the router island's 1/2")
        assert f"the router island serves with 1/2 ready (pod {killed} is down: CrashLoopBackOff" in shown
        now = _router_pods(docker_cluster)
        assert {c["type"]: c["status"] for c in now[kept]["status"]["conditions"]}["Ready"] == "True"
        assert _predict(now[kept], second)[0] == 200
        # A setup meanwhile (as `depl new` does) leaves the serving pod alone and the restart to the kubelet.
        assert island.setup().message.startswith("the router island is already running with 1/2 ready")
        assert set(_router_pods(docker_cluster)) == {killed, kept}
        # The test kubelet restarts it after its back-off (10 s): both serve again.
        wait_for(lambda: "2/2 ready" in island.status().message, timeout=60, what="the killed router's restart")
        now = _router_pods(docker_cluster)
        assert now[killed]["status"]["containerStatuses"][0]["restartCount"] == 1
        assert wait_for(lambda: _predict(now[killed], second)[0] == 200, timeout=30, what="the restarted router")
        island.stop()
        wait_for(lambda: not docker_cluster.emulated.objects("pods"), timeout=60, what="the router pods' removal")
    finally:
        ctx.close()
