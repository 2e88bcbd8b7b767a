"""``atoll isle router setup --self-signed`` on swarm, against the real engine (marked ``docker``).

A home of its own configured for swarm (private namespace, free router port). The
router service must serve HTTPS with the pair handed over as Docker secrets: the
private key is in no service spec (argv, env, labels) and no image; plain HTTP is
refused; ``stop`` removes the service and its secrets. The fixture removes, by exact
name, whatever a failure may have left. Run under ``flock /tmp/atoll-docker.lock``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from support.cli_home import CliHome
from support.docker_cleanup import remove_by_name
from support.processes import free_port, wait_for

if TYPE_CHECKING:
    from docker import DockerClient

pytestmark = [pytest.mark.docker, pytest.mark.slow]


SwarmHome = CliHome


@pytest.fixture
def swarm_home(swarm_client: DockerClient, python_image: str, tmp_path: Path) -> Iterator[SwarmHome]:
    namespace = f"atoll-r{os.getpid()}{uuid.uuid4().hex[:4]}"
    path = tmp_path / "home"
    path.mkdir()
    port = free_port()
    (path / "atoll.yaml").write_text(yaml.safe_dump({
        "container_manager": {"type": "swarm", "namespace": namespace},
        "router": {"port": port, "auth": False},
        "islands": {"setup_timeout": 120},
        "docker": {"python_image": python_image},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")} | {"ATOLL_HOME": str(path)}
    try:
        yield SwarmHome(path, namespace, port, env)
    finally:
        remove_by_name(swarm_client, namespace, services=[f"{namespace}-router"])


def test_the_swarm_router_serves_https_with_its_pair_as_docker_secrets(
    swarm_home: SwarmHome, swarm_client: DockerClient
) -> None:
    status = swarm_home.atoll("isle", "router", "setup", "--self-signed")
    cert, key = swarm_home.path / "tls" / "router.crt", swarm_home.path / "tls" / "router.key"
    assert status["running"] and status["url"] == f"https://127.0.0.1:{swarm_home.port}"
    assert str(cert) in status["message"]
    base = status["url"]

    with httpx.Client(verify=str(cert), timeout=10) as client:
        assert client.get(f"{base}/health").status_code == 200
        unknown = client.post(f"{base}/predict?project=nope&deploy=nope", content=b"x")
        assert unknown.status_code == 404, unknown.text  # routed by the router, over TLS
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{swarm_home.port}/health", timeout=5)

    service_name = f"{swarm_home.namespace}-router"
    service = swarm_client.services.get(service_name)
    key_body = "".join(key.read_text().splitlines()[1:-1])
    spec = json.dumps(service.attrs)
    assert key_body not in spec and key_body[:40] not in spec  # not in argv, env or labels
    secrets = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert sorted(s["File"]["Name"] for s in secrets) == ["router-tls.crt", "router-tls.key"]
    image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
    assert key_body[:40] not in json.dumps(swarm_client.images.get(image).attrs)

    # router.replicas (2) tasks behind the published port, through the ingress mesh; on an engine
    # without one (no IPVS in its kernel) a single task in host mode, and the status says why.
    wanted = swarm_home.atoll("isle", "router", "status")
    missing = "needs the swarm's ingress mesh" in wanted["message"]
    tasks = 1 if missing else 2
    assert f"({tasks}/{tasks} router tasks" in status["message"] and f"({tasks}/{tasks} router tasks" in wanted["message"]
    endpoint = service.attrs["Spec"]["EndpointSpec"]
    assert [p["PublishMode"] for p in endpoint["Ports"]] == ["host" if missing else "ingress"]
    update = service.attrs["Spec"]["UpdateConfig"]
    assert update["Order"] == ("stop-first" if missing else "start-first")
    containers = swarm_client.containers.list(filters={"label": f"com.docker.swarm.service.name={service_name}"})
    assert len(containers) == tasks
    user = containers[0].attrs["Config"]["User"]
    assert user and user.split(":")[0] != "0", user  # never root, even when Atoll runs as root
    assert containers[0].exec_run(["id", "-u"]).output.strip() != b"0"

    # One router task SIGKILLed under a bounded load (new connections, one after another): the other
    # task keeps serving while the swarm replaces it (restart policy); failed requests are counted.
    load = _Load(f"{base}/health", cert)
    load.start()
    time.sleep(1)
    containers[0].kill()
    killed = time.monotonic()
    containers[0].wait(timeout=30)  # gone: what answers next is another task or the new one
    wait_for(lambda: _running_tasks(swarm_client, service_name, containers[0].id) == tasks, timeout=120, every=0.1)
    back = time.monotonic() - killed
    time.sleep(1)
    load.stop()
    failed, total = load.failed(), len(load.results)
    serving = load.serving_again(killed)
    assert serving is not None and total > 10
    if not missing:
        assert any(ok for at, ok in load.results if killed < at < killed + back), "nothing answered meanwhile"
    print(f"\n[fault] swarm router task SIGKILLed ({tasks} task{'s' if tasks > 1 else ''}): {failed} of {total} "
          f"requests failed, serving again {serving:.2f} s and {tasks}/{tasks} tasks {back:.2f} s after the kill")
    assert f"({tasks}/{tasks} router tasks" in swarm_home.atoll("isle", "router", "status")["message"]

    # A new pair behind the same paths: `setup` updates the service in place onto new secrets
    # (named after their content) and removes the old ones.
    before = {s["SecretName"] for s in swarm_client.services.get(service_name).attrs["Spec"]["TaskTemplate"][
        "ContainerSpec"]["Secrets"]}
    cert.unlink()
    key.unlink()
    swarm_home.atoll("isle", "router", "setup", "--self-signed")
    assert _https_ok(base, cert)  # the new certificate (the old one no longer verifies it)
    after = {s["SecretName"] for s in swarm_client.services.get(service_name).attrs["Spec"]["TaskTemplate"][
        "ContainerSpec"]["Secrets"]}
    assert len(after) == 2 and not before & after
    assert not before & {s.name for s in swarm_client.secrets.list()}

    stopped = swarm_home.atoll("isle", "router", "stop")
    assert not stopped["running"]
    assert not swarm_client.services.list(filters={"name": service_name})
    assert not [s for s in swarm_client.secrets.list() if s.name.startswith(service_name)]


def _running_tasks(client: DockerClient, service: str, killed: str) -> int:
    """Tasks of ``service`` the swarm calls running (their health check passed), but the killed one."""
    tasks = client.services.get(service).tasks(filters={"desired-state": "running"})
    return sum(1 for t in tasks if t["Status"]["State"] == "running"
               and t["Status"].get("ContainerStatus", {}).get("ContainerID") != killed)


class _Load:
    """GET ``url`` over a new connection, one after another, in a thread, for at most 120 s."""

    def __init__(self, url: str, cert: Path) -> None:
        self.url, self.cert = url, cert
        self.results: list[tuple[float, bool]] = []  # (time.monotonic() at the start, answered 200)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                ok = httpx.get(self.url, verify=str(self.cert), timeout=2).status_code == 200
            except httpx.TransportError:
                ok = False
            self.results.append((started, ok))
            if not ok:
                time.sleep(0.02)  # a refused connection returns at once: do not spin

    def failed(self) -> int:
        return sum(1 for _, ok in self.results if not ok)

    def serving_again(self, since: float) -> float | None:
        """Seconds from ``since`` to the first answer after the last failure (0.0: nothing failed)."""
        failures = [at for at, ok in self.results if not ok and at >= since]
        if not failures:
            return 0.0
        after = [at for at, ok in self.results if ok and at > failures[-1]]
        return after[0] - since if after else None


def _https_ok(base: str, cert: Path) -> bool:
    try:
        return httpx.get(f"{base}/health", verify=str(cert), timeout=2).status_code == 200
    except httpx.TransportError:
        return False
