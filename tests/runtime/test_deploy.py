"""Local deployments: real replica processes, a real supervisor and a real router.

A fake build (the test environment plus a directory of notebooks) stands in
for ``proj build`` so these tests run in seconds; tests/e2e does the real thing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from deploy_helpers import fake_build, free_port, kill_all, processes_of, wait_for

from atoll.api.context import AtollContext
from atoll.api.keys import new_key
from atoll.api.replica_secrets import replica_secret
from atoll.config import load_config
from atoll.containers.base import TaskSpec
from atoll.containers.local.manager import LocalContainerManager
from atoll.containers.local.services import discovery_file, service_dir
from atoll.domain.records import BuildVersion, Project
from atoll.errors import ExecutionError, UsageError
from atoll.islands.router import LocalRouterIsland
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore


class Env:
    def __init__(self, ctx: AtollContext, manager: LocalContainerManager, project: Project, build: BuildVersion,
                 router: str, key: str) -> None:
        self.ctx, self.home = ctx, ctx.config.home
        self.manager, self.project, self.build, self.router = manager, project, build, router
        self.key = key
        self.logs: list[str] = []

    def spec(self, name: str, notebook: str = "echo.ipynb", replicas: int = 2, **extra: Any) -> TaskSpec:
        # as `depl new` does: the deployment's replica secret, known to the router by its file
        replica = {"secret": self.secret(name), "limits": self.ctx.config.serving.limits()}
        return TaskSpec(kind="deploy", project=self.project, build=self.build, name=name, notebook=notebook,
                        replicas=replicas, meta={"deployment": {"notebook": notebook, "params": extra.pop("params", {})}},
                        replica=replica, **extra)

    def secret(self, name: str) -> str:
        return replica_secret(self.ctx, self.project.name, name)

    def balanced(self, port: int, body: str = "x", key: str | None = None) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{port}/predict", content=body, timeout=10,
                          headers={"authorization": f"Bearer {key or self.key}"})

    def deploy(self, name: str, timeout: float = 60, **kwargs: Any) -> list[Any]:
        return self.manager.deploy(self.spec(name, **kwargs), timeout, self.logs.append)

    def status(self, name: str) -> dict[str, Any]:
        return orjson.loads((service_dir(self.project.name, name) / "status.json").read_bytes())

    def routed(self, name: str, body: str = "hi") -> httpx.Response:
        return httpx.post(f"{self.router}/predict", params={"project": self.project.name, "deploy": name},
                          content=body, timeout=10, headers={"authorization": f"Bearer {self.key}"})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("deploy")
    home = tmp / "home"
    saved = {k: os.environ.get(k) for k in ("ATOLL_HOME", "ATOLL_ROUTER__PORT", "ATOLL_LOGGER__DIRECTORY")}
    os.environ["ATOLL_HOME"] = str(home)
    os.environ["ATOLL_LOGGER__DIRECTORY"] = str(tmp / "logs")
    os.environ["ATOLL_ROUTER__PORT"] = str(free_port())
    config = load_config(tmp)
    manager = LocalContainerManager(config, MemoryMetadataStore(), MemoryFileStore())
    project, build = fake_build(tmp / "build")
    ctx = AtollContext(config, cwd=tmp)
    ctx.metadata.create(Project(name=project.name))
    _record, key = new_key(ctx, project.name)  # the router requires a key by default
    island = LocalRouterIsland(config)
    island.setup()
    try:
        yield Env(ctx, manager, project, build, island.url, key)
    finally:
        for entry in (home / "run" / "services" / project.name).glob("*"):
            if entry.is_dir():
                manager.remove_service(project.name, entry.name)
        island.stop()
        leftovers = processes_of(home)
        kill_all(leftovers)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        assert leftovers == [], "processes were left running"


@pytest.fixture(scope="module")
def svc(env: Env) -> str:
    """Deployment ``svc``: two echo replicas, balanced on a --port."""
    port = free_port()
    replicas = env.deploy("svc", port=port)
    assert [r.state for r in replicas] == ["healthy", "healthy"]
    return "svc"


def test_the_balancer_answers_with_one_date_header(env: Env, svc: str) -> None:
    port = env.status(svc)["port"]
    answer = env.balanced(port)
    assert answer.status_code == 200
    assert len(answer.headers.get_list("date")) == 1, answer.headers.raw
    routed = env.routed(svc)
    assert len(routed.headers.get_list("date")) == 1, routed.headers.raw


def test_the_supervisor_also_logs_to_the_configured_directory(env: Env, svc: str) -> None:
    path = Path(os.environ["ATOLL_LOGGER__DIRECTORY"]) / f"supervisor-{env.project.name}-{svc}.log"
    assert f"{svc}-0 healthy" in path.read_text()
    assert f"{svc}-0 healthy" in (service_dir(env.project.name, svc) / "supervisor.log").read_text()  # kept


def test_two_replicas_answer_directly_balanced_and_through_the_router(env: Env, svc: str) -> None:
    status = env.status(svc)
    assert [r["state"] for r in status["replicas"]] == ["healthy", "healthy"]
    seen = set()
    secret = {"x-atoll-replica-secret": env.secret(svc)}
    for replica in status["replicas"]:
        answer = httpx.post(f"{replica['url']}/predict", content="direct", timeout=10, headers=secret).json()
        assert answer["result"] == {"echo": "direct", "greeting": "hello", "replica": replica["name"]}
        seen.add(answer["result"]["replica"])
        assert httpx.get(f"{replica['url']}/health").status_code == 200
    assert seen == {"svc-0", "svc-1"}

    balanced = {env.balanced(status["port"]).json()["result"]["replica"] for _ in range(6)}
    assert balanced == {"svc-0", "svc-1"}

    routed = [env.routed(svc) for _ in range(6)]
    assert all(r.status_code == 200 for r in routed)
    assert {r.json()["result"]["replica"] for r in routed} == {"svc-0", "svc-1"}
    bad = env.routed(svc, "bad")
    assert bad.status_code == 400 and bad.json() == {"error": "bad body"}

    discovery = orjson.loads(discovery_file(env.project.name, svc).read_bytes())
    assert discovery["deployment"] == svc
    assert sorted((r["name"], r["state"]) for r in discovery["replicas"]) == [("svc-0", "healthy"), ("svc-1", "healthy")]
    assert [r.state for r in env.manager.service_status(env.project.name, svc)] == ["healthy", "healthy"]


def test_replicas_answer_predictions_only_with_their_secret(env: Env, svc: str) -> None:
    status = env.status(svc)
    for replica in status["replicas"]:
        bare = httpx.post(f"{replica['url']}/predict", content="x", timeout=10)
        assert bare.status_code == 403, bare.text
        assert "only through the router" in bare.json()["error"]
        wrong = httpx.post(f"{replica['url']}/predict", content="x", timeout=10,
                           headers={"x-atoll-replica-secret": "a" * 43})
        assert wrong.status_code == 403
        assert httpx.post(f"{replica['url']}/nowhere", content="x", timeout=10).status_code == 403
        assert httpx.get(f"{replica['url']}/health", timeout=10).status_code == 200
        assert httpx.get(f"{replica['url']}/metrics", timeout=10).status_code == 200
    # the router and the balancer send the secret; a client's own copy of the header is not forwarded
    forged = {"x-atoll-replica-secret": "forged", "authorization": f"Bearer {env.key}"}
    routed = httpx.post(f"{env.router}/predict", params={"project": env.project.name, "deploy": svc},
                        content="x", timeout=10, headers=forged)
    assert routed.status_code == 200, routed.text
    assert httpx.post(f"http://127.0.0.1:{status['port']}/predict", content="x", timeout=10,
                      headers=forged).status_code == 200
    # the secret travels in the task's 0600 store settings, not in the replica's environment
    for replica in status["replicas"]:
        environ = Path(f"/proc/{replica['pid']}/environ").read_bytes()
        assert env.secret(svc).encode() not in environ


def test_the_balancer_follows_the_router_key_rules(env: Env, svc: str) -> None:
    port = env.status(svc)["port"]
    missing = httpx.post(f"http://127.0.0.1:{port}/predict", content="x", timeout=10)
    assert missing.status_code == 401 and "missing API key" in missing.json()["error"]
    unknown = env.balanced(port, key="atk_unknownkeyunknownkey")
    assert unknown.status_code == 401
    _record, other = new_key(env.ctx, env.project.name, deploy="another-svc", name="other-depl")
    wait_for(lambda: env.balanced(port, key=other).status_code == 403, timeout=5)  # the file is re-read
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200  # probes need no key


def test_a_killed_replica_is_restarted_while_the_router_keeps_answering(env: Env, svc: str) -> None:
    victim = env.status(svc)["replicas"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    answers = []

    def restarted() -> bool:
        answers.append(env.routed(svc).status_code)
        replica = next(r for r in env.status(svc)["replicas"] if r["name"] == victim["name"])
        return replica["state"] == "healthy" and replica["pid"] != victim["pid"] and replica["restarts"] == 1

    wait_for(restarted, timeout=30, every=0.05)
    assert answers and set(answers) == {200}, answers
    assert {r["state"] for r in env.status(svc)["replicas"]} == {"healthy"}
    logs = "\n".join(env.manager.service_logs(env.project.name, svc))
    assert "[svc-0] --- atoll: starting svc-0" in logs


def test_a_failed_redeploy_keeps_the_old_replicas_serving(env: Env, svc: str) -> None:
    before = {r["name"]: r["pid"] for r in env.status(svc)["replicas"]}
    with pytest.raises(ExecutionError) as info:
        env.deploy(svc, notebook="boom.ipynb", port=env.status(svc)["port"], timeout=30)
    assert "previous replicas keep serving" in str(info.value)
    assert "the model file is corrupt" in info.value.log_tail
    after = env.status(svc)
    assert {r["name"]: r["pid"] for r in after["replicas"]} == before
    assert [r["state"] for r in after["replicas"]] == ["healthy", "healthy"]
    assert env.routed(svc).status_code == 200
    tasks = env.home / "tasks" / env.project.name / "depl" / svc
    assert len(list(tasks.glob("g*"))) == 1  # the failed generation's task dirs are gone


def test_a_redeploy_rolls_the_replicas_over(env: Env, svc: str) -> None:
    port = env.status(svc)["port"]
    before = {r["pid"] for r in env.status(svc)["replicas"]}
    codes: list[int] = []
    replicas = env.deploy(svc, port=port, params={"greeting": "bonjour"})
    assert [r.state for r in replicas] == ["healthy", "healthy"]
    after = env.status(svc)
    assert not before & {r["pid"] for r in after["replicas"]}
    codes.append(env.routed(svc).status_code)
    assert env.routed(svc).json()["result"]["greeting"] == "bonjour"
    balanced = env.balanced(port).json()
    assert balanced["result"]["greeting"] == "bonjour"
    assert codes == [200]
    rolled = [line for line in env.logs if "rolling over" in line]
    assert rolled


def test_a_new_deployment_that_fails_leaves_nothing_running(env: Env) -> None:
    before = set(processes_of(env.home))
    with pytest.raises(ExecutionError) as info:
        env.deploy("broken", notebook="boom.ipynb", timeout=30)
    assert "did not start" in str(info.value)
    assert "RuntimeError: the model file is corrupt" in info.value.log_tail
    assert "cell 1 failed" in info.value.log_tail
    assert set(processes_of(env.home)) == before
    assert not discovery_file(env.project.name, "broken").exists()
    assert not service_dir(env.project.name, "broken").exists()
    assert env.manager.service_status(env.project.name, "broken") == []


def test_a_replica_that_never_gets_healthy_times_out_and_is_stopped(env: Env) -> None:
    before = set(processes_of(env.home))
    with pytest.raises(ExecutionError) as info:
        env.deploy("mute", notebook="mute.ipynb", replicas=1, timeout=3)
    assert "did not become healthy within 3s" in str(info.value)
    assert set(processes_of(env.home)) == before
    assert not discovery_file(env.project.name, "mute").exists()


def test_a_busy_port_is_refused_before_anything_starts(env: Env) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(UsageError, match="already in use"):
            env.deploy("busy", replicas=1, port=sock.getsockname()[1])
    assert not service_dir(env.project.name, "busy").exists() or not (
        service_dir(env.project.name, "busy") / "supervisor.pid"
    ).exists()


def test_remove_stops_every_process_and_forgets_the_deployment(env: Env) -> None:
    env.deploy("gone", replicas=2)
    pids = [r["pid"] for r in env.status("gone")["replicas"]]
    supervisor = orjson.loads((service_dir(env.project.name, "gone") / "supervisor.pid").read_bytes())["pid"]
    env.manager.remove_service(env.project.name, "gone")
    alive = set(processes_of(env.home))
    assert not alive & {*pids, supervisor}
    assert not discovery_file(env.project.name, "gone").exists()
    assert not (env.home / "tasks" / env.project.name / "depl" / "gone").exists()
    assert env.manager.service_status(env.project.name, "gone") == []
    answer = env.routed("gone")
    assert answer.status_code == 404
    env.manager.remove_service(env.project.name, "gone")  # removing twice is fine
