"""The Kubernetes container manager through the shared base: deploy/redeploy/roll-back, trainings, removal.

Runs against the emulated cluster (the real ``kubernetes`` client, kmock's
emulator, the test control plane).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atoll.config import Config
from atoll.containers.kubernetes.manager import KubernetesContainerManager
from atoll.errors import ConfigError, ExecutionError, NotFoundError
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore
from kube_helpers import STORE, Cluster, task_spec, wait_for


@pytest.fixture
def manager(cluster: Cluster, home: Path) -> Iterator[KubernetesContainerManager]:
    mgr = KubernetesContainerManager(cluster.config, MemoryMetadataStore(), MemoryFileStore())
    try:
        yield mgr
    finally:
        mgr.close()


def spec(kind: str = "deploy", name: str = "online", **extra: Any) -> Any:
    return task_spec(kind, name, **extra)


def test_needs_a_target_registry(kube_config: Config) -> None:
    kube_config.docker.target_registry = None
    with pytest.raises(ConfigError, match="docker.target_registry"):
        KubernetesContainerManager(kube_config, MemoryMetadataStore(), MemoryFileStore())


def test_embedded_stores_are_refused(manager: KubernetesContainerManager) -> None:
    embedded = dict(STORE, metadata={"url": "sqlite:////home/me/.atoll/atoll.db"})
    with pytest.raises(ConfigError, match="SQLite file on this host"):
        manager.start_task(task_spec(store_config=embedded))


def test_training_lifecycle(manager: KubernetesContainerManager, cluster: Cluster) -> None:
    cluster.outcome(lambda pod: "run")
    task_id = manager.start_task(task_spec())
    assert task_id == "iris/train/t1"
    wait_for(lambda: cluster.emulated.objects("pods"), what="the training pod")
    assert manager.task_status(task_id).running
    manager.stop_task(task_id)
    assert manager.task_status(task_id).exit_code == 143  # the contract: a stopped task's state stays readable
    manager.remove_task(task_id)
    with pytest.raises(NotFoundError):
        manager.task_status(task_id)
    assert cluster.emulated.objects("secrets") == [] and cluster.emulated.objects("configmaps") == []
    assert cluster.emulated.objects("jobs") == []


def test_deploy_redeploy_rollback_and_remove(manager: KubernetesContainerManager, cluster: Cluster) -> None:
    lines: list[str] = []
    replicas = manager.deploy(spec(replicas=2), timeout=20, log=lines.append)
    assert [r.state for r in replicas] == ["healthy", "healthy"]
    first = manager.running_generation("iris", "online")
    assert first is not None
    serving = {p["metadata"]["name"] for p in cluster.emulated.objects("pods")}

    broken = f"g{first}"
    cluster.outcome(lambda pod: "ready" if pod["metadata"]["labels"]["atoll.io/generation"] == broken else "unready")
    with pytest.raises(ExecutionError, match="previous replicas keep serving"):
        manager.deploy(spec(replicas=2), timeout=3, log=lines.append)
    assert manager.running_generation("iris", "online") == first
    wait_for(lambda: {p["metadata"]["name"] for p in cluster.emulated.objects("pods")} == serving,
             what="the failed pods' removal")

    manager.remove_service("iris", "online")
    assert manager.service_status("iris", "online") == []
    kinds = ("deployments", "services", "secrets", "configmaps", "pods", "horizontalpodautoscalers")
    assert all(cluster.emulated.objects(kind) == [] for kind in kinds)


def test_a_deploy_started_without_waiting_is_settled_by_later_looks(
    manager: KubernetesContainerManager, cluster: Cluster
) -> None:
    """`depl new -b`: started here, settled by another manager (as a later `depl info` in another process)."""
    pending = manager.start_deploy(spec(replicas=2), timeout=20, log=lambda line: None)
    assert pending.previous is None
    later = KubernetesContainerManager(cluster.config, MemoryMetadataStore(), MemoryFileStore())
    try:
        def settled(p: Any) -> Any:
            outcome = later.settle_deploy("iris", "online", p)
            return outcome if outcome.state != "running" else None

        done = wait_for(lambda: settled(pending), what="the roll-out's end")
        assert done.state == "done" and [r.state for r in done.replicas] == ["healthy", "healthy"]
        first = later.running_generation("iris", "online")
        serving = {p["metadata"]["name"] for p in cluster.emulated.objects("pods")}

        kept = f"g{first}"
        cluster.outcome(lambda pod: "ready" if pod["metadata"]["labels"]["atoll.io/generation"] == kept else "unready")
        broken = manager.start_deploy(spec(replicas=2), timeout=3, log=lambda line: None)
        assert broken.previous == first
        failed = wait_for(lambda: settled(broken), what="the broken roll-out's end")
        assert failed.state == "failed" and "got ready within 3s" in (failed.error or "")
        assert later.running_generation("iris", "online") == first
        wait_for(lambda: {p["metadata"]["name"] for p in cluster.emulated.objects("pods")} == serving,
                 what="the failed pods' removal")
    finally:
        later.close()
        manager.remove_service("iris", "online")


def test_a_new_deployment_that_fails_leaves_nothing(manager: KubernetesContainerManager, cluster: Cluster) -> None:
    cluster.outcome(lambda pod: "image-pull")
    with pytest.raises(ExecutionError, match="ImagePullBackOff"):
        manager.deploy(spec(), timeout=20, log=lambda line: None)
    assert cluster.emulated.objects("deployments") == [] and cluster.emulated.objects("pods") == []


def test_the_pull_secret_comes_from_a_treasure_chest(manager: KubernetesContainerManager, cluster: Cluster) -> None:
    import base64
    import json

    from atoll.credentials import encrypt

    from atoll.domain.records import TreasureChest

    manager.metadata.create(TreasureChest(name="registry", user="puller", secret=encrypt("pull-pw")))
    cluster.config.container_manager.kubernetes.image_pull_secret = "registry"
    manager.start_task(task_spec())
    secret = next(s for s in cluster.emulated.objects("secrets") if s["metadata"]["name"] == "registry-registry")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.example:5000"]["password"] == "pull-pw"
    job = cluster.emulated.objects("jobs")[0]
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry-registry"}]
    assert "pull-pw" not in json.dumps(job)
