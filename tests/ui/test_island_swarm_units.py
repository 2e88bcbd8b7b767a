"""The swarm ui island's spec without an engine: registry entry, command, secrets and mounts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from atoll.config import Config
from atoll.islands import get_island
from atoll.islands.ui import STORES_SECRET, TOKEN_SECRET, SwarmUiIsland, ui_requirements


@pytest.fixture
def island(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SwarmUiIsland:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    config = Config(container_manager={"type": "swarm", "namespace": "unit"}, ui={"port": 30191},
                    metadata={"url": f"sqlite:///{tmp_path / 'db' / 'atoll.db'}"},
                    file_store={"type": "local", "path": str(tmp_path / "files")})
    found = get_island(config, "ui")
    assert isinstance(found, SwarmUiIsland)
    return found


def test_the_token_and_the_stores_travel_as_secrets_only(island: SwarmUiIsland, tmp_path: Path) -> None:
    secrets = island.secrets()
    token = orjson.loads(secrets[TOKEN_SECRET])["token"]
    assert token == island.token() and len(token) >= 32 and island.token() == token  # kept: stable across calls
    assert not any(token in part for part in island.command())
    stores = orjson.loads(secrets[STORES_SECRET])
    assert stores["metadata"]["url"] == "sqlite:////atoll/store/db/atoll.db"
    assert stores["file_store"] == {"type": "local", "options": {"root": "/atoll/store/files"}, "digest": "blake3"}
    assert island.command()[-4:] == ["--state-file", f"/run/secrets/{TOKEN_SECRET}",
                                     "--store-config", f"/run/secrets/{STORES_SECRET}"]
    assert island.service_name == "unit-isle-ui" and island.url == "http://127.0.0.1:30191"


def test_embedded_stores_are_bind_mounted_and_the_chest_key_masked(island: SwarmUiIsland, tmp_path: Path) -> None:
    (tmp_path / "db").mkdir(exist_ok=True)
    (tmp_path / "db" / "secret.key").write_bytes(b"not for the ui")
    writable = dict(island.writable_bind_mounts())
    assert writable == {"/atoll/store/db": str(tmp_path / "db"), "/atoll/store/files": str(tmp_path / "files")}
    masked = dict(island.bind_mounts())
    assert list(masked) == ["/atoll/store/db/secret.key"] and Path(masked["/atoll/store/db/secret.key"]).stat().st_size == 0


def test_the_image_adds_the_ui_extra() -> None:
    assert any(r.startswith("starlette") for r in ui_requirements())
