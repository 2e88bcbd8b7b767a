"""The versions page of ``atoll ui`` over 10,000 versions (2,000 with --quick) in SQLite.

Versions carry the snapshots a real training leaves (build, training), as in
``bench/metadata_bench.py --snapshots``. Times ``GET /model/iris`` (page 1 of
50, newest first) and the same page sorted by a metric, through the app in
process (Starlette's test client, no network). The store sorts, filters and
cuts the page (nothing is cached), so the first request of a fresh app costs
what later ones do: one count plus the 50 records shown.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench import metadata_bench
from bench.report import Report, Row
from bench.tools import fmt, say

TOKEN = "bench"


def ui(report: Report, quick: bool) -> None:
    from starlette.testclient import TestClient

    from atoll.api.context import AtollContext
    from atoll.config import Config
    from atoll.domain.records import Model
    from atoll.metadata.base import get_metadata_store
    from atoll.ui.app import create_app

    n = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="atoll-bench-ui-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'atoll.db'}"
        say(f"ui: {n:,} versions with snapshots on sqlite")
        store = get_metadata_store(url)
        store.create(Model(name="iris"))
        for record in metadata_bench._records(n, snapshots=True):
            store.create(record)
        store.close()
        ctx = AtollContext(config=Config(metadata={"url": url}), cwd=Path(tmp))
        with TestClient(create_app(ctx, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            def timed(path: str) -> float:
                start = time.perf_counter()
                answer = client.get(path)
                assert answer.status_code == 200 and answer.text.count("/model/iris/version/") >= 50
                return (time.perf_counter() - start) * 1000

            first = timed("/model/iris")
            warm = statistics.median(timed("/model/iris") for _ in range(7))
            by_metric = statistics.median(timed("/model/iris?sort=metric:acc&page=7") for _ in range(7))
            ascending = statistics.median(timed("/model/iris?sort=metric:acc&order=asc&page=7") for _ in range(7))
            filtered = statistics.median(
                timed('/model/iris?filter={"details.metrics.acc":{"$gte":0.5}}&page=3') for _ in range(7))
        ctx.close()
    slowest = max(warm, by_metric, ascending, filtered)
    report.add(
        Row(f"ui: versions page over {n:,} versions, first request", fmt(first, "ms"),
            "fresh app: one count + the 50 records shown", None, "<= 1000 ms", first <= 1000),
        Row(f"ui: versions page over {n:,} versions, later requests", fmt(warm, "ms"),
            f"by a metric {fmt(by_metric, 'ms')} (ascending {fmt(ascending, 'ms')}), filtered {fmt(filtered, 'ms')}",
            None, "<= 1000 ms", slowest <= 1000),
    )
