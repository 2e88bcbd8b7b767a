"""Lightweight store: loading a small model from the metadata database vs from the file store.

What a ``LazyModelServer`` does when asked for a version it has not loaded:
stage its files (fetch + BLAKE3 check). Timed for a 1 MB model, median of
many loads, on two pairs: SQLite blob vs local file store (a laptop) and
PostgreSQL blob vs S3 (rclone) (a team's servers, both real, on 127.0.0.1).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from atoll.domain.records import FileSpec, ModelVersion
from atoll.files.artifacts import fetch_artifact, publish_artifact
from atoll.files.base import FileStore
from atoll.files.lightweight import LightweightFileStore
from atoll.files.local import LocalFileStore
from atoll.metadata.base import MetadataStore, get_metadata_store
from bench.report import Report, Row
from bench.tools import WORK, say

MODEL_BYTES = 1024 * 1024
SECTION = "7. lightweight"


def _load_times(metadata: MetadataStore, files: FileStore, src: Path, lightweight: bool, loads: int) -> list[float]:
    store = LightweightFileStore(files, metadata)
    specs = [FileSpec(name="clf.pkl", required=True)]
    name = f"{'light' if lightweight else 'files'}-{time.monotonic_ns()}"
    record = publish_artifact(metadata, store, ModelVersion(name=name, model="bench"), src, specs,
                              lightweight=lightweight)
    out = src.parent / f"load-{name}"
    times = []
    for i in range(loads + 1):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        fetch_artifact(store, record, out)
        if i:  # the first load warms connections and caches: not timed
            times.append(time.perf_counter() - start)
    shutil.rmtree(out, ignore_errors=True)
    return times


@contextmanager
def _team_stores(run_dir: Path) -> Iterator[tuple[MetadataStore, FileStore]]:
    from atoll.files.s3 import S3FileStore
    from atoll.testing.postgres import running_postgres
    from bench.files_bench import _start_s3

    with ExitStack() as stack:
        url = stack.enter_context(running_postgres())
        proc, creds = _start_s3(run_dir / "s3")
        stack.callback(proc.stop)
        metadata = get_metadata_store(url)
        stack.callback(metadata.close)
        yield metadata, S3FileStore(creds["url"], bucket="bench", access_key=creds["access_key"],
                                    secret_key=creds["secret_key"])


def lightweight(report: Report, quick: bool) -> None:
    """Median load time of a 1 MB model: metadata blob vs file store."""
    loads = 10 if quick else 50
    run_dir = WORK / "lightweight"
    shutil.rmtree(run_dir, ignore_errors=True)
    src = run_dir / "src"
    src.mkdir(parents=True)
    (src / "clf.pkl").write_bytes(os.urandom(MODEL_BYTES))
    pairs: list[tuple[str, str, list[float], list[float]]] = []
    try:
        laptop = get_metadata_store(f"sqlite:///{run_dir / 'meta.db'}")
        try:
            local = LocalFileStore(run_dir / "store")
            say(f"lightweight: {loads} loads of a 1 MB model, SQLite blob vs local files")
            pairs.append(("SQLite blob", "local file store", _load_times(laptop, local, src, True, loads),
                          _load_times(laptop, local, src, False, loads)))
        finally:
            laptop.close()
        try:
            with _team_stores(run_dir) as (metadata, s3):
                say(f"lightweight: {loads} loads of a 1 MB model, PostgreSQL blob vs S3 (rclone)")
                pairs.append(("PostgreSQL blob", "S3 (rclone)", _load_times(metadata, s3, src, True, loads),
                              _load_times(metadata, s3, src, False, loads)))
        except Exception as exc:  # noqa: BLE001 - the team pair is optional (needs PostgreSQL binaries)
            report.note(f"lightweight PostgreSQL/S3 row skipped: {exc}")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    for blob_label, files_label, blob, files in pairs:
        b, f = statistics.median(blob), statistics.median(files)
        report.raw_line(SECTION, f"{blob_label:<16} {b * 1000:.2f} ms; {files_label:<16} {f * 1000:.2f} ms "
                                 f"(medians of {loads})")
        report.add(Row(f"load a 1 MB model: {blob_label} vs {files_label}", f"{b * 1000:.1f} ms",
                       f"{f * 1000:.1f} ms", f / b, "(none)", None))
