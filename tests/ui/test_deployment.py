"""The deployment page against a replica answering real HTTP: traffic from /metrics, the test prediction."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from starlette.testclient import TestClient

from atoll._http.metrics import Metrics
from atoll.api.context import AtollContext
from atoll.containers.base import ReplicaStatus
from atoll.ui.replica_metrics import parse_prometheus, sample_of, summarize
from ui.conftest import json_of


class Replica(BaseHTTPRequestHandler):
    """Answers like a replica: /predict (setosa, or 400 for a non-list), /metrics in Prometheus text."""

    metrics = Metrics("atoll", ("/predict",))
    secrets: ClassVar[list[str | None]] = []  # the x-atoll-replica-secret of each POST

    def do_POST(self) -> None:
        self.secrets.append(self.headers.get("x-atoll-replica-secret"))
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        rows = json.loads(body or b"null")
        status, answer = (200, {"result": ["setosa"]}) if isinstance(rows, list) else (400, {"error": "expected rows"})
        self.metrics.observe("/predict", status, 0.003)
        self._send(status, json.dumps(answer).encode(), "application/json")

    def do_GET(self) -> None:
        self._send(200, self.metrics.render(), "text/plain; version=0.0.4")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def replica(ctx: AtollContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    Replica.metrics = Metrics("atoll", ("/predict",))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replica)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    # The memory runtime's replicas answer in-process only (memory:// URLs), and are healthy or failed at
    # once; the UI speaks HTTP to a replica (/predict, /metrics) and shows one still starting.
    replicas = [ReplicaStatus("iris-svc-0", "healthy", url), ReplicaStatus("iris-svc-1", "starting")]
    monkeypatch.setattr(ctx.containers, "service_status", lambda project, name: list(replicas))
    ctx.config.router.port = 9  # nothing listens there: the form falls back to a healthy replica
    yield url
    server.shutdown()
    server.server_close()


def test_the_page_lists_replicas_with_health_and_the_served_version(client: TestClient, replica: str) -> None:
    data = json_of(client, "/proj/iris/depl/iris-svc")
    assert data["deployment"]["availability"] == "1/2"
    assert [(r["name"], r["state"]) for r in data["replicas"]] == [("iris-svc-0", "healthy"), ("iris-svc-1", "starting")]
    assert data["movers"] == [{"model": "iris-clf", "name": "first"}]
    html = client.get("/proj/iris/depl/iris-svc").text
    assert 'data-metrics="/proj/iris/depl/iris-svc/metrics"' in html and 'tr data-replica="iris-svc-0"' in html


def test_the_test_prediction_form_answers_setosa(client: TestClient, replica: str, ctx: AtollContext) -> None:
    from atoll.api.replica_secrets import replica_secret

    secret = replica_secret(ctx, "iris", "iris-svc")  # made by `depl new`: the replica wants it
    Replica.secrets = []
    page = client.post("/proj/iris/depl/iris-svc/predict", data={"body": "[5.1, 3.5, 1.4, 0.2]"},
                       headers={"Origin": "http://127.0.0.1:30090"})  # what a browser sends from the form
    assert page.status_code == 200
    assert "HTTP 200" in page.text and "setosa" in page.text and f"{replica}/predict" in page.text
    assert Replica.secrets == [secret]  # the router did not answer: the UI sent the replica its secret
    refused = client.post("/proj/iris/depl/iris-svc/predict", data={"body": '{"rows": 1}'},
                          headers={"Accept": "application/json"})
    assert refused.json()["status"] == 400 and "expected rows" in refused.json()["text"]


def test_traffic_figures_come_from_the_replicas_metrics(client: TestClient, replica: str) -> None:
    first = json_of(client, "/proj/iris/depl/iris-svc/metrics")
    assert first["metrics"]["requests_total"] == 0
    for body in ("[1, 2, 3, 4]", "[1, 2, 3, 4]", "{}"):
        client.post("/proj/iris/depl/iris-svc/predict", data={"body": body})
    second = json_of(client, "/proj/iris/depl/iris-svc/metrics")["metrics"]
    assert second["requests_total"] == 3 and second["errors_total"] == 1
    assert second["request_rate"] > 0 and second["error_rate"] > 0
    assert second["latency_mean_ms"] == pytest.approx(3.0)
    assert second["latency_p99_ms"] == pytest.approx(5.0)  # the bucket holding 3 ms
    assert second["replicas"]["iris-svc-0"]["requests_total"] == 3


def test_prometheus_text_is_parsed_as_the_toolkit_writes_it() -> None:
    metrics = Metrics("atoll", ("/predict",))
    for _ in range(9):
        metrics.observe("/predict", 200, 0.0008)
    metrics.observe("/predict", 500, 0.2)
    metrics.count("/health", 200)
    samples = parse_prometheus(metrics.render().decode())
    assert ("atoll_requests_total", {"route": "/health", "status": "200"}, 1.0) in samples
    now = sample_of(metrics.render().decode(), at=10.0)
    assert (now.requests, now.errors) == (10, 1)
    figures = summarize(now, previous=None)
    assert figures["request_rate"] is None  # one scrape gives totals, not rates
    assert figures["latency_p50_ms"] == pytest.approx(1.0) and figures["latency_p99_ms"] == pytest.approx(250.0)
    later = summarize(sample_of(metrics.render().decode(), at=12.0), previous=now)
    assert later["request_rate"] == 0  # a quiet interval: no rate, but the latency since start
    assert later["latency_mean_ms"] == pytest.approx((9 * 0.8 + 200) / 10)
