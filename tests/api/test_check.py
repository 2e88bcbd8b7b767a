"""``atoll check``: the embedded stores (a real SQLite file, a real directory) made to disagree."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from atoll.api import check, datasets, models
from atoll.api.context import AtollContext
from atoll.config import load_config
from atoll.domain.records import Dataset, Model
from atoll.errors import BackendUnavailableError


@pytest.fixture
def ctx(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AtollContext:
    monkeypatch.setenv("ATOLL_FILE_STORE__DIGEST", "sha256")  # as files were recorded before BLAKE3
    old = AtollContext(load_config(tmp_path), cwd=tmp_path)
    models.new_model(old, "m", data_files=[{"name": "a.csv"}, {"name": "b.csv"}])
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("1,2\n")
    (src / "b.csv").write_text("3,4\n")
    datasets.new_dataset(old, "m", "legacy", path=src)
    old.close()
    monkeypatch.delenv("ATOLL_FILE_STORE__DIGEST")
    context = AtollContext(load_config(tmp_path), cwd=tmp_path)
    datasets.new_dataset(context, "m", "plain", path=src)
    datasets.new_dataset(context, "m", "packed", path=src, compress=True)
    assert [f.algorithm for name in ("legacy", "plain") for f in context.metadata.get(Dataset, name, "m").files] == [
        "sha256", "sha256", "blake3", "blake3"]
    yield context
    context.close()


def _stored(ctx: AtollContext, record: Dataset, name: str = "a.csv") -> Path:
    root = ctx.config.file_store_path
    key = record.store_key if record.compressed else f"{record.store_key}{name}"
    return root / str(key)


def _problems(findings: list[check.Finding]) -> list[tuple[str, str]]:
    return [(f.problem, f.what) for f in findings]


def test_agreeing_stores_have_no_findings(ctx: AtollContext) -> None:
    assert check.check(ctx) == []
    assert check.check_and_repair(ctx, lambda _q: pytest.fail("nothing to confirm")) == []


def test_a_lost_file_makes_a_record_without_files_which_repair_removes(ctx: AtollContext) -> None:
    _stored(ctx, ctx.metadata.get(Dataset, "plain", "m")).unlink()
    assert _problems(check.check(ctx)) == [("record-without-files", "dataset 'm:plain'")]
    refused = check.check_and_repair(ctx, lambda _q: False)
    assert not refused[0].repaired and ctx.metadata.exists(Dataset, "plain", "m")
    done = check.check_and_repair(ctx, lambda _q: True)
    assert done[0].repaired and not ctx.metadata.exists(Dataset, "plain", "m")
    # Its other file is now a file without a record.
    assert [f.problem for f in check.check(ctx)] == ["file-without-record"]


@pytest.mark.parametrize("name", ["plain", "packed", "legacy"])
def test_a_flipped_byte_is_a_checksum_mismatch_that_is_only_reported(ctx: AtollContext, name: str) -> None:
    path = _stored(ctx, ctx.metadata.get(Dataset, name, "m"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    findings = check.check_and_repair(ctx, lambda _q: pytest.fail("nothing safe to repair"))
    assert _problems(findings) == [("checksum-mismatch", f"dataset 'm:{name}'")]
    assert "checksum mismatch" in findings[0].detail and not findings[0].repaired
    if name != "packed":  # a flipped byte of an archive breaks the archive itself, before any file
        algorithm = "sha256" if name == "legacy" else "blake3"
        assert f"checksum mismatch for a.csv: the stored file differs from the published one ({algorithm} " in (
            findings[0].detail)
    assert check.check(ctx, checksums=False) == []  # --quick: presence only


def test_a_stray_file_is_moved_to_lost_and_found(ctx: AtollContext, tmp_path: Path) -> None:
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"left over")
    ctx.files.upload(stray, "datasets/m/gone/0123/stray.bin")
    assert _problems(check.check(ctx)) == [("file-without-record", "datasets/m/gone/0123/stray.bin")]
    assert check.check_and_repair(ctx, lambda _q: True)[0].repaired
    assert not ctx.files.exists("datasets/m/gone/0123/stray.bin")
    assert ctx.files.exists("lost+found/datasets/m/gone/0123/stray.bin")
    assert check.check(ctx) == []


def test_a_damaged_record_is_reported_and_removed(ctx: AtollContext) -> None:
    with sqlite3.connect(ctx.config.home / "atoll.db") as db:
        db.execute("UPDATE records SET doc = '{\"name\": \"m\"' WHERE kind = 'model' AND name = 'm'")
    findings = check.check(ctx)
    assert _problems(findings) == [("damaged-record", "model 'm'")]
    check.check_and_repair(ctx, lambda _q: True)
    assert not ctx.metadata.exists(Model, "m")


def test_a_deleted_sqlite_file_is_not_recreated_empty(ctx: AtollContext, tmp_path: Path) -> None:
    ctx.close()
    for path in ctx.config.home.glob("atoll.db*"):
        path.unlink()
    fresh = AtollContext(load_config(tmp_path), cwd=tmp_path)
    with pytest.raises(BackendUnavailableError, match="atoll check"):
        fresh.metadata  # noqa: B018 - opening it is the point
    assert not (ctx.config.home / "atoll.db").exists()

    assert [f.problem for f in check.check(fresh)] == ["metadata-store-missing"]
    findings = check.check_and_repair(fresh, lambda _q: True)
    assert findings[0].repaired and (ctx.config.home / "atoll.db").exists()
    problems = [f.problem for f in findings[1:]]
    assert problems[0] == "empty-metadata-store" and set(problems[1:]) == {"file-without-record"}
    assert not any(f.repair for f in findings[1:])  # the files stay where a restored backup expects them
    fresh.close()
