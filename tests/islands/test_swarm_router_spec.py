"""The swarm router service's spec without an engine: tasks, publishing, updates, how the keys reach it.

Host staging (a store embedded: the default) bind-mounts the keys directory; fetch
staging hands both files over as Docker secrets named after their content. The
real engine runs the same in tests/docker (test_swarm_router_tls.py, test_swarm.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atoll.config import Config
from atoll.errors import ConfigError
from atoll.islands import get_island
from atoll.islands.router_keys import KEYS_MOUNT, NO_REPLICA_SECRETS, keys_delivery
from atoll.islands.router_swarm import SwarmRouterIsland, refresh_swarm_router


def _island(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **sections: Any) -> SwarmRouterIsland:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    manager = {"type": "swarm", "namespace": "unit", **sections.pop("container_manager", {})}
    found = get_island(Config(container_manager=manager, **sections), "router")
    assert isinstance(found, SwarmRouterIsland)
    monkeypatch.setattr(found, "ingress_missing", lambda: None)  # an engine with the ingress mesh
    return found


def test_host_staging_mounts_the_keys_directory_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    island = _island(tmp_path, monkeypatch)
    assert keys_delivery(island.config) == "mount"
    assert island.command()[-4:] == ["--keys-file", f"{KEYS_MOUNT}/keys.json",
                                     "--replica-secrets", f"{KEYS_MOUNT}/replica-secrets.json"]
    assert island.bind_mounts() == [(KEYS_MOUNT, str(island.config.router_keys_file.parent))]
    assert island._wanted_secrets() == {}


def test_fetch_staging_hands_both_files_over_as_secrets_named_after_their_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    island = _island(tmp_path, monkeypatch, container_manager={"staging": "fetch"})
    assert keys_delivery(island.config) == "secrets"
    assert island.bind_mounts() == []
    assert island.command()[-4:] == ["--keys-file", "/run/secrets/router-keys.json",
                                     "--replica-secrets", "/run/secrets/router-replica-secrets.json"]
    with pytest.raises(ConfigError, match="keys file .* is missing"):
        island._wanted_secrets()  # auth on: the router's setup writes the file first

    keys = island.config.router_keys_file
    keys.parent.mkdir(parents=True)
    keys.write_bytes(b'{"version": 1, "keys": []}')
    first = island._wanted_secrets()
    assert set(first) == {"router-keys.json", "router-replica-secrets.json"}
    name, content = first["router-keys.json"]
    assert name.startswith("unit-router-keys-") and len(name) == len("unit-router-keys-") + 12
    assert content == keys.read_bytes()
    assert first["router-replica-secrets.json"][1] == NO_REPLICA_SECRETS  # before the first `depl new`
    assert not any(content.decode() in part for part in island.command())  # paths only on the command line

    keys.write_bytes(b'{"version": 1, "keys": [{"name": "k"}]}')  # `atoll key new` rewrote it
    second = island._wanted_secrets()
    assert second["router-keys.json"][0] != name  # a new secret to roll onto
    assert second["router-replica-secrets.json"] == first["router-replica-secrets.json"]


def test_fetch_is_the_default_without_embedded_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    island = _island(tmp_path, monkeypatch, metadata={"native": True}, file_store={"native": True})
    assert keys_delivery(island.config) == "secrets"
    assert keys_delivery(_island(tmp_path, monkeypatch).config) == "mount"


@pytest.mark.parametrize(("replicas", "publish", "order"), [(2, "ingress", "start-first"), (1, "host", "stop-first")])
def test_replicas_behind_the_published_port_and_how_an_update_rolls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replicas: int, publish: str, order: str
) -> None:
    island = _island(tmp_path, monkeypatch, router={"replicas": replicas, "port": 30555})
    assert island.replicas() == replicas
    ports = island.endpoint_spec()["Ports"]
    assert [(p["PublishedPort"], p["TargetPort"], p["PublishMode"]) for p in ports] == [(30555, 8080, publish)]
    assert island.endpoint_spec()["Mode"] == ("vip" if publish == "ingress" else "dnsrr")
    update = island.update_config()
    assert (update["Order"], update["FailureAction"]) == (order, "rollback")


def test_without_the_ingress_mesh_one_task_in_host_mode_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    island = _island(tmp_path, monkeypatch, router={"replicas": 2})
    why = "the swarm's ingress mesh, which this engine lacks"
    monkeypatch.setattr(island, "ingress_missing", lambda: why)
    monkeypatch.setattr("atoll.islands.router_swarm.ingress_check", lambda *args: why)  # as remembered
    assert island.replicas() == 1
    assert island.endpoint_spec()["Ports"][0]["PublishMode"] == "host"
    assert island.update_config()["Order"] == "stop-first"
    _fake_tasks(island, monkeypatch, ["running"])
    assert "(1/1 router tasks; router.replicas: 2 needs the swarm's ingress mesh" in island.status().message


class _Engine:
    """Just enough of a Docker client for the ingress check."""

    def __init__(self, exit_status: int) -> None:
        self.exit_status, self.runs = exit_status, 0
        self.containers = self

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"Cluster": {"ID": "c1"}}}

    def run(self, image: str, command: list[str], **options: Any) -> bytes:
        from docker.errors import ContainerError

        self.runs += 1
        assert options["network_mode"] == "host" and options["remove"] is True
        if self.exit_status:
            raise ContainerError(None, self.exit_status, command, image, b"")
        return b""


@pytest.mark.parametrize(("exit_status", "missing"), [(0, None), (3, "no IPVS in its kernel")])
def test_the_ingress_check_runs_once_per_swarm(tmp_path: Path, exit_status: int, missing: str | None) -> None:
    from atoll.islands.router_keys import ingress_check

    engine = _Engine(exit_status)
    for _ in range(2):
        found = ingress_check(engine, Config(), tmp_path, lambda: "sha256:base")  # type: ignore[arg-type]
        assert found is None if missing is None else missing in str(found)
    assert engine.runs == 1  # remembered in run/swarm-ingress.json


class _Service:
    def __init__(self, replicas: int) -> None:
        self.attrs = {"Spec": {"Mode": {"Replicated": {"Replicas": replicas}}}}


def _fake_tasks(island: SwarmRouterIsland, monkeypatch: pytest.MonkeyPatch, states: list[str]) -> None:
    tasks = [{"DesiredState": "running", "Status": {"State": state}} for state in states]
    tasks.append({"DesiredState": "shutdown", "Status": {"State": "failed"}})  # the killed one, replaced
    monkeypatch.setattr(island, "_service", lambda: _Service(island.replicas()))
    monkeypatch.setattr(island, "_tasks", lambda: tasks)
    monkeypatch.setattr(island, "probe", lambda: True)


def test_status_counts_the_router_tasks_and_says_when_one_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    island = _island(tmp_path, monkeypatch)
    _fake_tasks(island, monkeypatch, ["running", "running"])
    status = island.status()
    assert (status.running, status.health) == (True, "healthy") and "(2/2 router tasks)" in status.message
    _fake_tasks(island, monkeypatch, ["running", "starting"])
    status = island.status()
    assert (status.running, status.health) == (True, "degraded")
    assert "1/2 router tasks: 1 down" in status.message


def test_no_refresh_under_host_staging_or_off_swarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # any engine call would fail loudly
    assert refresh_swarm_router(Config(container_manager={"type": "swarm"})) is False
    assert refresh_swarm_router(Config(container_manager={"type": "local", "staging": "fetch"})) is False


def test_depl_info_keeps_the_router_url_when_one_router_task_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from atoll.api import deployments
    from atoll.islands import IslandStatus

    degraded = "the router serves at http://127.0.0.1:30080 with 1/2 router tasks: 1 down"
    monkeypatch.setattr(deployments, "available", lambda ctx, name: True)
    monkeypatch.setattr(deployments, "island_status",
                        lambda ctx, name: IslandStatus("router", True, health="degraded", message=degraded))
    assert deployments._router_state(None) == (None, degraded)  # type: ignore[arg-type]
    assert deployments.router_down(None) is None  # type: ignore[arg-type]
    monkeypatch.setattr(deployments, "island_status",
                        lambda ctx, name: IslandStatus("router", False, health="down", message="down (0/2)"))
    assert deployments._router_state(None) == ("down (0/2)", None)  # type: ignore[arg-type]
