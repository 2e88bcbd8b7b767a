"""A replica, then the router, SIGKILLed under a bounded load through the router (with API keys on)."""

from __future__ import annotations

import os
import signal
import threading
import time
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


RATE = 100  # requests per second per client
PER_CLIENT = 500


def test_the_local_router_sigkilled_under_load_is_restarted(tmp_path: Path, figure) -> None:
    from atoll.config import Config
    from atoll.islands.router import LocalRouterIsland
    from support.processes import atoll_home, free_port, processes_of

    home = tmp_path / "home"
    key = KEY_PREFIX + "r" * 43
    pepper = b"s" * 32
    with atoll_home(home):
        island = LocalRouterIsland(Config.model_validate({"router": {"port": free_port()}}))
        keys_file = island.config.router_keys_file
        keys_file.parent.mkdir(parents=True)
        keys_file.write_bytes(orjson.dumps({"version": 1, "pepper": pepper.hex(), "keys": [
            {"name": "k", "proj": "proj", "deploy": None, "expires": None, "prefix": key[:12],
             "hash": key_hash(key, pepper)}]}))
        replicas = [start_replica(tmp_path, f"dep-{i}") for i in (1, 2)]
        try:
            write_state(home / "run" / "deployments", "proj", "dep", [healthy(r) for r in replicas])
            started = island.setup()
            url = f"{started.url}/predict?project=proj&deploy=dep"
            outcomes: list[tuple[float, bool]] = []  # (when, answered correctly)
            lock = threading.Lock()
            quarter = threading.Event()

            def load() -> None:
                with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=10) as client:
                    next_at = time.monotonic()
                    for _ in range(PER_CLIENT):
                        time.sleep(max(0.0, next_at - time.monotonic()))
                        next_at = max(next_at, time.monotonic()) + 1 / RATE  # late: no catching up
                        try:
                            answer = client.post(url, content=b"x")
                            ok = answer.status_code == 200 and answer.json()["result"] == "x"
                        except httpx.HTTPError:
                            ok = False
                        with lock:
                            outcomes.append((time.monotonic(), ok))
                            if len(outcomes) >= THREADS * PER_CLIENT // 4:
                                quarter.set()

            threads = [threading.Thread(target=load) for _ in range(THREADS)]
            for thread in threads:
                thread.start()
            assert quarter.wait(120)
            assert started.pid is not None
            os.kill(started.pid, signal.SIGKILL)
            killed = time.monotonic()
            for thread in threads:
                thread.join(300)
            failed = sum(1 for _, ok in outcomes if not ok)
            last_failure = max((when for when, ok in outcomes if not ok), default=killed)
            back = next((when for when, ok in sorted(outcomes) if ok and when > last_failure), None)
            total = THREADS * PER_CLIENT
            assert len(outcomes) == total
            assert back is not None, "the router did not serve again"
            figure("local router SIGKILLed under load (its supervisor restarts it)",
                   f"{failed} of {total} requests failed ({THREADS} clients × {RATE} req/s); "
                   f"serving again {back - killed:.2f} s after the kill", "restarted, serving in < 2 s")
            assert failed > 0  # the clients did see it go down
            assert back - killed < 10  # a sanity bound; the figure is the measurement
            status = island.status()
            assert status.running and status.pid != started.pid
            assert httpx.post(url, content=b"x", timeout=10).status_code == 401  # still requires the key
        finally:
            island.stop()
            for replica in replicas:
                replica.stop()
        assert processes_of(home) == []
