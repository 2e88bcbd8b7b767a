"""Start real replicas and a real router in subprocesses on free ports (stopped by PID, see :mod:`support`)."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import orjson

from support.processes import ServerProcess, free_port

ECHO_REPLICA = """
import os, time
from atoll.toolkit.serving import OnlinePredict

def predict(body):
    if body == "bad":
        raise ValueError("bad input")
    if body == "slow":
        time.sleep(1.0)
    return body

OnlinePredict(predict)()
"""

# Answers the request back in headers and body, not JSON, with status 201:
# shows what the router forwarded and that it returns answers unchanged.
RAW_REPLICA = """
import os
import orjson
from atoll._http.asgi import lifespan, read_body, run_app

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send, lambda: None, lambda: None)
        return
    body = await read_body(receive)
    if scope["path"] == "/health":
        status, body, ctype = 200, b"ok", b"text/plain"
    else:
        status, ctype = 201, b"application/x-echo"
    info = orjson.dumps({
        "method": scope["method"], "path": scope["path"],
        "query": scope["query_string"].decode(),
        "content_type": dict(scope["headers"]).get(b"content-type", b"").decode(),
        "replica": os.environ["ATOLL_REPLICA"],
    })
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", ctype), (b"content-length", str(len(body)).encode()), (b"x-echo", info)]})
    await send({"type": "http.response.body", "body": body})

run_app(app)
"""


def start_replica(
    tmp: Path, name: str, script: str = ECHO_REPLICA, replica: dict[str, object] | None = None
) -> ServerProcess:
    """A replica on a free port; ``replica`` (``{"secret", "limits"}``) goes in its store settings as a
    deployment's replica gets it (a 0600 file named by ``ATOLL_STORE_CONFIG``)."""
    path = tmp / f"{name}.py"
    path.write_text(textwrap.dedent(script))
    port = free_port()
    task = tmp / "task"
    (task / "model" / "wine.v1").mkdir(parents=True, exist_ok=True)
    env = {
        "ATOLL_TASK_DIR": str(task),
        "ATOLL_REPLICA": name,
        "ATOLL_PORT": str(port),
        "ATOLL_HOST": "127.0.0.1",
    }
    if replica is not None:
        settings = tmp / f"{name}-store.json"
        settings.touch(mode=0o600)
        settings.write_bytes(orjson.dumps({"version": 1, "replica": replica}))
        env["ATOLL_STORE_CONFIG"] = str(settings)
    return ServerProcess(tmp, name, [sys.executable, str(path)], env, port)


def write_replica_secrets(path: Path, secrets: dict[str, str]) -> Path:
    """A replica secrets file as ``atoll depl new`` writes it: ``{"<project>/<deployment>": secret}``."""
    path.write_bytes(orjson.dumps({"version": 1, "secrets": secrets}))
    return path


def write_state(state_dir: Path, project: str, deployment: str, replicas: list[dict[str, object]]) -> None:
    """Write a state file the way the local manager does: whole, then renamed into place."""
    target = state_dir / project / f"{deployment}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"project": project, "deployment": deployment, "replicas": replicas}))
    os.replace(tmp, target)


def healthy(process: ServerProcess) -> dict[str, object]:
    return {"name": process.name, "url": process.url, "pid": process.proc.pid, "state": "healthy"}


def start_router(
    tmp: Path, state_dir: Path, name: str = "router", auth: tuple[str, ...] = ("--auth", "off")
) -> ServerProcess:
    """A router on a free port; routing tests run it without keys (``auth`` gives --keys-file to test them)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "atoll.router",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--discovery",
        "local",
        "--state-dir",
        str(state_dir),
        "--recheck",
        "0.2",
        "--max-body",
        str(1024 * 1024),
        *auth,
    ]
    return ServerProcess(tmp, name, argv, {}, port)


@dataclass
class Cluster:
    """What the ``cluster`` fixture started."""

    replicas: list[ServerProcess]
    router: ServerProcess
    tmp: Path
    state: Path
