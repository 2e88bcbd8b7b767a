"""Sections 3 and 4: training overhead over plain papermill, and deployment cold start.

Training: ``atoll train new`` (CLI to FINISHED: record, staging, runner,
papermill, publish, executed notebook stored) against plain ``papermill`` on
the same notebook, with the same environment (the build's python and its
kernel) and the same staged inputs: a copy of the first training's task
directory, minus its training record so the notebook's ``Publisher()``
publishes a fresh version instead of the training's. Runs interleave.

Cold start: ``atoll depl new`` is started and, from that instant, its
balanced port is polled with a prediction (and an API key) until one answers 200.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench.atoll_flow import IRIS, MODEL, AtollHome
from bench.peers import ROW, Peers, start_floor
from bench.report import Report, Row
from bench.tools import WORK, fmt, free_port, post, say, wait_predict


def training(report: Report, home: AtollHome, quick: bool) -> float | None:
    """3. ``atoll train new`` vs ``papermill`` (local runtime); papermill's median seconds."""
    section = "3. training overhead"
    python = home.build_python()
    source = home.task_dir("first")
    if not (source / "app" / "notebooks" / "train.ipynb").exists():
        report.note(f"training overhead not measured: the task directory {source} was not kept")
        return None
    work = WORK / "papermill-task"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work, symlinks=True)
    _writable(work)
    (work / "atoll" / "meta" / "training.json").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATOLL_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(python.parent.parent),
               ATOLL_HOME=str(home.home), ATOLL_TASK_DIR=str(work),
               ATOLL_STORE_CONFIG=str(work / "atoll" / "secret" / "store.json"), PYTHONUNBUFFERED="1",
               JUPYTER_DATA_DIR=str(work / "atoll" / "jupyter"))
    atoll_times, pm_times = [], []
    rounds = 1 if quick else 3
    for r in range(rounds):
        say(f"training round {r + 1}/{rounds}: atoll train new, then papermill")
        atoll_times.append(home.train(f"bench-{r}"))
        start = time.perf_counter()
        proc = subprocess.run([str(python), "-m", "papermill", "notebooks/train.ipynb", str(work / "out.ipynb"),
                               "-p", "C", "1.0", "-k", "python3", "--no-progress-bar"],
                              cwd=work / "app", env=env, capture_output=True, text=True, timeout=600, check=False)
        pm_times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"papermill failed:\n{proc.stderr[-3000:]}")
    a, p = statistics.median(atoll_times), statistics.median(pm_times)
    report.raw_line(section, f"atoll train new  runs {', '.join(f'{t:.2f}' for t in atoll_times)} s  median {a:.2f} s")
    report.raw_line(section, f"papermill        runs {', '.join(f'{t:.2f}' for t in pm_times)} s  median {p:.2f} s")
    report.add(Row("training: atoll train new vs papermill (local)", fmt(a, "s"), f"papermill {fmt(p, 's')}",
                   a / p, "<= +1.5 s", a - p <= 1.5))
    return p


def _writable(root: Path) -> None:
    """Staged inputs are read-only; the copy must be removable later."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def _cold_start(home: AtollHome, name: str, version: str) -> tuple[float, float]:
    """(seconds to the first 200 prediction, seconds ``depl new`` took); the deployment is removed after."""
    port = free_port()
    args = [home.atoll, "depl", "new", "--name", name, "--proj", home.proj, "--nb", "notebooks/predict.ipynb",
            "--movers", f"{MODEL}:{version}", "-n", "1", "--port", str(port)]
    home.deployments.add(name)
    header, _, value = home.key_header().partition(": ")  # the balanced port wants the router's API key
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=IRIS, env=home.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/predict"
    try:
        deadline = start + 300
        while post(url, ROW, timeout=2, headers={header: value})[0] != 200:
            if proc.poll() not in (None, 0) or time.perf_counter() > deadline:
                out = proc.communicate(timeout=30)[0] if proc.poll() is not None else ""
                raise RuntimeError(f"atoll depl new gave no prediction (exit {proc.returncode}):\n{out[-2000:]}")
            time.sleep(0.01)
        first = time.perf_counter() - start
        out, _ = proc.communicate(timeout=300)
        cli = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"atoll depl new failed:\n{out[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    home.remove(name)
    return first, cli


def _floor_start(peers: Peers) -> float:
    """Seconds from starting the floor app (python + scikit-learn + uvicorn) to its first 200 answer."""
    port = free_port()
    start = time.perf_counter()
    proc = start_floor(peers, port, cpus=None, nice=False)  # like depl new: default priority
    try:
        wait_predict(f"http://127.0.0.1:{port}/predict", ROW, 120, proc, poll=0.01)
        return time.perf_counter() - start
    finally:
        proc.stop()


def cold_start(report: Report, home: AtollHome, quick: bool, mlflow_start: float | None, big_mb: int,
               peers: Peers | None) -> None:
    """4. ``atoll depl new`` -> first prediction: iris, and (``big_mb`` > 0) version ``big`` with a big file.

    The floor app's own start (same model, same scikit-learn, no Atoll) runs
    interleaved as the peer: it is the part of a cold start that belongs to
    Python and the model's library, whatever serves it.
    """
    section = "4. cold start"
    rounds = 1 if quick else 3
    runs: dict[str, tuple[list[float], list[float]]] = {"iris": ([], [])}
    if big_mb:
        runs[f"{big_mb} MB"] = ([], [])
    floor: list[float] = []
    for r in range(rounds):
        say(f"cold start round {r + 1}/{rounds}: {' then '.join(runs)}" + (", floor app" if peers else ""))
        for label, (firsts, clis) in runs.items():
            first, cli = _cold_start(home, f"cold-{r}-{len(firsts)}-{'big' if 'MB' in label else 'iris'}",
                                     "big" if "MB" in label else "first")
            firsts.append(first)
            clis.append(cli)
        if peers is not None:
            floor.append(_floor_start(peers))
    med = statistics.median
    if floor:
        report.raw_line(section, f"floor   first prediction after {', '.join(f'{t:.2f}' for t in floor)} s "
                                 f"(median {med(floor):.2f}): python + scikit-learn + unpickle + uvicorn")
    if mlflow_start:
        report.raw_line(section, f"mlflow  first prediction after {mlflow_start:.2f} s (one run, section 1)")
    for label, (firsts, clis) in runs.items():
        report.raw_line(section, f"{label:<7} first prediction after {', '.join(f'{t:.2f}' for t in firsts)} s "
                                 f"(median {med(firsts):.2f}); depl new returned after "
                                 f"{', '.join(f'{t:.2f}' for t in clis)} s")
    iris = med(runs["iris"][0])
    peers_text = ([f"floor {fmt(med(floor), 's')}"] if floor else []) + (
        [f"MLflow {fmt(mlflow_start, 's')}"] if mlflow_start else [])
    report.add(Row("cold start: depl new -> 1st prediction (iris)", fmt(iris, "s"), "; ".join(peers_text) or "n/a",
                   iris / med(floor) if floor else None, "<= 3 s", iris <= 3))
    if big_mb:
        big = med(runs[f"{big_mb} MB"][0])
        report.add(Row(f"cold start: same with a {big_mb} MB model file", fmt(big, "s"), f"iris {fmt(iris, 's')}",
                       big / iris, "(none)", None))
    if mlflow_start:
        report.note("cold start: the ratio is against the floor app's own start; the MLflow figure is "
                    "`mlflow models serve` started -> first answer, measured once in section 1 (pinned, 1 worker)")
