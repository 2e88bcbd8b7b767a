"""Section 2b: the router with 1, 50 and 500 deployments registered.

One floor replica (the example's SVC, CPU 0) is listed as the only healthy
replica of every deployment of project ``bench`` in a local-discovery state
directory (``<dir>/bench/dNNN.json``, the local manager's format). One router
per size (``python -m atoll.router --discovery local``, CPU 1 with hey) is
loaded through 8 of its deployments at once (hey split over their URLs), in
interleaved rounds. Discovery reads one deployment's file (cached, re-checked
every 0.5 s), so the figures must not depend on how many there are.

Targets: with 500 deployments, req/s >= 0.9x and p50 <= +0.2 ms of the
router with one deployment.
"""

from __future__ import annotations

import shutil
import sys

import orjson

from bench import charts
from bench import peers as peers_mod
from bench.report import Report, Row
from bench.serving import Target, _raw, _run_rounds
from bench.tools import LOAD_CPU, ROOT, WORK, Proc, fmt, free_port, say, wait_predict

SIZES = (1, 50, 500)
SPREAD = 8  # deployments loaded at once


def _state_dir(n: int, replica_url: str) -> str:
    """A state directory listing ``n`` deployments of project ``bench``, each served by ``replica_url``."""
    root = WORK / "router-scale" / f"state-{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "bench").mkdir(parents=True)
    for i in range(n):
        doc = {"project": "bench", "deployment": f"d{i:03d}",
               "replicas": [{"name": f"d{i:03d}-0", "url": replica_url, "pid": 0, "state": "healthy"}]}
        (root / "bench" / f"d{i:03d}.json").write_bytes(orjson.dumps(doc))
    return str(root)


def router_scale(report: Report, peers: peers_mod.Peers, quick: bool) -> None:
    """Run the section; rows and raw medians go to ``report``."""
    section = "2b. router and the number of deployments (1-row JSON body)"
    floor_port = free_port()
    floor = peers_mod.start_floor(peers, floor_port)
    routers: dict[int, Proc] = {}
    try:
        replica_url = f"http://127.0.0.1:{floor_port}"
        wait_predict(f"{replica_url}/predict", peers_mod.ROW, 120, floor)
        targets = []
        for n in SIZES:
            port = free_port()
            routers[n] = Proc([sys.executable, "-m", "atoll.router", "--discovery", "local", "--state-dir",
                               _state_dir(n, replica_url), "--port", str(port), "--auth", "off"],
                              WORK / "logs" / f"router-scale-{n}.log", cpus=LOAD_CPU)
            step = max(1, n // SPREAD)
            urls = [f"http://127.0.0.1:{port}/predict?project=bench&deploy=d{i:03d}" for i in range(0, n, step)]
            urls = urls[:SPREAD]
            wait_predict(urls[-1], peers_mod.ROW, 60, routers[n])
            targets.append(Target(f"router {n} depl", urls, peers_mod.ROW))
        rounds = 1 if quick else 3
        say(f"router scale: {rounds} round(s) x {len(targets)} routers x c=(8, 32)")
        results = _run_rounds(targets, (8, 32), rounds, 0.6 if quick else 2.0)
    finally:
        for proc in routers.values():
            proc.stop()
        floor.stop()
    _raw(report, section, results)
    base8, base32 = results[("router 1 depl", 8)], results[("router 1 depl", 32)]
    for n in SIZES[1:]:
        r8, r32 = results[(f"router {n} depl", 8)], results[(f"router {n} depl", 32)]
        top = n == SIZES[-1]
        report.add(
            Row(f"router with {n} deployments c=32: req/s", fmt(r32.rps), f"1 deployment {fmt(base32.rps)}",
                r32.rps / base32.rps, ">= 0.9x" if top else "(none)", r32.rps >= 0.9 * base32.rps if top else None),
            Row(f"router with {n} deployments c=8: p50", fmt(r8.p50, "ms"), f"1 deployment {fmt(base8.p50, 'ms')}",
                r8.p50 / base8.p50, "<= +0.2 ms" if top else "(none)", r8.p50 <= base8.p50 + 0.2 if top else None),
        )
    chart = ROOT / "bench" / "router_scale.png"
    charts.lines(chart, "Router: cost against the deployments registered", "deployments registered (log)",
                 "requests per second (c = 32)",
                 {"req/s, c = 32": [(n, results[(f"router {n} depl", 32)].rps) for n in SIZES]},
                 right=("p50, ms", {"p50, c = 8 (ms)": [(n, results[(f"router {n} depl", 8)].p50) for n in SIZES]}),
                 logx=True)
    report.note(f"router scale chart: {chart.relative_to(ROOT)}")
