"""Island settings that need no Docker engine: refusals, names, and how stores find the islands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atoll.api.context import AtollContext
from atoll.api.get_me_started import islands_needed
from atoll.backends import file_store_settings, metadata_url, task_store_config
from atoll.config import Config
from atoll.credentials import home_chest
from atoll.errors import ConfigError, UsageError
from atoll.islands.db import DbIsland
from atoll.islands.files import FilesIsland
from atoll.islands.registry import RegistryIsland, registry_port
from atoll.testing.memory import MemoryMetadataStore


def _config(**sections: Any) -> Config:
    return Config.model_validate(sections)


class _NoDocker:
    """A stand-in client: any use means the island touched Docker before refusing."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the island used the Docker client ({name}) before refusing")


@pytest.mark.parametrize(
    ("island", "sections", "words"),
    [
        (DbIsland, {"metadata": {"url": "postgresql://u:pw@db.example.com/atoll"}}, "metadata.url"),
        (FilesIsland, {"file_store": {"type": "s3", "url": "https://s3.example.com"}}, "file_store.type = s3"),
        (FilesIsland, {"file_store": {"type": "nexus", "url": "https://nexus.example.com"}}, "nexus"),
        (RegistryIsland, {"docker": {"target_registry": "registry.example.com:5000"}}, "target_registry"),
    ],
)
def test_setup_refuses_an_island_configured_as_foreign(
    home: Path, island: type, sections: dict[str, Any], words: str
) -> None:
    with pytest.raises(UsageError, match="configured as foreign") as info:
        island(_config(**sections), client=_NoDocker()).setup()
    assert words in str(info.value)
    assert "pw@" not in str(info.value)  # the foreign URL's password is masked


def test_embedded_stores_do_not_count_as_foreign(home: Path) -> None:
    DbIsland(_config()).check_native()
    FilesIsland(_config()).check_native()
    RegistryIsland(_config()).check_native()


def test_names_follow_the_namespace_and_the_image_follows_the_recipe(home: Path) -> None:
    island = DbIsland(_config(container_manager={"namespace": "team1"}))
    assert (island.service_name, island.volume_name, island.network_name) == (
        "team1-isle-db", "team1-isle-db-data", "team1")
    assert island.network_address == "team1-isle-db:5432"
    other_base = DbIsland(_config(docker={"python_image": "python:3.12-slim"}))
    assert island.image.startswith("atoll/isle-db:") and island.image != other_base.image


def test_a_running_island_is_re_created_only_for_another_profile(home: Path) -> None:
    from atoll.config import ResourceProfile
    from atoll.islands.swarm import LABEL_PROFILE

    island = DbIsland(_config())

    class Service:
        def __init__(self, labels: dict[str, str]) -> None:
            self.attrs = {"Spec": {"Labels": labels, "EndpointSpec": {"Ports": [{"PublishedPort": island.port}]},
                                   "TaskTemplate": {"ContainerSpec": {"Image": island.image}}}}

    plain = Service({})
    assert island._runs(plain, island.image)  # no --rp: whatever it runs with stays
    island.profile_name, island.profile = "small", ResourceProfile(memory_limit=512)
    assert not island._runs(plain, island.image)
    with_small = Service({LABEL_PROFILE: island._profile_label()})
    assert island._runs(with_small, island.image)
    island.profile = ResourceProfile(memory_limit=1024)  # same name, other values
    assert not island._runs(with_small, island.image)


def test_registry_port_comes_from_a_loopback_target_registry(home: Path) -> None:
    assert registry_port(_config()) == 30500
    assert registry_port(_config(islands={"registry_port": 31000})) == 31000
    assert registry_port(_config(docker={"target_registry": "127.0.0.1:5000"})) == 5000
    assert registry_port(_config(docker={"target_registry": "localhost:5001/team"})) == 5001
    assert RegistryIsland(_config(docker={"target_registry": "127.0.0.1:5000"})).url == "127.0.0.1:5000"


def test_native_stores_use_the_island_chests_of_the_home_store(home: Path) -> None:
    config = _config(metadata={"native": True}, file_store={"native": True},
                     islands={"db_port": 31432, "files_port": 31900})
    db_password = home_chest(config, "atoll-db", "atoll", lambda: "pw-db_1", "db")[1]
    access, secret = home_chest(config, "atoll-files", "akey", lambda: "sk-files", "files")
    assert (db_password, access, secret) == ("pw-db_1", "akey", "sk-files")
    # A second call keeps the first credentials (generated once).
    assert home_chest(config, "atoll-db", "atoll", lambda: "other", "db")[1] == "pw-db_1"

    assert metadata_url(config) == "postgresql://atoll:pw-db_1@127.0.0.1:31432/atoll"
    type_, options = file_store_settings(config, MemoryMetadataStore())
    assert (type_, options["url"], options["user"], options["password"]) == (
        "s3", "http://127.0.0.1:31900", "akey", "sk-files")

    inside = task_store_config(config, MemoryMetadataStore(), in_network=True)
    assert inside["metadata"]["url"] == "postgresql://atoll:pw-db_1@atoll-isle-db:5432/atoll"
    assert inside["file_store"]["options"]["url"] == "http://atoll-isle-files:9000"
    outside = task_store_config(config, MemoryMetadataStore())
    assert outside["metadata"]["url"] == "postgresql://atoll:pw-db_1@127.0.0.1:31432/atoll"


def test_native_and_an_explicit_url_exclude_each_other(home: Path) -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        metadata_url(_config(metadata={"native": True, "url": "postgresql://h/db"}))


def test_chests_are_stored_encrypted(home: Path) -> None:
    from atoll.domain.records import TreasureChest
    from atoll.metadata.base import get_metadata_store

    config = _config()
    home_chest(config, "atoll-db", "atoll", lambda: "plain-text-password", "db")
    store = get_metadata_store(f"sqlite:///{home / 'atoll.db'}")
    try:
        chest = store.get(TreasureChest, "atoll-db")
    finally:
        store.close()
    assert chest.secret and "plain-text-password" not in chest.secret
    assert "plain-text-password" not in (home / "atoll.db").read_bytes().decode(errors="replace")


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ({}, ["router"]),
        ({"container_manager": {"type": "swarm"}, "metadata": {"native": True}}, ["db", "router"]),
        ({"file_store": {"native": True}, "docker": {"target_registry": "127.0.0.1:5000"}},
         ["files", "registry", "router"]),
        ({"docker": {"target_registry": "registry.example.com"}}, ["router"]),
    ],
)
def test_get_me_started_picks_the_configured_islands_stores_before_the_router(
    home: Path, sections: dict[str, Any], expected: list[str]
) -> None:
    assert islands_needed(AtollContext(_config(**sections), cwd=home.parent)) == expected
