"""Section 6b: files at scale — one 1 GB file, and a dataset of 10,000 small files, local store and S3.

Same operations as section 6 (:mod:`bench.files_bench`): publish (check,
copy with the BLAKE3 of the copy, fsync, record last) and fetch (copy, verify, read-only),
through the local store and through S3 (``rclone serve s3`` on 127.0.0.1).
Peers: ``cp`` (``cp -r`` for the directory) and ``cp`` + ``sync``. The
small files are 4 KB each (40 MB in all), where the cost is per file, not
per byte. With ``--quick``: 256 MB and 2,000 files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from atoll.domain.records import FileSpec
from atoll.files.base import FileStore
from atoll.files.local import LocalFileStore
from atoll.metadata.base import get_metadata_store
from bench import charts
from bench.files_bench import _make_blob, _store_round, _timed, start_s3_store
from bench.report import Report, Row
from bench.tools import ROOT, WORK, fmt, say

SMALL_BYTES = 4096


def _make_small(directory: Path, count: int) -> None:
    if directory.is_dir() and len(os.listdir(directory)) == count:
        return
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for i in range(count):
        (directory / f"part-{i:05d}.bin").write_bytes(os.urandom(SMALL_BYTES))


def files_scale(report: Report, quick: bool) -> None:
    """Run the section; rows and raw figures go to ``report``."""
    section = "6b. files at scale"
    mb, count = (256, 2_000) if quick else (1024, 10_000)
    base = WORK / "files"
    run_dir = base / "scale-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cases = {f"{mb} MB file": (base / "scale-big", [FileSpec(name="blob.bin", required=True, max_mb=mb + 10)]),
             f"{count:,} files of 4 KB": (base / f"scale-small-{count}", [])}
    _make_blob(base / "scale-big" / "blob.bin", mb)
    _make_small(base / f"scale-small-{count}", count)
    metadata = get_metadata_store(f"sqlite:///{run_dir / 'meta.db'}")
    stores: dict[str, FileStore] = {"local": LocalFileStore(run_dir / "store")}
    s3_proc, s3_store = start_s3_store(run_dir, report)
    if s3_store is not None:
        stores["s3 (rclone)"] = s3_store
    times: dict[str, float] = {}
    try:
        for case, (src, specs) in cases.items():
            for label, store in stores.items():
                say(f"files at scale: {case} through {label}")
                publish, fetch = _store_round(metadata, store, src, specs, run_dir / "fetch", f"s{len(times)}")
                times[f"{case} {label} publish"] = publish
                times[f"{case} {label} fetch"] = fetch
            dst = run_dir / "cp"
            times[f"{case} cp"] = _timed(["cp", "-r", str(src), str(dst)])
            shutil.rmtree(dst)
            # a global sync: the untimed one before flushed everything else, so it flushes what cp wrote
            times[f"{case} cp+sync"] = _timed(["cp", "-r", str(src), str(dst)], ["sync"])
            shutil.rmtree(dst)
    finally:
        if s3_proc is not None:
            s3_proc.stop()
        metadata.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    for key, seconds in times.items():
        report.raw_line(section, f"{key:<40} {seconds:8.3f} s")
    for case in cases:
        cp = times[f"{case} cp"]
        for label in stores:
            for op in ("publish", "fetch"):
                key = f"{case} {label} {op}"
                if key not in times:
                    continue
                report.add(Row(f"files {op} {case}: {label}", fmt(times[key], "s"),
                               f"cp {fmt(cp, 's')}; cp+sync {fmt(times[f'{case} cp+sync'], 's')}",
                               cp / times[key], "(none)", None))
    report.note("files at scale: one round each (minutes per round); read them as orders of magnitude")
    groups: dict[str, dict[str, float]] = {}
    for case in cases:
        for op in ("publish", "fetch"):
            bars = {label: times[f"{case} {label} {op}"] for label in stores if f"{case} {label} {op}" in times}
            groups[f"{op} {case}"] = {**bars, "cp": times[f"{case} cp"], "cp+sync": times[f"{case} cp+sync"]}
    chart = ROOT / "bench" / "files_scale.png"
    charts.bars(chart, "Files at scale: seconds per operation (log)", "seconds", groups, log=True)
    report.note(f"files at scale chart: {chart.relative_to(ROOT)}")
