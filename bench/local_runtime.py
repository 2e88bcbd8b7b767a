"""Section 7b: the local runtime with 5, 10 and 20 deployments of 2 replicas each.

In the throwaway ``ATOLL_HOME`` of the other sections (iris built and trained
once), deployments ``lr00``, ``lr01``, ... of the trained version are made one
after another with ``atoll depl new -n 2`` (each returns once its replicas are
healthy) until 5, 10 and then 20 are running. Measured at each size: the wall
time of the ``depl new`` commands so far, and the memory of every process the
deployments run — the replicas and their supervisors, found by their command
line naming this ``ATOLL_HOME`` (the router excluded) — as the sum of their
PSS (``/proc/PID/smaps_rollup``: shared pages counted once across processes,
so the sum is what the machine pays). Then ``atoll depl rm`` of all of them,
timed. A chart of time and memory against the number of deployments goes to
``bench/local_runtime.png``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench import charts
from bench.atoll_flow import AtollHome
from bench.report import Report, Row
from bench.tools import ROOT, fmt, say

SIZES = (5, 10, 20)
QUICK_SIZES = (2, 4)
REPLICAS = 2


def _pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _processes_of(home: Path, exclude: set[int]) -> list[int]:
    """PIDs whose command line names ``home`` (replicas, supervisors), minus ``exclude``."""
    mark = str(home).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude or int(entry.name) == os.getpid():
            continue
        try:
            if mark in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def local_runtime(report: Report, home: AtollHome, version: str, quick: bool) -> None:
    """Run the section; rows and raw figures go to ``report``."""
    section = "7b. local runtime: deployments x 2 replicas"
    sizes = QUICK_SIZES if quick else SIZES
    made: list[str] = []
    points: list[tuple[int, float, float, int]] = []  # deployments, deploy seconds, PSS MiB, processes
    deploy_seconds = 0.0
    try:
        for size in sizes:
            while len(made) < size:
                name = f"lr{len(made):02d}"
                start = time.perf_counter()
                home.deploy(name, version, REPLICAS)
                deploy_seconds += time.perf_counter() - start
                made.append(name)
            time.sleep(1.0)  # let the replicas finish their first imports before reading memory
            router = home.router_pid()
            pids = _processes_of(home.home, {router} if router else set())
            pss_mib = sum(_pss_kib(pid) for pid in pids) / 1024
            points.append((size, deploy_seconds, pss_mib, len(pids)))
            say(f"local runtime: {size} deployments x {REPLICAS} in {deploy_seconds:.1f}s, "
                f"{len(pids)} processes, PSS {pss_mib:,.0f} MiB")
    finally:
        start = time.perf_counter()
        for name in made:
            home.remove(name)
        removal = time.perf_counter() - start
    for size, seconds, pss, count in points:
        report.raw_line(section, f"{size:3d} deployments: depl new total {seconds:7.2f} s; {count} processes; "
                                 f"PSS {pss:8.1f} MiB")
    report.raw_line(section, f"depl rm of {len(made)} deployments: {removal:.2f} s")
    for size, seconds, pss, count in points:
        replicas = size * REPLICAS
        report.add(
            Row(f"local runtime: {size} deployments x {REPLICAS} replicas: depl new, all", fmt(seconds, "s"),
                f"{fmt(seconds / size, 's')} per deployment", None, "(none)", None),
            Row(f"local runtime: {size} deployments x {REPLICAS} replicas: memory (PSS)", fmt(pss, "MiB"),
                f"{fmt(pss / replicas, 'MiB')} per replica ({count} processes)", None, "(none)", None),
        )
    report.add(Row(f"local runtime: depl rm of {len(made)} deployments", fmt(removal, "s"),
                   f"{fmt(removal / max(1, len(made)), 's')} per deployment", None, "(none)", None))
    chart = ROOT / "bench" / "local_runtime.png"
    charts.lines(chart, f"Local runtime: deployments of {REPLICAS} replicas", "deployments running",
                 "seconds of depl new (cumulative)", {"depl new, all so far (s)": [(n, s) for n, s, _, _ in points]},
                 right=("PSS, MiB", {"memory of replicas + supervisors (MiB)": [(n, m) for n, _, m, _ in points]}))
    report.note(f"local runtime chart: {chart.relative_to(ROOT)}")
