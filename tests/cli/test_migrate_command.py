"""``atoll migrate`` as a user types it (SQLite + local files to another SQLite + directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _installation(atoll: Any, tmp_path: Path) -> None:
    atoll.ok("model", "new", "--name", "iris", "--model-file", '{"name": "clf.pkl", "required": true}')
    src = tmp_path / "v1"
    src.mkdir()
    (src / "clf.pkl").write_bytes(b"model")
    atoll.ok("movers", "new", "--model", "iris", "--name", "v1", "--path", str(src),
             "--details", '{"acc": 0.9}')
    atoll.ok("movers", "new", "--model", "iris", "--name", "v2", "--path", str(src), "--lightweight")


def test_migrate_copies_verifies_and_refuses_to_copy_twice(atoll: Any, tmp_path: Path) -> None:
    _installation(atoll, tmp_path)
    target_db = f"sqlite:///{tmp_path / 'team' / 'atoll.db'}"
    files = json.dumps({"type": "local", "path": str(tmp_path / "team" / "files")})
    report = atoll.js("migrate", "--to-metadata", target_db, "--to-files", files)
    assert report["verified"] is True
    assert report["records"]["model"] == 1 and report["records"]["movers"] == 2
    assert report["files"] == 2  # v1's file in the file store, v2's blob in the database
    assert sorted(p.name for p in (tmp_path / "team" / "files").rglob("*") if p.is_file()) == ["clf.pkl"]

    line = atoll.fails(2, "migrate", "--to-metadata", target_db, "--to-files", files)
    assert "is not empty (1 model, 2 movers)" in line and "--force" in line
    assert atoll.js("migrate", "--to-metadata", target_db, "--to-files", files, "--force")["verified"] is True

    env = {"ATOLL_METADATA__URL": target_db, "ATOLL_FILE_STORE__PATH": str(tmp_path / "team" / "files")}
    moved = atoll.js("movers", "list", "--filter", '{"details.acc": {"$gt": 0.5}}', env=env)
    assert [v["name"] for v in moved] == ["v1"]


def test_migrate_usage_errors_are_one_line(atoll: Any) -> None:
    assert "say where to" in atoll.fails(2, "migrate")
    assert "--to-files: expected a mapping" in atoll.fails(2, "migrate", "--to-files", "just-text")
    assert "unknown file store 'ftp'" in atoll.fails(2, "migrate", "--to-files", '{"type": "ftp"}')
