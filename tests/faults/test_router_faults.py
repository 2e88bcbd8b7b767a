"""A replica SIGKILLed under a bounded load through the router (with API keys on)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from atoll.api.keys import KEY_PREFIX, key_hash
from router.router_helpers import healthy, start_replica, start_router, write_state
from support.processes import ServerProcess

pytestmark = pytest.mark.slow

THREADS = 4
PER_THREAD = 500


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ServerProcess, list[ServerProcess], str]]:
    key = KEY_PREFIX + "k" * 43
    pepper = b"q" * 32
    keys_file = tmp_path / "keys.json"
    keys_file.write_bytes(orjson.dumps({"version": 1, "pepper": pepper.hex(), "keys": [
        {"name": "k", "proj": "proj", "deploy": "dep", "expires": None, "prefix": key[:12],
         "hash": key_hash(key, pepper)}]}))
    started: list[ServerProcess] = []
    try:
        replicas = [start_replica(tmp_path, f"dep-{i}") for i in (1, 2)]
        started += replicas
        write_state(tmp_path / "state", "proj", "dep", [healthy(r) for r in replicas])
        router = start_router(tmp_path, tmp_path / "state", auth=("--keys-file", str(keys_file)))
        started.append(router)
        yield router, replicas, key
    finally:
        for process in started:
            process.stop()


def test_a_replica_sigkilled_under_load_through_the_router(cluster, figure) -> None:
    router, replicas, key = cluster
    done = 0
    failed: list[str] = []
    lock = threading.Lock()
    quarter = threading.Event()

    def load() -> None:
        nonlocal done
        with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=30) as client:
            for i in range(PER_THREAD):
                try:
                    answer = client.post(f"{router.url}/predict?project=proj&deploy=dep", content=b"x")
                    ok = answer.status_code == 200 and answer.json()["result"] == "x"
                    why = "" if ok else f"HTTP {answer.status_code}: {answer.text[:100]}"
                except httpx.HTTPError as exc:
                    why = f"{type(exc).__name__}: {exc}"
                with lock:
                    done += 1
                    if why:
                        failed.append(why)
                    if done >= THREADS * PER_THREAD // 4:
                        quarter.set()

    threads = [threading.Thread(target=load) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    assert quarter.wait(120)
    replicas[0].kill()
    for thread in threads:
        thread.join(300)
    total = THREADS * PER_THREAD
    figure("replica SIGKILLed under load through the router",
           f"{len(failed)} of {total} requests failed ({THREADS} concurrent)", "0 failed")
    assert done == total
    # A request already sent to the killed replica is not replayed (it may not be idempotent):
    # at most one per concurrent client can fail.
    assert len(failed) <= THREADS, failed
    assert router.proc.poll() is None and replicas[1].proc.poll() is None
