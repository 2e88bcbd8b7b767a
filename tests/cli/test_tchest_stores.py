"""Treasure chests live in ATOLL_HOME whatever atoll.yaml names: made before or after the config names them.

Driven through the real ``atoll`` command against an S3 server that needs the
chest's keys and (when installed) a PostgreSQL server that needs the chest's password.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from support.postgres import real_postgres
from support.s3 import running_s3

pytest.importorskip("boto3")

_UNREACHABLE = {  # names chests that do not exist, and stores nobody answers at
    "metadata": {"url": "postgresql://127.0.0.1:9/atoll", "tchest": "team-db"},
    "file_store": {"type": "s3", "url": "http://127.0.0.1:9", "bucket": "atoll", "tchest": "team-s3"},
}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with running_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _write_config(atoll, config: dict) -> None:
    (atoll.cwd / "atoll.yaml").write_text(yaml.safe_dump(config))


def test_tchest_commands_work_whatever_the_config_names(atoll) -> None:
    _write_config(atoll, _UNREACHABLE)
    # A command that needs the metadata store: one line naming the key and the fix.
    line = atoll.fails(2, "model", "list")
    assert "metadata.tchest" in line and "'team-db' does not exist" in line
    assert "atoll tchest new --name team-db" in line
    # tchest commands never open the configured stores.
    assert atoll.js("tchest", "list") == []
    atoll.ok("tchest", "new", "--name", "team-s3", "--user", "AKIA1", "--password-stdin", input="s3cr3t")
    atoll.ok("tchest", "new", "--name", "team-db", "--user", "atoll", "--password-stdin", input="pw")
    assert atoll.js("tchest", "info", "--name", "team-db")["user"] == "atoll"
    atoll.ok("tchest", "update", "--name", "team-db", "--desc", "database", "--password-stdin", input="pw2")
    assert sorted(c["name"] for c in atoll.js("tchest", "list")) == ["team-db", "team-s3"]
    assert (atoll.home / "atoll.db").exists()  # the chest store
    # The chest is found now: the error moves on to the unreachable server.
    line = atoll.fails(1, "model", "list")
    assert "127.0.0.1:9" in line and "tchest" not in line
    assert "s3cr3t" not in atoll("tchest", "list", "--expand").out
    atoll.ok("-s", "tchest", "rm", "--name", "team-db")
    assert "metadata.tchest" in atoll.fails(2, "model", "list")


def test_missing_file_store_chest_fails_only_the_commands_that_store_files(atoll, tmp_path: Path) -> None:
    _write_config(atoll, {"file_store": _UNREACHABLE["file_store"]})  # the embedded metadata store
    atoll.ok("model", "new", "--name", "iris")
    assert [m["name"] for m in atoll.js("model", "list")] == ["iris"]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("1\n")
    line = atoll.fails(2, "ds", "new", "--model", "iris", "--name", "d1", "--path", str(tmp_path / "d"))
    assert "file_store.tchest" in line and "atoll tchest new --name team-s3" in line


def _without_credentials(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), parts.username or "", parts.password or ""


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """One PostgreSQL server for both orders (each uses its own names in it)."""
    with real_postgres() as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("order", ["config-first", "chests-first"])
def test_credentials_in_either_order(atoll, tmp_path: Path, s3_server: dict[str, str], pg_server: str,
                                     order: str) -> None:
    """A PostgreSQL metadata store and an S3 file store, both needing a chest's credentials."""
    url, user, password = _without_credentials(pg_server)
    assert password  # the server needs one
    config = {"metadata": {"url": url, "tchest": "team-db"},
              "file_store": {"type": "s3", "url": s3_server["url"], "bucket": f"b-{order}", "tchest": "team-s3"}}
    chests = [("team-s3", s3_server["access_key"], s3_server["secret_key"]), ("team-db", user, password)]
    if order == "config-first":
        _write_config(atoll, config)
    for name, user, secret in chests:
        atoll.ok("tchest", "new", "--name", name, "--user", user, "--password-stdin", input=secret)
    if order == "chests-first":
        _write_config(atoll, config)

    model = f"iris-{order}"  # one server for both orders
    atoll.ok("model", "new", "--name", model)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_text("1,2\n")
    atoll.ok("ds", "new", "--model", model, "--name", "d1", "--path", str(tmp_path / "d"))
    assert [f["name"] for f in atoll.js("ds", "info", "--model", model, "--name", "d1")["files"]] == ["x.csv"]
    assert sorted(c["name"] for c in atoll.js("tchest", "list")) == ["team-db", "team-s3"]
    assert atoll.js("tchest", "import") == []  # nothing of the chests went to the configured store
