"""``movers list --limit/--sort/--desc`` as a user types them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_movers_list_sorted_newest_first_and_limited(atoll: Any, tmp_path: Path) -> None:
    atoll.ok("model", "new", "--name", "iris")
    src = tmp_path / "v"
    src.mkdir()
    (src / "clf.pkl").write_bytes(b"model")
    for name, acc in (("v1", 0.9), ("v2", 0.5), ("v3", 0.7)):
        atoll.ok(
            "movers",
            "new",
            "--model",
            "iris",
            "--name",
            name,
            "--path",
            str(src),
            "--details",
            f'{{"metrics": {{"acc": {acc}}}}}',
        )

    def names(*options: str) -> list[str]:
        return [v["name"] for v in atoll.js("movers", "list", "--model", "iris", *options)]

    assert names() == ["v1", "v2", "v3"]
    assert names("--sort", "created_at", "--desc", "--limit", "2") == ["v3", "v2"]
    assert names("--sort", "details.metrics.acc") == ["v2", "v3", "v1"]
    assert names("--sort", "details.metrics.acc", "--desc", "--limit", "1") == ["v1"]
    assert "--limit" in atoll.fails(2, "movers", "list", "--limit", "0")
    assert "sort field" in atoll.fails(2, "movers", "list", "--sort", "details..acc")
