"""``train new --target-deploy``'s API: which deployments qualify, and what each replica is told.

The deployment's replicas are real toolkit servers (in threads, on 127.0.0.1)
holding the deployment's replica secret; the memory manager is told to report
them as the deployment's replicas.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.api import hot_update
from atoll.api.context import AtollContext
from atoll.api.replica_secrets import replica_secret
from atoll.containers.spec import ReplicaStatus
from atoll.domain.records import BuildVersion, Deployment, ModelVersion, Training
from atoll.errors import BackendUnavailableError, ConflictError, NotFoundError, UsageError
from atoll.toolkit.serving import LazyModelServer, OnlinePredict
from support.processes import free_port

BUILD = BuildVersion(name="latest", proj="p")


@pytest.fixture
def replicas(ctx: AtollContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Starts servers as replicas of ``p/name`` (their replica secret set) and lists them for the manager."""
    task = tmp_path / "task"
    for version in ("v1", "v2"):
        (task / "model" / f"wine.{version}").mkdir(parents=True)
        (task / "model" / f"wine.{version}" / "weights.txt").write_text(f"weights-{version}")
    monkeypatch.setenv("ATOLL_TASK_DIR", str(task))
    shown: dict[str, list[ReplicaStatus]] = {}
    handles: list[Any] = []
    monkeypatch.setattr(ctx.containers, "service_status", lambda proj, name: shown.get(name, []))

    def start(name: str, server_cls: type, state: str = "healthy") -> ReplicaStatus:
        if not ctx.metadata.exists(Deployment, name, "p"):
            ctx.metadata.create(Deployment(name=name, proj="p", notebook="nb.ipynb", bvers=BUILD))
        settings = tmp_path / f"{name}-store.json"
        settings.write_bytes(orjson.dumps({"version": 1, "replica": {"secret": replica_secret(ctx, "p", name)}}))
        monkeypatch.setenv("ATOLL_STORE_CONFIG", str(settings))
        index = len(shown.get(name, []))
        monkeypatch.setenv("ATOLL_REPLICA", f"{name}-{index}")
        if server_cls is LazyModelServer:
            server = LazyModelServer(lambda body, model, meta: model, lambda path, meta: Path(path, "weights.txt").read_text(),
                                     model_name="wine")
        else:
            server = OnlinePredict(lambda body: body)
        handle = server(block=False, host="127.0.0.1", port=0)
        handles.append(handle)
        assert handle.wait_started(10)
        status = ReplicaStatus(f"{name}-{index}", state, handle.url)
        shown.setdefault(name, []).append(status)
        return status

    yield {"start": start, "shown": shown}
    for handle in handles:
        handle.stop()


def _predict(url: str, secret: str) -> dict[str, Any]:
    import httpx

    return httpx.post(f"{url}/predict", content=b"x", headers={"x-atoll-replica-secret": secret}, timeout=10).json()


def test_a_lazy_deployment_qualifies_and_others_are_refused(ctx: AtollContext, replicas: dict[str, Any]) -> None:
    replicas["start"]("lazy", LazyModelServer)
    replicas["start"]("lazy", LazyModelServer, state="starting")  # not asked: only healthy replicas are
    assert hot_update.check_target(ctx, "lazy", "p").name == "lazy"

    with pytest.raises(NotFoundError, match="--target-deploy nope: deployment 'p:nope' not found"):
        hot_update.check_target(ctx, "nope", "p")
    replicas["start"]("online", OnlinePredict)
    with pytest.raises(UsageError, match="deployment p:online runs OnlinePredict, not a LazyModelServer"):
        hot_update.check_target(ctx, "online", "p")
    replicas["start"]("mixed", LazyModelServer)
    replicas["start"]("mixed", OnlinePredict)
    with pytest.raises(UsageError, match="runs OnlinePredict"):
        hot_update.check_target(ctx, "mixed", "p")

    ctx.metadata.create(Deployment(name="down", proj="p", notebook="nb.ipynb", bvers=BUILD))
    with pytest.raises(ConflictError, match="deployment p:down has no healthy replica"):
        hot_update.check_target(ctx, "down", "p")
    closed = f"http://127.0.0.1:{free_port()}"
    replicas["shown"]["down"] = [ReplicaStatus("down-0", "healthy", closed)]
    with pytest.raises(BackendUnavailableError, match="cannot reach replica down-0 at http://127.0.0.1:"):
        hot_update.check_target(ctx, "down", "p")
    replicas["shown"]["down"].append(ReplicaStatus("down-1", "healthy", closed))  # one published port for both
    with pytest.raises(ConflictError, match=f"cannot be told apart from here \\(they share the address {closed}\\)"):
        hot_update.check_target(ctx, "down", "p")


def test_every_healthy_replica_loads_the_version_and_serves_it_by_default(
    ctx: AtollContext, replicas: dict[str, Any]
) -> None:
    first = replicas["start"]("lazy", LazyModelServer)
    second = replicas["start"]("lazy", LazyModelServer)
    replicas["shown"]["lazy"].append(ReplicaStatus("lazy-9", "starting", None))
    secret = replica_secret(ctx, "p", "lazy")
    assert _predict(first.url, secret)["metadata"]["model_version"] == "wine:v1"
    depl = hot_update.check_target(ctx, "lazy", "p")

    rows = hot_update.update_target(ctx, depl, [ModelVersion(name="v2", model="wine")])
    assert rows == [
        {"replica": "lazy-0", "model_version": "wine:v2", "status": "loaded", "error": None},
        {"replica": "lazy-1", "model_version": "wine:v2", "status": "loaded", "error": None},
        {"replica": "lazy-9", "model_version": "wine:v2", "status": "skipped", "error": "replica is starting"},
    ]
    for replica in (first, second):
        answer = _predict(replica.url, secret)
        assert (answer["result"], answer["metadata"]["model_version"]) == ("weights-v2", "wine:v2")

    refused = hot_update.update_target(ctx, depl, [ModelVersion(name="v1", model="other")])
    assert [r["status"] for r in refused] == ["failed", "failed", "skipped"]
    assert refused[0]["error"] == "HTTP 400: model_version 'other:v1': this server serves versions of wine only"
    assert _predict(first.url, secret)["metadata"]["model_version"] == "wine:v2"  # unchanged


def test_the_versions_a_training_published_oldest_first(ctx: AtollContext) -> None:
    train = Training(name="t", proj="p", notebook="nb.ipynb", bvers=BUILD)
    other = Training(name="u", proj="p", notebook="nb.ipynb", bvers=BUILD)
    for name, by in (("a", train), ("b", other), ("c", train)):
        ctx.metadata.create(ModelVersion(name=name, model="wine", train=by))
    assert [v.ref for v in hot_update.published_versions(ctx, train)] == ["wine:a", "wine:c"]
    assert hot_update.published_versions(ctx, Training(name="z", proj="p", notebook="nb.ipynb", bvers=BUILD)) == []
