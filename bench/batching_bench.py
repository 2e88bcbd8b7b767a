"""Section 1b: adaptive batching — Atoll batched vs unbatched vs the floor, BentoML (batching on/off), MLflow.

Every server runs one process (one worker) pinned on CPU 0, hey on CPU 1
(see :mod:`bench.serving`), on the same model and the same 1-row body (in each
server's own request format), at c = 1, 8, 32 and 128, in interleaved rounds.
The model is the RandomForest of 10 trees of DESIGN §8 (``rf.pkl``): its
``predict`` costs ~1-2 ms per call whatever the rows, the case batching is
for (the example's linear SVC costs less per call than the HTTP exchange, so
batching it can at best halve the work).
Atoll runs the example notebook's code under ``OnlinePredict`` in Atoll's venv
(:mod:`bench.peers.atoll_server`), batched with
``BatchConfig(max_size=64, max_latency_ms=5)`` and unbatched.

Targets: Atoll batched at c=128 >= 3x the floor's req/s with p99 no worse
than the floor's; Atoll batched >= BentoML batched at c=32 and 128.
Memory: the resident set (RSS, summed over the process tree) of each server
after its load, serving the same model.
"""

from __future__ import annotations

from pathlib import Path

from bench import peers as peers_mod
from bench.report import Report, Row
from bench.serving import Target, _raw, _run_rounds
from bench.tools import Proc, fmt, free_port, say, wait_predict

BATCH = 64
ATOLL_LATENCY_MS = 5.0
BENTOML_LATENCY_MS = 60_000  # its default: a lower cap makes BentoML refuse requests (503 "overloaded")
CONCURRENCIES = (1, 8, 32, 128)
MODEL, MLFLOW_MODEL = "rf.pkl", "mlflow-model-rf"


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def batching(report: Report, peers: peers_mod.Peers, quick: bool) -> None:
    """Run the section; rows and raw medians go to ``report``."""
    section = "1b. batching (RandomForest 10 trees, 1-row JSON body, one process each)"
    peers_mod.setup_bentoml(peers)
    ports = {name: free_port() for name in ("atoll", "atoll batched", "floor", "bentoml", "bentoml batched",
                                             "mlflow")}
    procs: dict[str, Proc] = {}
    try:
        procs["atoll"] = peers_mod.start_atoll(peers, ports["atoll"], 0, model=MODEL)
        procs["atoll batched"] = peers_mod.start_atoll(peers, ports["atoll batched"], BATCH, ATOLL_LATENCY_MS,
                                                       model=MODEL)
        procs["floor"] = peers_mod.start_floor(peers, ports["floor"], model=MODEL)
        procs["bentoml"] = peers_mod.start_bentoml(peers, ports["bentoml"], 0, model=MODEL)
        procs["bentoml batched"] = peers_mod.start_bentoml(peers, ports["bentoml batched"], BATCH,
                                                           BENTOML_LATENCY_MS, model=MODEL)
        procs["mlflow"] = peers_mod.start_mlflow(peers, ports["mlflow"], model=MLFLOW_MODEL)
        paths = {"atoll": "/predict", "atoll batched": "/predict", "floor": "/predict", "bentoml": "/predict",
                 "bentoml batched": "/predict", "mlflow": "/invocations"}
        bodies = {"bentoml": peers_mod.BENTOML_ROW, "bentoml batched": peers_mod.BENTOML_ROW,
                  "mlflow": peers_mod.MLFLOW_ROW}
        targets = []
        for name, proc in procs.items():
            url = f"http://127.0.0.1:{ports[name]}{paths[name]}"
            body = bodies.get(name, peers_mod.ROW)
            say(f"batching: waiting for {name}")
            wait_predict(url, body, 300, proc)
            targets.append(Target(name, [url], body))
        rounds = 1 if quick else 3
        say(f"batching: {rounds} interleaved round(s) x {len(targets)} servers x c={CONCURRENCIES}")
        results = _run_rounds(targets, CONCURRENCIES, rounds, 0.6 if quick else 2.5)
        rss = {name: tree_rss_mb(proc.pid) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop()
    _raw(report, section, results)
    for name, mb in rss.items():
        report.raw_line(section, f"RSS {name:<22} {mb:7.1f} MB (process tree, after its load)")
    for c in CONCURRENCIES:
        b, u, f = results[("atoll batched", c)], results[("atoll", c)], results[("floor", c)]
        bb, bu, m = results[("bentoml batched", c)], results[("bentoml", c)], results[("mlflow", c)]
        big = c == 128
        report.add(
            Row(f"batching c={c}: Atoll batched req/s vs floor", fmt(b.rps), f"floor {fmt(f.rps)}", b.rps / f.rps,
                ">= 3x" if big else "(none)", b.rps >= 3 * f.rps if big else None),
            Row(f"batching c={c}: Atoll batched p99 vs floor", fmt(b.p99, "ms"), f"floor {fmt(f.p99, 'ms')}",
                b.p99 / f.p99, "<= 1x" if big else "(none)", b.p99 <= f.p99 if big else None),
            Row(f"batching c={c}: Atoll batched vs BentoML batched", fmt(b.rps), f"BentoML {fmt(bb.rps)}",
                b.rps / bb.rps, ">= 1x" if c >= 32 else "(none)", b.rps >= bb.rps if c >= 32 else None),
            Row(f"batching c={c}: Atoll unbatched vs BentoML unbatched", fmt(u.rps), f"BentoML {fmt(bu.rps)}",
                u.rps / bu.rps, "(none)", None),
            Row(f"batching c={c}: BentoML batched vs MLflow", fmt(bb.rps), f"MLflow {fmt(m.rps)}", bb.rps / m.rps,
                "(none)", None),
        )
    report.add(
        Row("memory per replica (RSS): Atoll", fmt(rss["atoll"], "MB"),
            f"MLflow {fmt(rss['mlflow'], 'MB')}, BentoML {fmt(rss['bentoml'], 'MB')}",
            rss["atoll"] / rss["mlflow"], "(none)", None),
    )
