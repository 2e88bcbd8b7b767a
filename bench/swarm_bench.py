"""Section 3b: ``atoll train new`` on the swarm runtime (Docker), when an engine with an active swarm is here.

Its own throwaway ATOLL_HOME with ``container_manager.type: swarm`` and a
namespace unique to the run; the project image is built once (``atoll proj
build``, cached layers). Every Docker object made under that namespace is
removed by exact name or by the namespace label at the end. The peer is plain
papermill on the host (section 3's median): the difference is what a
container-per-training costs on top of the notebook itself.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess

from bench.atoll_flow import AtollHome
from bench.report import Report, Row
from bench.tools import fmt, say

NAMESPACE_LABEL = "io.atoll.namespace"


def swarm_available() -> str | None:
    """None when an engine with an active swarm manager answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    try:
        out = subprocess.run(["docker", "info", "--format", "{{json .Swarm}}"], capture_output=True, text=True,
                             timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if out.returncode != 0:
        return "no Docker engine answers"
    try:
        swarm = json.loads(out.stdout)
    except ValueError:
        return "docker info gave no swarm state"
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        return f"swarm not active on this engine ({swarm.get('LocalNodeState')})"
    return None


def base_image_current() -> bool:
    """True when Atoll's base image holds this checkout's code (else the first build rebuilds it: minutes)."""
    from atoll.config import load_config
    from atoll.containers.swarm.engine import connect
    from atoll.containers.swarm.images import base_image_current as current

    config = load_config()
    client = connect(config)
    try:
        return current(client, config)
    finally:
        client.close()


def _docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    return proc.stdout


def _cleanup(namespace: str, proj: str) -> None:
    """Remove what the run made: by the namespace label, and the project image by name."""
    label = f"label={NAMESPACE_LABEL}={namespace}"
    for kind in ("service", "container", "secret", "volume"):
        ls = ["ps", "-a", "-q"] if kind == "container" else [kind, "ls", "-q"]
        ids = _docker(*ls, "--filter", label).split()
        if ids:
            rm = ["rm", "-f"] if kind == "container" else [kind, "rm"]
            _docker(*rm, *ids)
    if namespace in _docker("network", "ls", "--format", "{{.Name}}").split():
        _docker("network", "rm", namespace)
    _docker("image", "rm", f"atoll/{proj}:latest")


def swarm_training(report: Report, quick: bool, papermill: float | None, build_base: bool) -> None:
    """``atoll train new`` on swarm: wall seconds, beside plain papermill on the host.

    When the base image is stale the section is skipped unless ``build_base``
    (``--swarm-build-base``): rebuilding it takes minutes, outside the bench's budget.
    """
    why = swarm_available()
    if why is None and not build_base and not base_image_current():
        why = ("Atoll's base image is missing or older than this checkout; `atoll image build-base` "
               "(or `bench/run --swarm-build-base`) first")
    if why is not None:
        report.note(f"swarm training not measured: {why}")
        return
    namespace, proj = f"atoll-bench{os.getpid()}", "iris-bench"
    home = AtollHome(proj=proj, label="-swarm", extra_env={
        "ATOLL_CONTAINER_MANAGER__TYPE": "swarm",
        "ATOLL_CONTAINER_MANAGER__NAMESPACE": namespace,
    })
    try:
        say(f"swarm: building the project image (namespace {namespace})")
        home.setup()
        times = []
        rounds = 1 if quick else 3
        for r in range(rounds + 1):  # the first one warms the engine's caches: not counted
            say(f"swarm training {r}/{rounds}")
            seconds = home.train(f"sw-{r}")
            if r:
                times.append(seconds)
    finally:
        home.close()
        _cleanup(namespace, proj)
    med = statistics.median(times)
    report.raw_line("3. training overhead", f"atoll train new (swarm)  runs {', '.join(f'{t:.2f}' for t in times)} s  "
                                            f"median {med:.2f} s (one warm-up run not counted)")
    report.add(Row("training: atoll train new (swarm) vs papermill (host)", fmt(med, "s"),
                   f"papermill {fmt(papermill, 's')}" if papermill else "n/a",
                   med / papermill if papermill else None, "(none: target is local)", None))
