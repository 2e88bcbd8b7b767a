"""Section 5: the metadata store, through H-metadata's :mod:`bench.metadata_bench` (not duplicated here)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import metadata_bench, metadata_growth
from bench.report import Report, Row
from bench.tools import ROOT, WORK, fmt, say


def metadata(report: Report, quick: bool) -> None:
    """5. 10,000 model versions (2,000 with --quick): create rate, ``$gt`` filtered list, get; SQLite and PostgreSQL."""
    section = "5. metadata"
    n = 2_000 if quick else 10_000
    records = metadata_bench._records(n, snapshots=False)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="atoll-bench-") as tmp:
        say(f"metadata: {n:,} versions on sqlite")
        results.append(metadata_bench.bench(f"sqlite:///{Path(tmp) / 'atoll.db'}", "sqlite", records))
    if metadata_bench.postgres_available():
        say(f"metadata: {n:,} versions on postgresql (throwaway durable server)")
        with metadata_bench.running_postgres(durable=True) as url:
            results.append(metadata_bench.bench(url, "postgresql", records))
    else:
        report.note("PostgreSQL binaries not installed: no postgresql metadata rows")
    for row in results:
        report.raw_line(section, "  ".join(f"{k} {fmt(v) if isinstance(v, float) else v}" for k, v in row.items()))
        label = row["backend"]
        list_ms = row["list $gt ms"]
        report.add(
            Row(f"metadata {label}: list $gt over {n:,} versions", fmt(list_ms, "ms"),
                f"{row['matches']:,} matches", None, "<= 100 ms", list_ms <= 100),
            Row(f"metadata {label}: create / get", f"{fmt(row['create/s'])}/s", f"get {fmt(row['get ms'], 'ms')}",
                None, "(none)", None),
        )


def growth(report: Report, quick: bool) -> None:
    """5b. Cost growth: 10k, 100k and 1M versions (up to 100k with --quick), SQLite and PostgreSQL; chart PNG."""
    section = "5b. metadata growth"
    sizes = metadata_growth.SIZES[:2] if quick else metadata_growth.SIZES
    postgres = metadata_bench.postgres_available()
    if not postgres:
        report.note("PostgreSQL binaries not installed: no postgresql growth rows")
    rows = metadata_growth.run(sizes, WORK / "metadata", postgres, say)
    for row in rows:
        report.raw_line(section, "  ".join(f"{k} {fmt(v) if isinstance(v, float) else v}" for k, v in row.items()))
    for row in rows:
        label, n = row["backend"], row["versions"]
        top = n == max(sizes)
        for query in metadata_growth.QUERIES:
            what = f"{row['matches']:,} matches" if query != "first page" else "100 newest"
            report.add(Row(f"metadata {label} {n:,} versions: {query}", fmt(row[query], "ms"), what, None,
                           "<= 100 ms" if top else "(none)", row[query] <= metadata_growth.TARGET_MS if top else None))
        report.add(Row(f"metadata {label} {n:,} versions: 1% filter", fmt(row["1% filter"], "ms"),
                       "~1% of the versions", None, "(none)", None))
        report.add(Row(f"metadata {label} {n:,} versions: full list", fmt(row["full list ms/1000 rows"], "ms"),
                       f"per 1,000 rows ({row['full list rows']:,} listed)", None, "(none)", None))
    chart = ROOT / "bench" / "metadata_growth.png"
    metadata_growth.chart(rows, chart)
    report.note(f"metadata growth chart: {chart.relative_to(ROOT)}")
