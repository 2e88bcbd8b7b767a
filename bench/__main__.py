"""``python -m bench [--quick] [--only SECTIONS]``: every benchmark, one table, bench/results.md.

Sections: serving, batching, router, routerscale, training, coldstart, metadata,
growth, depllist, files, filescale, lightweight, swarm, ui. A section
that fails becomes a note in the table's output; the others still run.
"""

from __future__ import annotations

import argparse
import shutil
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import (
    batching_bench,
    depl_list,
    files_bench,
    files_scale,
    lifecycle,
    lightweight_bench,
    local_runtime,
    metadata_rows,
    router_scale,
    serving,
    swarm_bench,
    ui_bench,
)
from bench import peers as peers_mod
from bench.atoll_flow import AtollHome
from bench.report import Report
from bench.tools import ROOT, WORK, console, ensure_debian, say

SECTIONS = ("serving", "batching", "router", "routerscale", "training", "coldstart", "localruntime", "metadata",
            "growth", "depllist", "files", "filescale", "lightweight", "swarm", "ui")
BIG_MB = {False: 300, True: 50}


def _guard(report: Report, name: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Run one section: (True, its value), or (False, None) with the failure noted (traceback in the raw part)."""
    started = time.perf_counter()
    try:
        return True, fn()
    except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
        report.note(f"section {name} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        report.raw_line(f"{name} failure", traceback.format_exc()[-4000:])
        say(f"[red]section {name} failed: {exc}[/red]")
        return False, None
    finally:
        say(f"section {name} took {time.perf_counter() - started:.0f}s")


def _big_version(home: AtollHome, mb: int) -> None:
    """Upload version ``big``: the trained clf.pkl plus ``blob.bin`` of ``mb`` MB of random bytes."""
    from bench.files_bench import _make_blob

    src = WORK / "big-version"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    trained = home.task_dir("first") / "atoll" / "tmp" / "clf.pkl"
    shutil.copy(trained, src / "clf.pkl")
    blob = WORK / "files" / "src" / "blob.bin"  # the same random bytes section 6 uses
    _make_blob(blob, mb)
    (src / "blob.bin").symlink_to(blob)  # not copied: Atoll copies it into the store when told to follow links
    home.upload_version("big", src, "--follow-symlinks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test; figures are indicative)")
    parser.add_argument("--only", help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--swarm-build-base", action="store_true",
                        help="rebuild Atoll's base image when stale (minutes) instead of skipping the swarm row")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results.md"), help="markdown results file")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    start = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    report = Report(quick=args.quick)
    mb = BIG_MB[args.quick]
    if not ensure_debian("hey", "hey") and only & {"serving", "router"}:
        report.note("hey is missing and could not be installed: no serving/router rows")
        only -= {"serving", "router"}

    needs_atoll = only & {"serving", "router", "training", "coldstart", "localruntime"}
    home = AtollHome() if needs_atoll else None
    try:
        peers = None
        if only & {"serving", "batching", "routerscale", "coldstart"}:
            peers = _guard(report, "peer venvs", peers_mod.setup)[1]
        if home is not None:
            say(f"Atoll on the local runtime in a throwaway ATOLL_HOME ({home.home})")
            def setup() -> None:
                home.setup(extra_files_mb=mb + 10)
                home.train("first")

            ready, _ = _guard(report, "atoll setup", setup)
            if not ready:
                only -= {"serving", "router", "training", "coldstart", "localruntime"}
        mlflow_start = None
        if only & {"serving", "router"} and home is not None:
            say("deploying svc1 (1 replica) and svc2 (2 replicas)")
            def deploy() -> None:
                home.deploy("svc1", "first", 1)
                home.deploy("svc2", "first", 2)

            deployed, _ = _guard(report, "deploy", deploy)
            if deployed:
                if "serving" in only and peers is not None:
                    mlflow_start = _guard(report, "serving", lambda: serving.serving(report, home, peers, args.quick))[1]
                if "router" in only:
                    _guard(report, "router", lambda: serving.router(report, home, args.quick))
            for name in sorted(home.deployments):
                _guard(report, f"remove {name}", partial(home.remove, name))
        if "batching" in only and peers is not None:
            _guard(report, "batching", lambda: batching_bench.batching(report, peers, args.quick))
        if "routerscale" in only and peers is not None:
            _guard(report, "routerscale", lambda: router_scale.router_scale(report, peers, args.quick))
        papermill = None
        if "training" in only and home is not None:
            papermill = _guard(report, "training", lambda: lifecycle.training(report, home, args.quick))[1]
        if "coldstart" in only and home is not None:
            big, _ = _guard(report, f"{mb} MB version", lambda: _big_version(home, mb))
            _guard(report, "coldstart", lambda: lifecycle.cold_start(report, home, args.quick, mlflow_start,
                                                                     mb if big else 0, peers))
        if "localruntime" in only and home is not None:
            _guard(report, "localruntime", lambda: local_runtime.local_runtime(report, home, "first", args.quick))
        if "metadata" in only:
            _guard(report, "metadata", lambda: metadata_rows.metadata(report, args.quick))
        if "ui" in only:
            _guard(report, "ui", lambda: ui_bench.ui(report, args.quick))
        if "growth" in only:
            _guard(report, "growth", lambda: metadata_rows.growth(report, args.quick))
        if "depllist" in only:
            _guard(report, "depllist", lambda: depl_list.depl_list(report, args.quick))
        if "files" in only:
            _guard(report, "files", lambda: files_bench.files(report, args.quick))
        if "filescale" in only:
            _guard(report, "filescale", lambda: files_scale.files_scale(report, args.quick))
        if "lightweight" in only:
            _guard(report, "lightweight", lambda: lightweight_bench.lightweight(report, args.quick))
        if "swarm" in only:
            _guard(report, "swarm", lambda: swarm_bench.swarm_training(report, args.quick, papermill,
                                                                       args.swarm_build_base))
    finally:
        if home is not None:
            home.close()
    seconds = time.perf_counter() - start
    console.width = max(console.width, 150)
    report.print()
    report.write(Path(args.output), seconds)
    say(f"written {args.output} ({seconds:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
