"""Fixtures: real replicas and a real router, in subprocesses on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from router_helpers import (
    RAW_REPLICA,
    Cluster,
    ServerProcess,
    free_port,
    healthy,
    start_replica,
    start_router,
    write_state,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Deployment proj/dep (2 replicas), proj/raw (1 raw replica), proj/down, proj/gone, and the router."""
    tmp = tmp_path_factory.mktemp("cluster")
    state = tmp / "state"
    started: list[ServerProcess] = []
    try:
        for name in ("dep-1", "dep-2"):
            started.append(start_replica(tmp, name))
        started.append(start_replica(tmp, "raw-1", RAW_REPLICA))
        write_state(state, "proj", "dep", [healthy(started[0]), healthy(started[1])])
        write_state(state, "proj", "raw", [healthy(started[2])])
        write_state(
            state,
            "proj",
            "down",
            [
                {"name": "down-1", "url": "http://127.0.0.1:1", "pid": 1, "state": "starting"},
                {"name": "down-2", "url": "http://127.0.0.1:1", "pid": 2, "state": "failed"},
            ],
        )
        write_state(
            state,
            "proj",
            "gone",
            [{"name": "gone-1", "url": f"http://127.0.0.1:{free_port()}", "pid": 3, "state": "healthy"}],
        )
        (state / "empty-project").mkdir()
        router = start_router(tmp, state)
        started.append(router)
        yield Cluster(started[:3], router, tmp, state)
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def predict(cluster: Cluster) -> Callable[..., httpx.Response]:
    router = cluster.router

    def call(query: str, body: bytes = b"x", path: str = "/predict", **kwargs: object) -> httpx.Response:
        return httpx.post(f"{router.url}{path}?{query}", content=body, timeout=10, **kwargs)  # type: ignore[arg-type]

    return call
