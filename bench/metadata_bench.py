"""Metadata-store benchmark: 10,000 model versions of one model.

Times, per backend (SQLite always; PostgreSQL when its binaries are installed,
on a throwaway durable server from :func:`atoll.testing.postgres.running_postgres`):

* create rate (records/s, one ``create`` = one transaction);
* ``list`` with ``{"details.metrics.acc": {"$gt": 0.9}}`` (median of 7);
* ``get`` by name (median of 101).

Target: the filtered list in <= 100 ms on both backends.

    .venv/bin/python bench/metadata_bench.py [--n 10000] [--snapshots] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.domain.records import BuildVersion, ModelVersion, StoredFile, Training
from atoll.metadata.base import MetadataStore, get_metadata_store
from atoll.testing.postgres import postgres_available, running_postgres

FILTER = {"details.metrics.acc": {"$gt": 0.9}}


def _records(n: int, snapshots: bool, seed: int = 1) -> list[ModelVersion]:
    rng = random.Random(seed)
    train = None
    if snapshots:
        bvers = BuildVersion(name="b1", proj="iris-proj", code_hash="0" * 64, digest="sha256:" + "1" * 64)
        train = Training(
            name="t1",
            proj="iris-proj",
            notebook="notebooks/train.ipynb",
            bvers=bvers,
            params={"n_estimators": 10, "max_depth": 4},
        )
    return [
        ModelVersion(
            name=f"v{i:05d}",
            model="iris",
            details={"metrics": {"acc": rng.random(), "loss": rng.random()}, "params": {"seed": i}},
            files=[
                StoredFile(name="clf.pkl", size=1234 + i, sha256=f"{i:064x}"),
                StoredFile(name="report.json", size=56, sha256=f"{i + 1:064x}"),
            ],
            store_key=f"movers/iris/v{i:05d}",
            train=train,
        )
        for i in range(n)
    ]


def _median_ms(fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append((clock() - start) * 1000)
    return statistics.median(times)


def bench(url: str, label: str, records: list[ModelVersion]) -> dict[str, Any]:
    store: MetadataStore = get_metadata_store(url)
    try:
        start = time.perf_counter()
        for record in records:
            store.create(record)
        create_rate = len(records) / (time.perf_counter() - start)
        expected = sum(1 for r in records if r.details["metrics"]["acc"] > 0.9)
        found = len(store.list(ModelVersion, filter=FILTER))
        if found != expected:
            raise SystemExit(f"{label}: filtered list returned {found} records, expected {expected}")
        list_ms = _median_ms(lambda: store.list(ModelVersion, filter=FILTER), 7)
        list_cpu_ms = _median_ms(lambda: store.list(ModelVersion, filter=FILTER), 7, time.process_time)
        count_ms = _median_ms(lambda: store.count(ModelVersion, filter=FILTER), 7)
        all_ms = _median_ms(lambda: store.list(ModelVersion, scope="iris"), 3)
        rng = random.Random(2)
        names = [rng.choice(records).name for _ in range(101)]
        it = iter(names)
        get_ms = _median_ms(lambda: store.get(ModelVersion, next(it), scope="iris"), len(names))
        return {
            "backend": label,
            "n": len(records),
            "create/s": create_rate,
            "matches": found,
            "list $gt ms": list_ms,
            "(client CPU ms)": list_cpu_ms,
            "count $gt ms": count_ms,
            "list all ms": all_ms,
            "get ms": get_ms,
        }
    finally:
        store.close()


def _print(rows: list[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain fallback
        for row in rows:
            print(row)
        return
    table = Table(title="metadata store benchmark (filter: details.metrics.acc > 0.9)")
    for col in rows[0]:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console(width=150).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--snapshots", action="store_true", help="embed a training snapshot in every version")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    records = _records(args.n, args.snapshots)
    rows = []
    with tempfile.TemporaryDirectory(prefix="atoll-bench-") as tmp:
        rows.append(bench(f"sqlite:///{Path(tmp) / 'atoll.db'}", "sqlite", records))
    if args.no_postgres:
        pass
    elif postgres_available():
        with running_postgres(durable=True) as url:
            rows.append(bench(url, "postgresql", records))
    else:
        print("PostgreSQL binaries not installed: skipping the postgresql row")
    _print(rows)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
