"""``atoll isle ui setup|status|stop`` on swarm, against the real engine (marked ``docker``).

A home of its own configured for swarm (private namespace ``atoll-u<pid><random>``,
free ports) with the embedded stores (a SQLite file, a local directory), which the
service gets bind-mounted. The UI must refuse a request without its token, show
the recorded versions with it, and never carry the token in the service's spec
(argv, env, image); ``stop`` removes the service and its secrets. The fixture then
removes, by exact name, whatever a failure may have left (the ``atoll/isle-ui``
image stays, like the other island images: it is a build cache).
Run under ``flock /tmp/atoll-docker.lock``. (Here, not in tests/ui/, for the engine fixtures of this directory.)
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from support.cli_home import CliHome
from support.docker_cleanup import remove_by_name
from support.processes import free_port

if TYPE_CHECKING:
    from docker import DockerClient

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class Home(CliHome):
    @property
    def service(self) -> str:
        return f"{self.namespace}-isle-ui"


@pytest.fixture
def home(swarm_client: DockerClient, python_image: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    namespace = f"atoll-u{os.getpid()}{uuid.uuid4().hex[:4]}"
    path = tmp_path / "home"
    path.mkdir()
    port = free_port()
    (path / "atoll.yaml").write_text(yaml.safe_dump({
        "container_manager": {"type": "swarm", "namespace": namespace},
        "ui": {"port": port},
        "islands": {"setup_timeout": 120},
        "docker": {"python_image": python_image},
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")} | {"ATOLL_HOME": str(path)}
    monkeypatch.setenv("ATOLL_HOME", str(path))
    try:
        yield Home(path, namespace, port, env)
    finally:
        remove_by_name(swarm_client, namespace, services=[f"{namespace}-isle-ui"])


def test_the_ui_island_on_swarm_serves_the_records_behind_its_token(home: Home, swarm_client: DockerClient) -> None:
    swarm = swarm_client
    home.atoll("model", "new", "--name", "iris-clf")
    for name, accuracy in (("first", 0.97), ("second", 0.91)):
        home.atoll("movers", "new", "--model", "iris-clf", "--name", name, "--skip-upload",
                   "--details", json.dumps({"metrics": {"accuracy": accuracy}}))

    status = home.atoll("isle", "ui", "setup")
    assert status["running"] and status["health"] in ("healthy", "running") and status["service"] == home.service
    base, _, token = status["url"].partition("/?token=")
    assert base == f"http://127.0.0.1:{home.port}" and len(token) >= 32

    assert httpx.get(f"{base}/models", timeout=10).status_code == 401
    page = httpx.get(f"{base}/model/iris-clf", headers={"Authorization": f"Bearer {token}",
                                                       "Accept": "application/json"}, timeout=10)
    assert page.status_code == 200, page.text
    rows = page.json()["versions"]["items"]
    assert {r["name"]: r["metrics"]["accuracy"] for r in rows} == {"first": 0.97, "second": 0.91}
    with httpx.Client(timeout=10, follow_redirects=True) as browser:  # the printed URL logs a browser in
        assert browser.get(status["url"]).status_code == 200
        assert "iris-clf" in browser.get(f"{base}/models").text  # by the cookie alone

    service = swarm.services.get(home.service)
    spec = json.dumps(service.attrs)
    assert token not in spec  # neither argv nor env nor labels
    secrets = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert sorted(s["File"]["Name"] for s in secrets) == ["atoll-ui-stores.json", "atoll-ui-token.json"]
    image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
    assert token not in json.dumps(swarm.images.get(image).attrs)

    again = home.atoll("isle", "ui", "status")
    assert again["running"] and again["url"] == status["url"]
    assert "already running" in home.atoll("isle", "ui", "setup")["message"]

    stopped = home.atoll("isle", "ui", "stop")
    assert not stopped["running"]
    assert not swarm.services.list(filters={"name": home.service})
    assert not [s for s in swarm.secrets.list() if s.name.startswith(home.service)]
    assert home.atoll("isle", "ui", "status")["health"] == "stopped"
