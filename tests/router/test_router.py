"""The router in front of real replicas: balancing, pass-through, retries, errors."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson
import pytest
from router_helpers import Cluster, healthy, start_replica, write_state

Predict = Callable[..., httpx.Response]


def test_requests_are_balanced_over_the_replicas(predict: Predict) -> None:
    seen = []
    for _ in range(10):
        answer = predict("project=proj&deploy=dep", b"hello")
        assert answer.status_code == 200
        assert answer.json()["result"] == "hello"
        seen.append(answer.json()["metadata"]["replica"])
    assert set(seen) == {"dep-1", "dep-2"}
    assert abs(seen.count("dep-1") - seen.count("dep-2")) <= 1  # round-robin


def test_request_and_answer_pass_through_unchanged(predict: Predict) -> None:
    body = b"a,b\n1,\xff\n"  # not JSON, not even UTF-8
    answer = predict(
        "project=proj&deploy=raw&model_version=wine:v2&extra=1", body, headers={"content-type": "text/csv"}
    )
    assert answer.status_code == 201
    assert answer.content == body
    assert answer.headers["content-type"] == "application/x-echo"
    seen = orjson.loads(answer.headers["x-echo"])
    assert seen == {
        "method": "POST",
        "path": "/predict",
        "query": "project=proj&deploy=raw&model_version=wine:v2&extra=1",
        "content_type": "text/csv",
        "replica": "raw-1",
    }
    update = predict("project=proj&deploy=raw&model_version=v3", b"", path="/update")
    assert update.status_code == 201
    assert orjson.loads(update.headers["x-echo"])["path"] == "/update"


def test_replica_errors_come_back_unchanged_and_are_not_retried(predict: Predict) -> None:
    answer = predict("project=proj&deploy=dep", b"bad")
    assert answer.status_code == 400
    assert answer.json() == {"error": "bad input"}


def test_unknown_project_or_deployment_is_404_naming_it(predict: Predict) -> None:
    unknown_project = predict("project=nope&deploy=dep")
    assert unknown_project.status_code == 404
    assert "project 'nope'" in unknown_project.json()["error"]
    unknown_deploy = predict("project=proj&deploy=nothere")
    assert unknown_deploy.status_code == 404
    assert "'nothere'" in unknown_deploy.json()["error"]
    assert predict("project=empty-project&deploy=dep").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "project=../x&deploy=dep",
        "project=proj&deploy=A%20B",
        "project=proj&deploy=A+B",
        "project=proj&deploy=..%2F..%2Fetc",
        "project=proj&deploy=" + "a" * 64,
        "project=-x&deploy=dep",
        "project=proj",
        "deploy=dep",
        "",
    ],
)
def test_malformed_or_missing_names_are_400(predict: Predict, query: str) -> None:
    answer = predict(query)
    assert answer.status_code == 400
    assert "error" in answer.json()


def test_no_healthy_replica_is_503(predict: Predict) -> None:
    down = predict("project=proj&deploy=down")
    assert down.status_code == 503
    assert "no healthy replica" in down.json()["error"]
    gone = predict("project=proj&deploy=gone")  # listed healthy, but nothing listens
    assert gone.status_code == 503


def test_routes_and_methods(cluster: Cluster) -> None:
    url = cluster.router.url
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/predict?project=proj&deploy=dep").status_code == 405
    assert httpx.get(f"{url}/elsewhere").status_code == 404
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200
    assert "atoll_router_requests_total" in metrics.text


def test_a_killed_replica_is_skipped(cluster: Cluster, predict: Predict) -> None:
    tmp = cluster.tmp
    first, second = start_replica(tmp, "frag-1"), start_replica(tmp, "frag-2")
    try:
        write_state(cluster.state, "proj", "fragile", [healthy(first), healthy(second)])
        replicas = {predict("project=proj&deploy=fragile").json()["metadata"]["replica"] for _ in range(4)}
        assert replicas == {"frag-1", "frag-2"}  # both answer, and the router has pooled connections to both
        first.kill()  # SIGKILL: no goodbye; the state file still lists it as healthy
        answers = [predict("project=proj&deploy=fragile", b"still") for _ in range(10)]
        assert [a.status_code for a in answers] == [200] * 10
        assert {a.json()["metadata"]["replica"] for a in answers} == {"frag-2"}
        second.kill()
        assert predict("project=proj&deploy=fragile").status_code == 503
    finally:
        first.stop()
        second.stop()


def test_state_file_changes_are_picked_up(cluster: Cluster, predict: Predict) -> None:
    tmp = cluster.tmp
    replica = start_replica(tmp, "late-1")
    try:
        write_state(cluster.state, "proj", "late", [{**healthy(replica), "state": "starting"}])
        assert predict("project=proj&deploy=late").status_code == 503
        write_state(cluster.state, "proj", "late", [healthy(replica)])
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline:
            status = predict("project=proj&deploy=late").status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        replica.stop()
