"""Trainings, deployments and the IDE through the real kubernetes client against the emulated cluster.

The test controller plays the control plane (Job and Deployment controllers, a
scripted kubelet); what Atoll does is asserted through its API calls and the
objects left in the cluster.
"""

from __future__ import annotations

from typing import Any

import pytest

from atoll.config import AutoScale, ResourceProfile
from atoll.containers.kubernetes.client import KubeClient
from atoll.containers.kubernetes.ide import KubeIde
from atoll.containers.kubernetes.jobs import KubeTrainings
from atoll.containers.kubernetes.rollouts import KubeDeployments
from atoll.errors import BackendUnavailableError, ConfigError, NotFoundError
from kube_helpers import Cluster, sample_inputs, task_spec, wait_for

KINDS = ("jobs", "pods", "deployments", "services", "secrets", "configmaps", "horizontalpodautoscalers")


def ended(trainings: KubeTrainings, name: str = "t1") -> Any:
    status = trainings.status("iris", name)
    return None if status.running else status


def leftovers(cluster: Cluster) -> dict[str, list[str]]:
    return {kind: [o["metadata"]["name"] for o in cluster.emulated.objects(kind)] for kind in KINDS
            if cluster.emulated.objects(kind)}


def test_a_training_runs_as_a_job_and_finishes(cluster: Cluster) -> None:
    trainings = KubeTrainings(cluster.kube, cluster.config)
    trainings.start(task_spec(**sample_inputs()))
    assert cluster.emulated.calls("POST", "/api/v1/namespaces")  # created: it was missing
    posted = [call[2] for call in cluster.emulated.calls("POST", "/jobs")]
    assert posted[0]["spec"]["backoffLimit"] == 0
    status = wait_for(lambda: ended(trainings), what="the training's end")
    assert (status.exit_code, status.error) == (0, None)
    assert any("says hello" in line for line in trainings.logs("iris", "t1"))
    trainings.discard("iris", "t1")
    assert leftovers(cluster) == {}


@pytest.mark.parametrize(("outcome", "error"), [
    ("fail", "the task failed: exit code 1"),
    ("oom", "killed: out of memory (limit 1024Mi)"),
    ("image-pull", "ImagePullBackOff: the node cannot pull the image"),
    ("evicted", "evicted: The node was low on resource: memory."),
    ("deadline", "deadline exceeded"),
])
def test_a_training_that_cannot_finish_says_why(cluster: Cluster, outcome: Any, error: str) -> None:
    cluster.outcome(lambda pod: outcome)
    trainings = KubeTrainings(cluster.kube, cluster.config)
    trainings.start(task_spec(profile=ResourceProfile(memory_limit=1024)))
    status = wait_for(lambda: ended(trainings), what="the training's end")
    assert status.error is not None and status.error.startswith(error), status.error
    assert status.exit_code != 0


def test_cancel_suspends_the_job_whose_state_stays_readable_until_removal(cluster: Cluster) -> None:
    cluster.outcome(lambda pod: "run")
    trainings = KubeTrainings(cluster.kube, cluster.config)
    trainings.start(task_spec())
    wait_for(lambda: cluster.emulated.objects("pods"), what="the training pod")
    assert trainings.status("iris", "t1").running
    trainings.stop("iris", "t1")
    patches = cluster.emulated.calls("PATCH", "/jobs/train-iris-t1")
    assert [p[2]["spec"] for p in patches if "/status" not in p[1]] == [{"suspend": True}]
    assert cluster.emulated.objects("pods") == []
    status = trainings.status("iris", "t1")
    assert (status.running, status.exit_code) == (False, 143) and "cancelled" in (status.error or "")
    trainings.stop("iris", "t1")  # stopping again is no error
    trainings.discard("iris", "t1")
    assert cluster.emulated.objects("jobs") == []
    with pytest.raises(NotFoundError, match="no Job"):
        trainings.status("iris", "t1")


def test_following_a_training_log_ends_with_the_training(cluster: Cluster) -> None:
    trainings = KubeTrainings(cluster.kube, cluster.config)
    cluster.kubelet.logs = lambda pod: "cell 1\ncell 2\ndone\n"
    trainings.start(task_spec())
    assert list(trainings.logs("iris", "t1", follow=True))[-3:] == ["cell 1", "cell 2", "done"]


def _deploy(cluster: Cluster, generation: str, timeout: float = 20, **extra: Any) -> Any:
    deployments = KubeDeployments(cluster.kube, cluster.config)
    spec = task_spec("deploy", "online", **{"replicas": 2, **extra})
    deployments.start(spec, generation, timeout)
    return deployments, wait_for(lambda: (v := deployments.rollout("iris", "online", generation)).state != "running"
                                 and v, timeout=timeout + 10, what=f"the roll-out of {generation}")


def test_a_deployment_gets_ready_and_is_removed_without_leftovers(cluster: Cluster) -> None:
    deployments, view = _deploy(cluster, "g1", port=30111)
    assert view.state == "done"
    assert [r.state for r in deployments.status("iris", "online")] == ["healthy", "healthy"]
    assert deployments.running_generation("iris", "online") == "g1"
    names = {s["metadata"]["name"] for s in cluster.emulated.objects("services")}
    assert names == {"depl-iris-online", "depl-iris-online-port"}
    assert all(line.startswith("[depl-iris-online-") for line in deployments.logs("iris", "online"))
    deployments.discard("iris", "online")
    assert leftovers(cluster) == {}


def test_a_redeploy_that_never_gets_ready_is_rolled_back(cluster: Cluster) -> None:
    deployments, view = _deploy(cluster, "g1")
    old_pods = {p["metadata"]["name"] for p in cluster.emulated.objects("pods")}
    cluster.outcome(lambda pod: "unready" if pod["metadata"]["labels"]["atoll.io/generation"] == "g2" else "ready")
    cluster.kubelet.logs = lambda pod: "loading the model...\nTraceback: model file missing\n"
    deployments, view = _deploy(cluster, "g2", timeout=5)
    assert view.state == "failed"
    assert "of 2 new pods got ready within 5s" in (view.error or "")
    assert "model file missing" in view.log_tail
    deployments.roll_back("iris", "online", "g2")
    assert cluster.emulated.calls("PUT", "/deployments/depl-iris-online")
    assert deployments.running_generation("iris", "online") == "g1"
    wait_for(lambda: {p["metadata"]["name"] for p in cluster.emulated.objects("pods")} == old_pods,
             what="the new pods' removal")
    assert [r.state for r in deployments.status("iris", "online")] == ["healthy", "healthy"]
    assert {c["metadata"]["name"] for c in cluster.emulated.objects("configmaps")} == {"depl-iris-online-meta-g1"}


def test_a_redeploy_whose_image_cannot_be_pulled_fails_fast(cluster: Cluster) -> None:
    _deploy(cluster, "g1")
    cluster.outcome(lambda pod: "image-pull" if pod["metadata"]["labels"]["atoll.io/generation"] == "g2" else "ready")
    _, view = _deploy(cluster, "g2", timeout=60)
    assert view.state == "failed" and "ImagePullBackOff" in (view.error or "")
    assert len([r for r in view.replicas if r.healthy]) == 2  # the old pods kept serving


def test_a_redeploy_rolls_over_and_keeps_only_its_config(cluster: Cluster) -> None:
    _deploy(cluster, "g1")
    deployments, view = _deploy(cluster, "g2")
    assert view.state == "done"
    deployments.keep_only("iris", "online", "g2")
    assert {p["metadata"]["labels"]["atoll.io/generation"] for p in cluster.emulated.objects("pods")} == {"g2"}
    assert {c["metadata"]["name"] for c in cluster.emulated.objects("configmaps")} == {"depl-iris-online-meta-g2"}


def test_auto_scale_creates_and_drops_the_autoscaler(cluster: Cluster) -> None:
    profile = ResourceProfile(cpu_request=0.5, auto_scale=AutoScale(min_replicas=2, max_replicas=4, target_cpu=60))
    _deploy(cluster, "g1", profile=profile)
    posted = [call[2] for call in cluster.emulated.calls("POST", "/horizontalpodautoscalers")]
    assert posted[0]["spec"]["maxReplicas"] == 4
    assert posted[0]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    _deploy(cluster, "g2")
    assert cluster.emulated.calls("DELETE", "/horizontalpodautoscalers/depl-iris-online")
    assert cluster.emulated.objects("horizontalpodautoscalers") == []


def test_the_ide_runs_in_a_pod_reached_through_port_forward(cluster: Cluster) -> None:
    ide = KubeIde(cluster.kube, cluster.config)
    address = ide.start(task_spec("ide", "ide"), "the-token", timeout=20)
    assert address.startswith("kubectl -n atoll port-forward service/note-iris 30088:8888")
    assert ide.exit_reason("iris") is None
    pod = cluster.emulated.objects("pods")[0]
    assert "the-token" not in str(pod)
    ide.discard("iris")
    assert ide.exit_reason("iris") == "not started"
    assert leftovers(cluster) == {}


def test_a_missing_namespace_is_not_created_when_not_allowed(cluster: Cluster) -> None:
    cluster.config.container_manager.kubernetes.create_namespace = False
    with pytest.raises(ConfigError, match="namespace atoll does not exist"):
        KubeTrainings(cluster.kube, cluster.config).start(task_spec())


def test_an_unreachable_api_server_is_backend_unavailable(kube_config: Any, tmp_path: Any) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: x, cluster: {server: "
                    "'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {token: t}}]\n"
                    "contexts: [{name: c, context: {cluster: x, user: u}}]\n")
    kube_config.container_manager.kubernetes.kubeconfig = str(path)
    kube_config.container_manager.api_timeout = 2
    kube = KubeClient(kube_config)
    with pytest.raises(BackendUnavailableError, match="cannot reach the Kubernetes API server"):
        KubeTrainings(kube, kube_config).status("iris", "t1")


def test_a_bad_kubeconfig_is_a_config_error(kube_config: Any, tmp_path: Any) -> None:
    kube_config.container_manager.kubernetes.kubeconfig = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="cannot load the cluster settings"):
        KubeClient(kube_config)
