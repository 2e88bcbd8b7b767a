"""API keys at the router: a real router process with a keys file, in front of a real replica."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from router_helpers import healthy, start_replica, start_router, write_state

from atoll.api.keys import KEY_PREFIX, key_hash
from support.processes import ServerProcess, wait_for

# Echoes the names of the request headers it received: shows what the router forwarded.
HEADERS_REPLICA = """
import orjson
from atoll._http.asgi import lifespan, read_body, run_app

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send, lambda: None, lambda: None)
        return
    await read_body(receive)
    body = orjson.dumps(sorted(name.decode() for name, _ in scope["headers"]))
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

run_app(app)
"""

PEPPER = secrets.token_bytes(32)


def make_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def entry(name: str, key: str, proj: str = "proj", deploy: str | None = None,
          expires: float | None = None) -> dict[str, Any]:
    return {"name": name, "proj": proj, "deploy": deploy, "expires": expires,
            "prefix": key[:12], "hash": key_hash(key, PEPPER)}


def write_keys(path: Path, entries: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"version": 1, "pepper": PEPPER.hex(), "keys": entries}))
    os.replace(tmp, path)


class Setup:
    def __init__(self, router: ServerProcess, keys_file: Path, keys: dict[str, str]) -> None:
        self.router, self.keys_file, self.keys = router, keys_file, keys

    def call(self, deploy: str = "dep", project: str = "proj", auth: str | None = None) -> httpx.Response:
        headers = {"authorization": auth} if auth is not None else {}
        return httpx.post(f"{self.router.url}/predict", params={"project": project, "deploy": deploy},
                          content=b"x", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("auth")
    state = tmp / "state"
    keys = {name: make_key() for name in ("all", "dep-only", "other-dep", "other-proj", "expired", "revoked")}
    keys_file = tmp / "keys.json"
    write_keys(keys_file, [
        entry("all", keys["all"]),
        entry("dep-only", keys["dep-only"], deploy="dep"),
        entry("other-dep", keys["other-dep"], deploy="other"),
        entry("other-proj", keys["other-proj"], proj="elsewhere"),
        entry("expired", keys["expired"], expires=time.time() - 1),
        entry("revoked", keys["revoked"]),
    ])
    started: list[ServerProcess] = []
    try:
        replica = start_replica(tmp, "hdr-1", HEADERS_REPLICA)
        started.append(replica)
        write_state(state, "proj", "dep", [healthy(replica)])
        write_state(state, "proj", "other", [healthy(replica)])
        started.append(start_router(tmp, state, auth=("--keys-file", str(keys_file))))
        yield Setup(started[-1], keys_file, keys)
    finally:
        for process in started:
            process.stop()


def test_a_valid_key_passes_and_the_authorization_header_is_not_forwarded(setup: Setup) -> None:
    for name in ("all", "dep-only"):
        answer = setup.call(auth=f"Bearer {setup.keys[name]}")
        assert answer.status_code == 200, answer.text
        forwarded = answer.json()
        assert "authorization" not in forwarded
        assert "user-agent" in forwarded  # the other headers pass
    assert setup.call(auth=f"bearer  {setup.keys['all']}").status_code == 200  # scheme is case-insensitive


@pytest.mark.parametrize(
    "auth", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "Bearer atk_not-a-real-key"]
)
def test_missing_malformed_or_unknown_keys_are_401(setup: Setup, auth: str | None) -> None:
    answer = setup.call(auth=auth)
    assert answer.status_code == 401, answer.text
    assert "error" in answer.json()


def test_a_key_with_a_known_prefix_but_wrong_secret_is_401(setup: Setup) -> None:
    forged = setup.keys["all"][:12] + "A" * (len(setup.keys["all"]) - 12)
    assert setup.call(auth=f"Bearer {forged}").status_code == 401


@pytest.mark.parametrize(
    ("key", "project", "deploy"),
    [("other-dep", "proj", "dep"), ("other-proj", "proj", "dep"), ("expired", "proj", "dep"), ("dep-only", "proj", "other")],
)
def test_keys_for_another_target_or_expired_are_403(setup: Setup, key: str, project: str, deploy: str) -> None:
    answer = setup.call(deploy=deploy, project=project, auth=f"Bearer {setup.keys[key]}")
    assert answer.status_code == 403, answer.text
    assert key in answer.json()["error"]


def test_names_are_checked_before_keys_and_unknown_targets_still_need_a_key(setup: Setup) -> None:
    assert setup.call(deploy="Bad_Name").status_code == 400
    assert setup.call(deploy="nope").status_code == 401
    assert setup.call(deploy="nope", auth=f"Bearer {setup.keys['all']}").status_code == 404


def test_a_revoked_key_stops_working_and_a_broken_file_lets_nothing_through(setup: Setup) -> None:
    assert setup.call(auth=f"Bearer {setup.keys['revoked']}").status_code == 200
    original = setup.keys_file.read_bytes()
    try:
        write_keys(setup.keys_file, [entry("all", setup.keys["all"])])
        wait_for(lambda: setup.call(auth=f"Bearer {setup.keys['revoked']}").status_code == 401, timeout=10)
        assert setup.call(auth=f"Bearer {setup.keys['all']}").status_code == 200

        setup.keys_file.write_bytes(b"{not json")
        wait_for(lambda: setup.call(auth=f"Bearer {setup.keys['all']}").status_code == 401, timeout=10)
    finally:
        tmp = setup.keys_file.with_suffix(".restore")
        tmp.write_bytes(original)
        os.replace(tmp, setup.keys_file)
    wait_for(lambda: setup.call(auth=f"Bearer {setup.keys['all']}").status_code == 200, timeout=10)


def test_health_and_metrics_need_no_key(setup: Setup) -> None:
    assert httpx.get(f"{setup.router.url}/health", timeout=5).status_code == 200
    assert httpx.get(f"{setup.router.url}/metrics", timeout=5).status_code == 200


def test_auth_on_without_a_keys_file_refuses_to_start_and_off_warns(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "atoll.router", "--port", "0", "--state-dir", str(tmp_path)]
    done = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--keys-file" in done.stderr and "Traceback" not in done.stderr

    state = tmp_path / "state"
    state.mkdir()
    router = start_router(tmp_path, state, name="open-router", auth=("--auth", "off"))
    try:
        assert "WARNING: auth is off" in router.log.read_text()
    finally:
        router.stop()


def test_the_swarm_router_reads_the_keys_file_from_its_read_only_mount(tmp_path: Path) -> None:
    from atoll.config import Config
    from atoll.islands.router import KEYS_MOUNT, SwarmRouterIsland

    on = SwarmRouterIsland(Config()).command()
    assert on[-4:] == ["--keys-file", f"{KEYS_MOUNT}/keys.json",
                       "--replica-secrets", f"{KEYS_MOUNT}/replica-secrets.json"]
    off = SwarmRouterIsland(Config.model_validate({"router": {"auth": "off"}})).command()
    assert off[-4:] == ["--auth", "off", "--replica-secrets", f"{KEYS_MOUNT}/replica-secrets.json"]
