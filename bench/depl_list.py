"""Section 7: ``atoll depl list`` with 200 deployments.

A throwaway ``ATOLL_HOME`` (SQLite store) holds project ``bench`` and 200
deployment records, each with the snapshots a real one carries (its build and
one model version with two files). Timed: the whole command as a user runs it
(``atoll depl list --proj bench``, table and ``-o json``), beside
``atoll version`` (the CLI's start-up, the floor of any command), median of 5;
and the listing itself in-process (``MetadataStore.list``, what the command
calls). Only records are read: listing never asks the replicas anything.
Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the shared bench machine) every
command compiles its modules first: seconds that an installed Atoll does not pay.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from atoll.domain.records import BuildVersion, Deployment, ModelVersion, Project, StoredFile
from atoll.metadata.base import get_metadata_store
from bench.report import Report, Row
from bench.tools import WORK, fmt, run, say

COUNT = 200


def _median_s(cmd: list[str], env: dict[str, str], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(cmd, env=env, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def depl_list(report: Report, quick: bool) -> None:
    """Run the section; rows and raw figures go to ``report``."""
    section = "7. depl list"
    home = WORK / f"depl-list-home-{os.getpid()}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    env["ATOLL_HOME"] = str(home)
    atoll = str(Path(sys.executable).parent / "atoll")
    try:
        store = get_metadata_store(f"sqlite:///{home / 'atoll.db'}")
        try:
            store.create(Project(name="bench"))
            build = BuildVersion(name="latest", proj="bench", code_hash="0" * 64, digest="sha256:" + "1" * 64)
            version = ModelVersion(name="v1", model="iris", details={"metrics": {"acc": 0.97}},
                                   files=[StoredFile(name="clf.pkl", size=1234, sha256="2" * 64),
                                          StoredFile(name="report.json", size=56, sha256="3" * 64)])
            for i in range(COUNT):
                store.create(Deployment(name=f"svc-{i:03d}", proj="bench", notebook="notebooks/predict.ipynb",
                                        n_tasks=2, bvers=build, movers=[version]))
            listed = []
            for _ in range(5):
                start = time.perf_counter()
                found = store.list(Deployment, scope="bench")
                listed.append(time.perf_counter() - start)
            if len(found) != COUNT:
                raise RuntimeError(f"listed {len(found)} deployments, expected {COUNT}")
            in_process = statistics.median(listed)
        finally:
            store.close()
        say(f"depl list: {COUNT} deployments, median of 5 runs of each command")
        repeat = 3 if quick else 5
        floor = _median_s([atoll, "version"], env, repeat)
        table = _median_s([atoll, "depl", "list", "--proj", "bench"], env, repeat)
        as_json = _median_s([atoll, "-o", "json", "depl", "list", "--proj", "bench"], env, repeat)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report.raw_line(section, f"atoll version {floor:.3f} s; depl list (table) {table:.3f} s; "
                             f"depl list -o json {as_json:.3f} s; in-process list {in_process * 1000:.1f} ms; "
                             f"{COUNT} deployments; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}")
    report.add(
        Row(f"depl list with {COUNT} deployments: the listing in-process", fmt(in_process * 1000, "ms"), "",
            None, "(none)", None),
        Row(f"depl list with {COUNT} deployments (table)", fmt(table, "s"), f"atoll version {fmt(floor, 's')}",
            table / floor, "(none)", None),
        Row(f"depl list with {COUNT} deployments (-o json)", fmt(as_json, "s"), f"atoll version {fmt(floor, 's')}",
            as_json / floor, "(none)", None),
    )
