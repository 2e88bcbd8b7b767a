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

    # The swarm restarts a SIGKILLed router task (its restart policy), still over TLS.
    containers = swarm_client.containers.list(filters={"label": f"com.docker.swarm.service.name={service_name}"})
    assert len(containers) == 1
    user = containers[0].attrs["Config"]["User"]
    assert user and user.split(":")[0] != "0", user  # never root, even when Atoll runs as root
    assert containers[0].exec_run(["id", "-u"]).output.strip() != b"0"
    containers[0].kill()
    killed = time.monotonic()
    containers[0].wait(timeout=30)  # gone: what answers next is the new task
    wait_for(lambda: _https_ok(base, cert), timeout=120, every=0.1)
    print(f"\n[fault] swarm router task SIGKILLed: serving again {time.monotonic() - killed:.2f} s after the kill")

    stopped = swarm_home.atoll("isle", "router", "stop")
    assert not stopped["running"]
    assert not swarm_client.services.list(filters={"name": service_name})
    assert not [s for s in swarm_client.secrets.list() if s.name.startswith(service_name)]


def _https_ok(base: str, cert: Path) -> bool:
    try:
        return httpx.get(f"{base}/health", verify=str(cert), timeout=2).status_code == 200
    except httpx.TransportError:
        return False
