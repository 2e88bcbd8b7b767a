"""How the metadata store's cost grows with the number of model versions (10k, 100k, 1M).

Versions are spread over 10 models (scopes) with random ``details.metrics``
(acc, loss) and increasing creation dates. They are written with bulk inserts
(the records and their ``record_metrics`` rows, the same rows
:meth:`SqlMetadataStore.create` would write), then read through the store's
public API only. SQLite files are cached under ``bench/.work/metadata`` (keyed
by size and schema revision); PostgreSQL runs on a throwaway durable server.

Per size and backend (median of 5 runs):

* selective filter: ``details.metrics.acc > 0.999`` (0.1% of the versions), listed;
* ``count`` of that filter;
* 1% filter: ``details.metrics.acc > 0.99``, listed (no target: its cost is the
  records it returns, ~10,000 at 1M; see the per-1,000-rows figure);
* first page: 100 versions newest first (``sort=created_at, descending``);
* full list of one model (10% of the versions): cost per 1,000 rows returned.

Target: each of the first three <= 100 ms at 1M versions.

    .venv/bin/python -m bench.metadata_growth [--sizes 10000,100000,1000000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from atoll.domain.records import ModelVersion
from atoll.metadata import migrations
from atoll.metadata._sqlindex import metric_entries
from atoll.metadata.base import get_metadata_store
from atoll.metadata.sql import _make_engine

SIZES = (10_000, 100_000, 1_000_000)
MODELS = 10
SELECTIVE = {"details.metrics.acc": {"$gt": 0.999}}
ONE_PERCENT = {"details.metrics.acc": {"$gt": 0.99}}
QUERIES = ("selective filter", "count", "first page")
CHUNK = 20_000
TARGET_MS = 100.0


def _docs(n: int, seed: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(id, JSON form)`` of ``n`` versions, built from one template (pydantic per row would take minutes)."""
    rng = random.Random(seed)
    template = ModelVersion(name="v0", model="m0", details={}).model_dump(mode="json")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(n):
        when = (start + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        doc = dict(template)
        doc.update(
            name=f"v{i:07d}",
            model=f"m{i % MODELS}",
            created_at=when,
            modified_at=when,
            details={"metrics": {"acc": rng.random(), "loss": rng.random()}, "params": {"seed": i}},
            store_key=f"movers/m{i % MODELS}/v{i:07d}",
        )
        yield i + 1, doc


def populate(url: str, n: int) -> int:
    """Create the schema through the store, then bulk-insert ``n`` versions; return the selective filter's matches."""
    get_metadata_store(url).close()  # creates the schema at HEAD
    engine = _make_engine(url)
    matches = 0
    try:
        raw = engine.raw_connection()
        try:
            postgres = engine.dialect.name == "postgresql"
            cur = raw.cursor()
            records: list[tuple[Any, ...]] = []
            metrics: list[tuple[Any, ...]] = []

            def flush() -> None:
                if postgres:
                    with cur.copy("COPY records (id, kind, scope, name, doc, revision, created_at, modified_at) "
                                  "FROM STDIN") as copy:
                        for row in records:
                            copy.write_row(row)
                    with cur.copy("COPY record_metrics (record_id, metric, value) FROM STDIN") as copy:
                        for row in metrics:
                            copy.write_row(row)
                else:
                    cur.executemany("INSERT INTO records (id, kind, scope, name, doc, revision, created_at, "
                                    "modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
                    cur.executemany("INSERT INTO record_metrics (record_id, metric, value) VALUES (?, ?, ?)",
                                    metrics)
                records.clear()
                metrics.clear()

            if not postgres:
                cur.execute("BEGIN")
            for record_id, doc in _docs(n):
                matches += doc["details"]["metrics"]["acc"] > 0.999
                records.append((record_id, "movers", doc["model"], doc["name"], orjson.dumps(doc).decode(), 1,
                                doc["created_at"], doc["modified_at"]))
                metrics.extend((record_id, metric, value) for metric, value in metric_entries(doc))
                if len(records) >= CHUNK:
                    flush()
            flush()
            if postgres:
                cur.execute("SELECT setval(pg_get_serial_sequence('records', 'id'), %s)", (n,))
                raw.commit()
                cur.execute("ANALYZE")
                raw.commit()
            else:
                cur.execute("COMMIT")
                cur.execute("ANALYZE")
        finally:
            raw.close()
    finally:
        engine.dispose()
    return matches


def _median_ms(fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()  # warm the cache: the question is the query's cost, not the disk's
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(url: str, label: str, n: int, expected: int) -> dict[str, Any]:
    """Time the four questions on a populated store; checks each answer's size first."""
    store = get_metadata_store(url)
    try:
        found = len(store.list(ModelVersion, filter=SELECTIVE))
        if found != expected or store.count(ModelVersion, filter=SELECTIVE) != expected:
            raise RuntimeError(f"{label} {n}: the filter found {found} versions, expected {expected}")
        page = store.list(ModelVersion, sort="created_at", descending=True, limit=100)
        if len(page) != 100 or page[0].name != f"v{n - 1:07d}":
            raise RuntimeError(f"{label} {n}: the newest-first page starts at {page[0].name if page else None}")
        one_model = n // MODELS
        full_ms = _median_ms(lambda: store.list(ModelVersion, scope="m0"), 3)
        return {
            "backend": label,
            "versions": n,
            "matches": found,
            "selective filter": _median_ms(lambda: store.list(ModelVersion, filter=SELECTIVE)),
            "count": _median_ms(lambda: store.count(ModelVersion, filter=SELECTIVE)),
            "1% filter": _median_ms(lambda: store.list(ModelVersion, filter=ONE_PERCENT), 3),
            "first page": _median_ms(
                lambda: store.list(ModelVersion, sort="created_at", descending=True, limit=100)
            ),
            "full list rows": one_model,
            "full list ms/1000 rows": full_ms / one_model * 1000,
        }
    finally:
        store.close()


def sqlite_url(cache: Path, n: int) -> tuple[str, int]:
    """A cached SQLite store of ``n`` versions (built when missing or of an older schema)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"versions-{n}-{migrations.HEAD}.db"
    marker = path.with_suffix(".matches")
    if not (path.exists() and marker.exists()):
        for stale in (path, marker, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        marker.write_text(str(populate(f"sqlite:///{path}", n)))
    return f"sqlite:///{path}", int(marker.read_text())


def run(sizes: tuple[int, ...], cache: Path, postgres: bool, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Measure every size on SQLite (and PostgreSQL when asked); rows in size order."""
    rows = []
    for n in sizes:
        say(f"metadata growth: {n:,} versions on sqlite (cached under {cache})")
        url, expected = sqlite_url(cache, n)
        rows.append(measure(url, "sqlite", n, expected))
    if postgres:
        from atoll.testing.postgres import running_postgres

        for n in sizes:
            say(f"metadata growth: {n:,} versions on postgresql (throwaway durable server, bulk COPY)")
            with running_postgres(durable=True) as url:
                rows.append(measure(url, "postgresql", n, populate(url, n)))
    return rows


def chart(rows: list[dict[str, Any]], path: Path) -> None:
    """One PNG: milliseconds per question against the number of versions, log-log, a line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    styles = {"sqlite": "-", "postgresql": "--"}
    for backend in sorted({r["backend"] for r in rows}):
        mine = sorted((r for r in rows if r["backend"] == backend), key=lambda r: r["versions"])
        xs = [r["versions"] for r in mine]
        for i, (query, marker) in enumerate(zip((*QUERIES, "1% filter", "full list ms/1000 rows"), "osdv^")):
            ax.plot(xs, [r[query] for r in mine], styles.get(backend, ":"), marker=marker, color=f"C{i}",
                    label=f"{backend}: {query}")
    ax.axhline(TARGET_MS, color="red", linewidth=0.8, label="target (100 ms)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model versions in the store")
    ax.set_ylabel("milliseconds (median)")
    ax.set_title("Metadata store: cost against size")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    from bench.tools import WORK

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--chart", help="write the PNG chart here")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    rows = run(sizes, WORK / "metadata", not args.no_postgres)
    for row in rows:
        print("  ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    if args.chart:
        chart(rows, Path(args.chart))


if __name__ == "__main__":
    main()
