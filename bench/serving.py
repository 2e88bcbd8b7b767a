"""Sections 1 and 2: one replica vs MLflow vs the floor; direct vs the Atoll router vs nginx.

Pinning (2+ cores): the server under load on CPU 0, hey (and the proxies) on
CPU 1, so the load generator does not steal the server's core; all of them
at niceness -10 when run as root (:data:`bench.tools.NICE`), so other work on
a shared machine disturbs every contender less, and alike. With two
replicas, one replica per core and hey/proxies unpinned (there is no third
core; every configuration gets the same placement).

Every configuration is warmed up, then measured in interleaved rounds (all
configurations once per round) and the median of the rounds is reported.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import peers as peers_mod
from bench.atoll_flow import AtollHome
from bench.report import Report, Row
from bench.tools import (
    ALL_CPUS,
    LOAD_CPU,
    NCPU,
    SERVER_CPU,
    WORK,
    Load,
    Proc,
    ensure_debian,
    fmt,
    free_port,
    hey,
    median_load,
    pin,
    requests_for,
    say,
    wait_predict,
)

ROW = peers_mod.ROW


@dataclass
class Target:
    """A thing to load: one or several URLs (several = hey split across them)."""

    name: str
    urls: list[str]
    body: bytes
    hey_cpus: str | None = LOAD_CPU
    rps_estimate: float = 0.0
    headers: tuple[str, ...] = ()  # e.g. the replica secret, the router's API key
    cpu_pids: tuple[int, ...] = ()  # a proxy's processes: their CPU time per request is reported


def _cpu_seconds(pids: tuple[int, ...]) -> float:
    """User + system CPU seconds spent so far by ``pids`` (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _run_rounds(targets: list[Target], concurrencies: tuple[int, ...], rounds: int, seconds: float,
                on_round: Callable[[int], None] | None = None,
                cpu: dict[tuple[str, int], list[float]] | None = None) -> dict[tuple[str, int], Load]:
    """Warm up every target, then ``rounds`` interleaved passes; field-wise medians per (target, c).

    ``cpu``, when given, receives per (target, c) the CPU microseconds per request that the
    target's ``cpu_pids`` spent in each round.
    """
    for target in targets:
        warm = hey(target.urls, target.body, 300, 8, cpus=target.hey_cpus, headers=target.headers)
        if warm.errors:
            raise RuntimeError(f"{target.name}: {warm.errors} errors while warming up")
        target.rps_estimate = warm.rps
    runs: dict[tuple[str, int], list[Load]] = {}
    for r in range(rounds):
        if on_round:
            on_round(r)
        for target in targets:
            for c in concurrencies:
                # c=1 runs slower than the warm-up's c=8: size it on a third of the estimate.
                estimate = target.rps_estimate / 3 if c == 1 else target.rps_estimate
                n = requests_for(seconds, estimate, c)
                before = _cpu_seconds(target.cpu_pids)
                load = hey(target.urls, target.body, n, c, cpus=target.hey_cpus, headers=target.headers)
                runs.setdefault((target.name, c), []).append(load)
                if cpu is not None and target.cpu_pids and load.n:
                    cpu.setdefault((target.name, c), []).append(
                        (_cpu_seconds(target.cpu_pids) - before) * 1e6 / load.n)
    return {key: median_load(loads) for key, loads in runs.items()}


def _raw(report: Report, section: str, results: dict[tuple[str, int], Load]) -> None:
    for (name, c), load in results.items():
        report.raw_line(section, f"{name:<22} c={c:<3} {load.rps:8.1f} req/s  p50 {load.p50:7.2f} ms  "
                                 f"p99 {load.p99:7.2f} ms  ({load.n} requests, {load.errors} errors)")


def serving(report: Report, home: AtollHome, peers: peers_mod.Peers, quick: bool) -> float:
    """1. One Atoll replica vs ``mlflow models serve -w 1`` vs the floor app; MLflow's start-up seconds."""
    section = "1. serving (1-row JSON body)"
    replica = home.replicas("svc1")[0]
    pin(int(replica["pid"]), SERVER_CPU)
    mlflow_port, floor_port = free_port(), free_port()
    mlflow = peers_mod.start_mlflow(peers, mlflow_port)
    floor = peers_mod.start_floor(peers, floor_port)
    try:
        mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"
        floor_url = f"http://127.0.0.1:{floor_port}/predict"
        say("waiting for mlflow models serve (its imports are slow) and the floor app")
        wait_predict(floor_url, ROW, 60, floor)
        started = wait_predict(mlflow_url, peers_mod.MLFLOW_ROW, 300, mlflow)
        report.raw_line(section, f"mlflow models serve answered {started:.1f}s after it was started")
        targets = [
            Target("atoll replica", [replica["url"] + "/predict"], ROW, headers=(home.replica_header("svc1"),)),
            Target("mlflow models serve", [mlflow_url], peers_mod.MLFLOW_ROW),
            Target("floor (bare uvicorn)", [floor_url], ROW),
        ]
        concurrencies = (1, 8, 32)
        rounds = 1 if quick else 3
        say(f"serving: {rounds} interleaved round(s) x {len(targets)} servers x c={concurrencies}")
        results = _run_rounds(targets, concurrencies, rounds, 0.6 if quick else 2.5)
    finally:
        mlflow.stop()
        floor.stop()
    _raw(report, section, results)
    for c in concurrencies:
        a, m, f = (results[(t.name, c)] for t in targets)
        report.add(
            Row(f"serving c={c}: req/s vs MLflow", fmt(a.rps), f"MLflow {fmt(m.rps)}", a.rps / m.rps, ">= 2x",
                a.rps / m.rps >= 2),
            Row(f"serving c={c}: p99 vs MLflow", fmt(a.p99, "ms"), f"MLflow {fmt(m.p99, 'ms')}", a.p99 / m.p99,
                "<= 1x", a.p99 <= m.p99),
            Row(f"serving c={c}: req/s vs floor", fmt(a.rps), f"floor {fmt(f.rps)}", a.rps / f.rps,
                ">= 0.67x (1.5x)", a.rps * 1.5 >= f.rps),
        )
    return started


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
{servers}
}}
"""

NGINX_SERVER = """\
    upstream replicas{i} {{
{upstreams}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://replicas{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header x-atoll-replica-secret "{secret}";
        }}
    }}
"""


def start_nginx(groups: dict[int, list[str]], secrets: dict[int, str]) -> tuple[Proc, dict[int, int]]:
    """One nginx (1 worker, like the router's one process) proxying each group of replica URLs on its own port."""
    work = WORK / "nginx"
    work.mkdir(parents=True, exist_ok=True)
    ports = {key: free_port() for key in groups}
    servers = []
    for key, urls in groups.items():
        upstreams = "\n".join(f"        server {u.removeprefix('http://')};" for u in urls)
        servers.append(NGINX_SERVER.format(i=key, upstreams=upstreams, port=ports[key], secret=secrets[key]))
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, servers="\n".join(servers)))
    binary = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "nginx"
    proc = Proc([binary, "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")], work / "nginx.out")
    return proc, ports


def router(report: Report, home: AtollHome, quick: bool) -> None:
    """2. Direct vs the Atoll router vs nginx, 1 and 2 replicas."""
    section = "2. router (1-row JSON body)"
    one = home.replicas("svc1")
    two = home.replicas("svc2")
    if len(two) < 2:
        raise RuntimeError(f"svc2 has {len(two)} healthy replicas, expected 2")
    router_pid = home.router_pid()
    have_nginx = ensure_debian("nginx", "nginx-light")
    secrets = {n: home.replica_header(f"svc{n}").partition(": ")[2] for n in (1, 2)}
    nginx, ports = (start_nginx({1: [r["url"] for r in one], 2: [r["url"] for r in two]}, secrets)
                    if have_nginx else (None, {}))
    # (label, replicas, the CPU of each replica, the CPU of the proxies and hey, target of req/s vs direct)
    placements = [
        ("1 replica(s)", one, [SERVER_CPU], LOAD_CPU, 0.85),
        # one replica per core, proxies and hey unpinned: the proxy's CPU comes out of the replicas'
        ("2 replica(s)", two, ["0", "1"], None, None),
        # the fallback on a 2-core machine: both replicas on one core, proxy and hey on the other
        ("2 replica(s), replicas on 1 core", two, [SERVER_CPU, SERVER_CPU], LOAD_CPU, 0.85),
    ] if NCPU >= 2 else [("1 replica(s)", one, [None], None, 0.85), ("2 replica(s)", two, [None, None], None, 0.85)]
    results: dict[tuple[str, int], Load] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    try:
        if nginx is not None:
            for key in ports:
                wait_predict(f"http://127.0.0.1:{ports[key]}/predict", ROW, 30, nginx)
        rounds = 1 if quick else 3
        concurrencies = (1, 8)
        for label, reps, replica_cpus, proxy_cpu, _ in placements:
            for rep, cpus in zip(reps, replica_cpus, strict=True):
                pin(int(rep["pid"]), cpus)
            if router_pid:
                pin(router_pid, proxy_cpu or ALL_CPUS)
            if nginx is not None:
                _pin_tree(nginx.pid, proxy_cpu or ALL_CPUS)
            n_rep = len(reps)
            depl = f"svc{n_rep}"
            targets = [Target(f"direct {label}", [r["url"] + "/predict" for r in reps], ROW, proxy_cpu,
                              headers=(home.replica_header(depl),)),
                       Target(f"atoll router {label}", [f"{home.router_url}?project={home.proj}&deploy={depl}"],
                              ROW, proxy_cpu, headers=(home.key_header(),),
                              cpu_pids=(router_pid,) if router_pid else ())]
            if nginx is not None:
                targets.append(Target(f"nginx {label}", [f"http://127.0.0.1:{ports[n_rep]}/predict"], ROW,
                                      proxy_cpu, cpu_pids=_tree(nginx.pid)))
            say(f"router, {label}: {rounds} round(s) x {len(targets)} paths x c={concurrencies}")
            results.update(_run_rounds(targets, concurrencies, rounds, 0.6 if quick else 2.0, cpu=cpu))
    finally:
        if nginx is not None:
            nginx.stop()
    _raw(report, section, results)
    if not have_nginx:
        report.note("nginx could not be installed: the router rows have no nginx figure")
    for label, _, _, _, target in placements:
        _router_rows(report, label, target, results, cpu)
    if NCPU >= 2:
        report.note("router, 2 replicas: with one replica per core the proxy and hey run on the replicas' cores, "
                    "so every CPU microsecond the proxy spends per request (row 'proxy CPU per request') is "
                    "taken from the replicas; 2 cores cannot give each process its own core. The row "
                    "'replicas on 1 core' pins both replicas to CPU 0 and the proxy and hey to CPU 1, as the "
                    "1-replica row does: that is where the >= 0.85x target is checked.")


def _router_rows(report: Report, label: str, target: float | None, results: dict[tuple[str, int], Load],
                 cpu: dict[tuple[str, int], list[float]]) -> None:
    d1, a1 = results[(f"direct {label}", 1)], results[(f"atoll router {label}", 1)]
    d8, a8 = results[(f"direct {label}", 8)], results[(f"atoll router {label}", 8)]
    n1 = results.get((f"nginx {label}", 1))
    n8 = results.get((f"nginx {label}", 8))
    added = a1.p50 - d1.p50
    added99 = a1.p99 - d1.p99
    ratio = a8.rps / d8.rps
    report.add(
        Row(f"router {label} c=8: req/s vs direct", f"{fmt(a8.rps)} ({ratio:.2f}x)",
            f"nginx {fmt(n8.rps)} ({n8.rps / d8.rps:.2f}x)" if n8 else "n/a", ratio,
            f">= {target}x" if target else "(none: CPU-bound, see note)",
            ratio >= target if target else None),
        Row(f"router {label} c=1: added p50", f"+{fmt(added, 'ms')}",
            f"nginx +{fmt(n1.p50 - d1.p50, 'ms')}" if n1 else "n/a", None, "<= 1 ms", added <= 1.0),
        Row(f"router {label} c=1: added p99", f"+{fmt(added99, 'ms')}",
            f"nginx +{fmt(n1.p99 - d1.p99, 'ms')}" if n1 else "n/a", None, "(none)", None),
    )
    router_cpu = cpu.get((f"atoll router {label}", 8))
    nginx_cpu = cpu.get((f"nginx {label}", 8))
    if router_cpu:
        mine = statistics.median(router_cpu)
        theirs = statistics.median(nginx_cpu) if nginx_cpu else None
        report.add(Row(f"router {label} c=8: proxy CPU per request", f"{mine:.0f} us",
                       f"nginx {theirs:.0f} us" if theirs else "n/a", mine / theirs if theirs else None,
                       "(none)", None))


def _tree(pid: int) -> tuple[int, ...]:
    """A process and its direct children (nginx's worker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return (pid, *(int(child) for child in children))


def _pin_tree(pid: int, cpus: str) -> None:
    """Pin a process and its direct children (nginx's worker)."""
    for member in _tree(pid):
        pin(member, cpus)
