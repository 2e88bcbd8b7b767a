"""A user's session with the ``atoll`` CLI, error cases included, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from atoll.domain.names import is_valid_name

CLF = '{"name": "clf.pkl", "required": true, "max_mb": 0.01}'
DATA = '{"name": "data.csv", "required": true}'
SECRET = "Sup3r-s3cret-Pa55word"


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def make_dir(path: Path, files: dict[str, bytes]) -> str:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return str(path)


def test_version_help_and_config(atoll) -> None:
    assert atoll.ok("version").out.strip() == "atoll 0.1.0"
    assert atoll.js("version") == {"version": "0.1.0"}
    assert "model" in atoll.ok("--help").out
    assert "--model-file" in atoll.ok("model", "new", "--help").out

    line = atoll.fails(2, "--bogus", "version")
    assert "--bogus" in line
    assert "--nope" in atoll.fails(2, "model", "list", "--nope")
    assert "--name" in atoll.fails(2, "model", "info")  # missing required option
    atoll.fails(2, "-o", "xml", "version")

    shown = atoll.js("config", "show", env={"ATOLL_METADATA__URL": "postgresql://bob:hunter2@db/atoll"})
    assert shown["metadata"]["url"] == "postgresql://bob:***@db/atoll"
    assert "hunter2" not in json.dumps(shown)
    assert shown["router"]["port"] == 30080
    assert yaml.safe_load(atoll.ok("-o", "yaml", "config", "show").out)["file_store"]["type"] == "local"
    assert "unknown_key" in atoll.fails(2, "config", "show", env={"ATOLL_ROUTER__UNKNOWN_KEY": "1"})


def test_pretty_json_is_one_indented_document(atoll) -> None:
    atoll.ok("model", "new", "--name", "iris")
    out = atoll.ok("-p", "-o", "json", "model", "info", "--name", "iris").out
    assert out.startswith("{\n  ") and json.loads(out)["name"] == "iris"


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_store_scenario(atoll, tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    if store == "postgres":
        atoll.env["ATOLL_METADATA__URL"] = request.getfixturevalue("postgres_url")
    files_root = atoll.home / "files"

    # Models: bad input first.
    assert "invalid model name 'Iris'" in atoll.fails(2, "model", "new", "--name", "Iris")
    assert "--model-file" in atoll.fails(2, "model", "new", "--name", "iris", "--model-file", "{bad json")
    assert "max_mb" in atoll.fails(2, "model", "new", "--name", "iris", "--model-file", '{"name": "a", "max_mb": 0}')
    model = atoll.js("model", "new", "--name", "iris", "--desc", "flowers", "--model-file", CLF, "--data-file", DATA,
                     "--data-file", '{"name": "notes.txt"}')
    assert model["name"] == "iris" and model["revision"] == 1
    assert [f["name"] for f in model["data_files"]] == ["data.csv", "notes.txt"]
    assert "already exists" in atoll.fails(1, "model", "new", "--name", "iris")
    assert "nope" in atoll.fails(1, "model", "info", "--name", "nope")
    assert "nope" in atoll.fails(1, "model", "rm", "--name", "nope")
    updated = atoll.js("model", "update", "--name", "iris", "--no-data-files")
    assert updated["revision"] == 2 and updated["desc"] == "flowers" and updated["data_files"] == []
    updated = atoll.js("model", "update", "--name", "iris", "--data-file", DATA, "--data-file", '{"name": "notes.txt"}')
    assert updated["revision"] == 3 and len(updated["model_files"]) == 1
    atoll.js("model", "new", "--name", "wine")
    assert [m["name"] for m in atoll.js("model", "list")] == ["iris", "wine"]
    assert [m["name"] for m in atoll.js("model", "list", "--filter", '{"desc": "flowers"}')] == ["iris"]
    assert "--filter" in atoll.fails(2, "model", "list", "--filter", "[1, 2")
    atoll.fails(2, "model", "list", "--filter", '{"desc": {"$bogus": 1}}')
    table = atoll.ok("model", "list").out
    assert "iris" in table and "wine" in table and "flowers" in table

    # Datasets.
    good = make_dir(tmp_path / "ds-good", {"data.csv": b"a,b\n1,2\n", "notes.txt": b"hi"})
    missing = make_dir(tmp_path / "ds-missing", {"notes.txt": b"hi"})
    assert "data.csv" in atoll.fails(2, "ds", "new", "--model", "iris", "--name", "d0", "--path", missing)
    assert "--details" in atoll.fails(2, "ds", "new", "--model", "iris", "--path", good, "--details", "{x")
    assert "invalid dataset name" in atoll.fails(2, "ds", "new", "--model", "iris", "--name", "D_1", "--path", good)
    random_ds = atoll.js("ds", "new", "--model", "iris", "--path", good)
    assert is_valid_name(random_ds["name"]) and random_ds["stored"]
    d1 = atoll.js("ds", "new", "--model", "iris", "--name", "d1", "--path", good, "--details", '{"rows": 1}',
                  "--compress")
    assert d1["compressed"] and sorted(f["name"] for f in d1["files"]) == ["data.csv", "notes.txt"]
    assert "already exists" in atoll.fails(1, "ds", "new", "--model", "iris", "--name", "d1", "--path", good)
    assert atoll.js("ds", "update", "--model", "iris", "--name", "d1", "--details", '{"rows": 2}')["details"] == {
        "rows": 2
    }
    assert atoll.js("ds", "info", "--model", "iris", "--name", "d1")["revision"] == 2
    assert len(atoll.js("ds", "list", "--model", "iris")) == 2
    assert [d["name"] for d in atoll.js("ds", "list", "--filter", '{"details.rows": {"$gte": 2}}')] == ["d1"]
    assert "d9" in atoll.fails(1, "ds", "info", "--model", "iris", "--name", "d9")

    # Model versions.
    big = make_dir(tmp_path / "mv-big", {"clf.pkl": b"\0" * 20_000})
    small = make_dir(tmp_path / "mv-small", {"clf.pkl": b"model"})
    assert "clf.pkl" in atoll.fails(2, "movers", "new", "--model", "iris", "--name", "v1", "--path", big)
    assert "iris:v0" in atoll.fails(1, "movers", "new", "--model", "iris", "--path", small, "--pretrained", "iris:v0")
    v1 = atoll.js("movers", "new", "--model", "iris", "--name", "v1", "--path", small, "--dataset", "d1",
                  "--details", '{"metrics": {"acc": 0.95}}')
    assert v1["dataset"]["name"] == "d1" and v1["dataset"]["details"] == {"rows": 2}
    atoll.js("movers", "new", "--model", "iris", "--name", "v2", "--path", small, "--pretrained", "iris:v1",
             "--details", '{"metrics": {"acc": 0.5}}')
    best = atoll.js("movers", "list", "--model", "iris", "--filter", '{"details.metrics.acc": {"$gt": 0.9}}')
    assert [v["name"] for v in best] == ["v1"]
    assert best[0]["dataset"] == "iris:d1"  # snapshot collapsed without --expand
    expanded = atoll.js("movers", "list", "--model", "iris", "--dataset", "d1", "--expand")
    assert expanded[0]["dataset"]["name"] == "d1" and expanded[0]["dataset"]["model"] == "iris"
    assert "d1" in atoll.ok("movers", "list", "--model", "iris", "--expand").out
    assert atoll.js("movers", "update", "--model", "iris", "--name", "v2", "--details", "{}")["pretrained"] == "iris:v1"
    assert atoll.js("movers", "info", "--model", "iris", "--name", "v2")["revision"] == 2
    assert "t1" in atoll.fails(1, "movers", "new", "--model", "iris", "--path", small, "--train", "t1",
                               "--proj", "demo")
    atoll.ok("movers", "rm", "--model", "iris", "--name", "v2")
    assert "v2" in atoll.fails(1, "movers", "info", "--model", "iris", "--name", "v2")

    # Projects and project resolution.
    home = tmp_path / "proj-home"
    home.mkdir()
    assert "iris2" in atoll.fails(1, "proj", "new", "--name", "demo", "--model", "iris2")
    proj = atoll.js("proj", "new", "--name", "demo", "--model", "iris", "--home-dir", str(home),
                    "--git-repo", "https://example.invalid/demo.git", "--docker-repo", "registry.local/demo")
    assert proj["models"] == ["iris"] and proj["home_dir"] == str(home.resolve())
    assert "no project given" in atoll.fails(2, "proj", "info")
    assert atoll.js("proj", "info", cwd=home)["name"] == "demo"
    assert atoll.js("proj", "info", env={"ATOLL_PROJECT__WORKING_PROJECT": "demo"})["name"] == "demo"
    assert atoll.js("proj", "update", "--name", "demo", "--desc", "d")["models"] == ["iris"]
    assert [p["name"] for p in atoll.js("proj", "list", "--model", "iris")] == ["demo"]
    assert atoll.js("proj", "list", "--model", "wine") == []
    assert atoll.js("bvers", "list", "--proj", "demo") == []
    assert atoll.js("bvers", "list", cwd=home) == []
    assert "latest" in atoll.fails(1, "bvers", "info", "--tag", "latest", "--proj", "demo")
    assert "latest" in atoll.fails(1, "bvers", "rm", "--tag", "latest", "--proj", "demo")

    # A model used by a project: refused (nobody to confirm), then cascaded with -s.
    assert len(stored_files(files_root)) >= 3
    line = atoll.fails(1, "model", "rm", "--name", "iris")
    assert "demo" in line and "--skip-questions" in line
    assert atoll.js("model", "info", "--name", "iris")["name"] == "iris"
    assert len(atoll.js("ds", "list", "--model", "iris")) == 2
    assert "v1" in atoll.fails(1, "ds", "rm", "--model", "iris", "--name", "d1")
    removed = atoll.js("-s", "model", "rm", "--name", "iris")
    assert removed["projects"] == ["demo"] and sorted(removed["datasets"]) == sorted(["d1", random_ds["name"]])
    assert stored_files(files_root) == []
    assert atoll.js("proj", "info", "--name", "demo")["models"] == []
    assert atoll.js("ds", "list") == [] and atoll.js("movers", "list") == []

    # Projects go with -s too; then nothing is left.
    assert "removed project demo" in atoll.ok("-s", "proj", "rm", "--name", "demo").out
    assert "demo" in atoll.fails(1, "proj", "info", "--name", "demo")
    atoll.ok("model", "rm", "--name", "wine")
    assert atoll.js("model", "list") == [] and atoll.js("proj", "list") == []


def test_treasure_chest_secret_is_never_shown(atoll) -> None:
    assert "--password-stdin" in atoll.fails(2, "tchest", "new", "--name", "db", "--user", "alice")
    results = [
        atoll("-o", "json", "tchest", "new", "--name", "db", "--user", "alice", "--desc", "database",
              "--details", '{"host": "db"}', "--password-stdin", input=SECRET + "\n"),
        atoll("tchest", "info", "--name", "db"),
        atoll("-o", "json", "tchest", "info", "--name", "db"),
        atoll("tchest", "list", "--expand"),
        atoll("-o", "yaml", "tchest", "list"),
        atoll("-d", "tchest", "list"),
        atoll("-o", "json", "tchest", "update", "--name", "db", "--desc", "new"),
    ]
    for res in results:
        assert res.code == 0, res.err
        assert SECRET not in res.out and SECRET not in res.err
    created = results[0].json()
    assert created["user"] == "alice" and "secret" not in created
    assert "alice" in results[1].out and "secret" not in results[2].json()
    assert results[-1].json()["revision"] == 2
    assert "already exists" in atoll.fails(1, "tchest", "new", "--name", "db", "--password-stdin", input="x")
    assert "empty" in atoll.fails(2, "tchest", "new", "--name", "db2", "--password-stdin", input="")
    for path in atoll.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    atoll.ok("tchest", "rm", "--name", "db")
    assert "db" in atoll.fails(1, "tchest", "info", "--name", "db")


def test_concurrent_creation_of_one_name(atoll) -> None:
    atoll.ok("model", "list")  # the store exists before the race
    for attempt in range(3):
        name = f"race-{attempt}"
        procs = [atoll.popen("model", "new", "--name", name) for _ in range(2)]
        outcomes = []
        for proc in procs:
            _out, err = proc.communicate(timeout=120)
            outcomes.append((proc.returncode, err))
        outcomes.sort()
        assert [code for code, _ in outcomes] == [0, 1], outcomes
        assert "already exists" in outcomes[1][1] and "Traceback" not in outcomes[1][1]
    assert len(atoll.js("model", "list")) == 3
