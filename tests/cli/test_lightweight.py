"""``--lightweight``: small files kept in the metadata database, as a user drives it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_lightweight_version_lives_in_the_database_and_goes_with_its_record(atoll: Any, tmp_path: Path) -> None:
    atoll.ok("model", "new", "--name", "iris", "--model-file", '{"name": "clf.pkl", "required": true}')
    src = tmp_path / "v1"
    src.mkdir()
    (src / "clf.pkl").write_bytes(b"tiny model" * 100)
    version = atoll.js("movers", "new", "--model", "iris", "--name", "v1", "--path", str(src), "--lightweight")
    assert version["store_key"].startswith("lightweight/versions/iris/v1/")
    assert _files_under(atoll.home / "files") == []  # nothing went to the file store
    with sqlite3.connect(atoll.home / "atoll.db") as db:
        (data,) = db.execute("SELECT data FROM blobs WHERE key LIKE 'lightweight/versions/iris/v1/%'").fetchone()
    assert data == b"tiny model" * 100
    assert atoll.js("movers", "list", "--filter", '{"store_key": {"$regex": "^lightweight/"}}')[0]["name"] == "v1"

    atoll.ok("movers", "rm", "--model", "iris", "--name", "v1")
    with sqlite3.connect(atoll.home / "atoll.db") as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)


def test_a_file_over_the_cap_is_refused_and_nothing_is_kept(atoll: Any, tmp_path: Path) -> None:
    atoll.ok("model", "new", "--name", "iris", "--data-file", '{"name": "big.csv", "max_mb": 64}')
    src = tmp_path / "d1"
    src.mkdir()
    (src / "big.csv").write_bytes(b"x" * 300_000)
    line = atoll.fails(
        2, "ds", "new", "--model", "iris", "--name", "d1", "--path", str(src), "--lightweight",
        env={"ATOLL_METADATA__LIGHTWEIGHT_MAX_MB": "0.25"},
    )
    assert "big.csv is 0.29 MB, over the lightweight limit of 0.25 MB (metadata.lightweight_max_mb)" in line
    assert atoll.js("ds", "list") == []
    with sqlite3.connect(atoll.home / "atoll.db") as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)
    atoll.ok("ds", "new", "--model", "iris", "--name", "d1", "--path", str(src))  # the file store takes it
