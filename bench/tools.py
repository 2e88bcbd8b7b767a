"""Shared plumbing of the benchmarks: processes, pinning, load generation, venvs.

Every process started here runs in its own session and is stopped by its
process-group id (the pid we got back), never by name. Every load is bounded
twice: ``hey -n N -t T`` and a subprocess timeout.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
console = Console(highlight=False)
NCPU = os.cpu_count() or 1
SERVER_CPU = "0"
LOAD_CPU = "1" if NCPU > 1 else "0"
ALL_CPUS = f"0-{NCPU - 1}"


def say(message: str) -> None:
    """One progress line, dimmed, with the time."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(cmd: Sequence[str], timeout: float = 600, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded), capturing its output."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return proc


# Everything under measurement (servers, proxies, hey) runs at this niceness when we are root, so that
# other work on a shared machine disturbs every contender less, and all of them alike.
NICE = -10 if hasattr(os, "geteuid") and os.geteuid() == 0 else 0


def taskset(cpus: str | None, nice: bool = True) -> list[str]:
    """Prefix pinning a command to ``cpus`` and (``nice``) raising its priority (see NICE)."""
    prefix = ["nice", "-n", str(NICE)] if nice and NICE and shutil.which("nice") else []
    if not cpus or NCPU < 2 or shutil.which("taskset") is None:
        return prefix
    return [*prefix, "taskset", "-c", cpus]


def pin(pid: int, cpus: str | None) -> None:
    """Pin every thread of a running process to ``cpus`` and give each the NICE priority (best effort)."""
    if NICE:
        for tid in _threads(pid):
            try:
                os.setpriority(os.PRIO_PROCESS, tid, NICE)
            except OSError:
                pass
    if not cpus or NCPU < 2 or shutil.which("taskset") is None:
        return
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, timeout=10, check=False)


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


class Proc:
    """A process we started, in its own session, stopped by its process-group id."""

    def __init__(self, cmd: Sequence[str], log: Path, cpus: str | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None, nice: bool = True) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.cmd = [*taskset(cpus, nice), *cmd]
        self.popen = subprocess.Popen(self.cmd, stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                      cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the group, SIGKILL it after ``timeout``."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        self._out.close()

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def post(url: str, body: bytes, timeout: float = 5, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One POST; (status, body), status 0 when nothing answered."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def wait_predict(url: str, body: bytes, timeout: float, proc: Proc | None = None, poll: float = 0.02) -> float:
    """Poll ``url`` with POST ``body`` until it answers 200; seconds waited.

    Raises:
        RuntimeError: no 200 within ``timeout`` or ``proc`` died.
    """
    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        status, _ = post(url, body, timeout=2)
        if status == 200:
            return time.perf_counter() - start
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.cmd[0]} exited before answering:\n{proc.tail()}")
        time.sleep(poll)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s" + (f":\n{proc.tail()}" if proc else ""))


@dataclass
class Load:
    """One hey run: throughput and latency percentiles (ms)."""

    rps: float
    p50: float
    p99: float
    n: int
    errors: int


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def _parse_hey_csv(text: str) -> list[tuple[float, float, int]]:
    """(response time s, offset s, status) per request from ``hey -o csv``."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append((float(row["response-time"]), float(row["offset"]), int(row["status-code"])))
        except (KeyError, ValueError):
            continue
    return rows


def hey(urls: str | Sequence[str], body: bytes, n: int, c: int, cpus: str | None = LOAD_CPU,
        timeout: float = 120, headers: Sequence[str] = ()) -> Load:
    """Load ``urls`` with ``n`` POSTs at concurrency ``c`` (split evenly over several urls, run at once).

    Percentiles are computed from every request's time (``hey -o csv``), and
    throughput is successful requests over the wall time of the whole load.
    """
    url_list = [urls] if isinstance(urls, str) else list(urls)
    body_file = WORK / "body.json"
    body_file.parent.mkdir(parents=True, exist_ok=True)
    body_file.write_bytes(body)
    procs = []
    per_n, per_c = max(1, n // len(url_list)), max(1, c // len(url_list))
    start = time.perf_counter()
    for url in url_list:
        # hey takes headers on its command line only: a bench's throwaway key/secret, on loopback.
        extra = [arg for header in headers for arg in ("-H", header)]
        cmd = [*taskset(cpus), "hey", "-n", str(max(per_n, per_c)), "-c", str(per_c), "-t", "10",
               "-m", "POST", "-T", "application/json", "-D", str(body_file), "-o", "csv", *extra, url]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True))
    rows: list[tuple[float, float, int]] = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                if other.poll() is None:
                    os.killpg(other.pid, signal.SIGKILL)
                    other.wait(5)
            raise RuntimeError(f"hey did not finish within {timeout}s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"hey failed: {err[-500:]}")
        rows.extend(_parse_hey_csv(out))
    wall = time.perf_counter() - start
    ok = sorted(t * 1000 for t, _, s in rows if s == 200)
    span = max((o + t for t, o, _ in rows), default=wall)  # hey's own clock: first request to last answer
    return Load(rps=len(ok) / max(span, 1e-9), p50=_percentile(ok, 0.5), p99=_percentile(ok, 0.99),
                n=len(rows), errors=len(rows) - len(ok))


def median_load(loads: Iterable[Load]) -> Load:
    """Field-wise median of several runs."""
    items = list(loads)
    return Load(rps=statistics.median(x.rps for x in items), p50=statistics.median(x.p50 for x in items),
                p99=statistics.median(x.p99 for x in items), n=sum(x.n for x in items),
                errors=sum(x.errors for x in items))


def requests_for(seconds: float, rps_estimate: float, c: int, lo: int = 200, hi: int = 40000) -> int:
    """How many requests make a run of about ``seconds`` at the estimated rate."""
    return int(min(hi, max(lo, c * 4, rps_estimate * seconds)))


def ensure_debian(binary: str, package: str) -> bool:
    """Install ``package`` with apt when ``binary`` is missing; True when the binary is there."""
    if shutil.which(binary) or Path(f"/usr/sbin/{binary}").exists():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        say(f"[yellow]{binary} missing and apt-get unusable: rows needing it are skipped[/yellow]")
        return False
    say(f"installing {package} (Debian) for {binary}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, capture_output=True, env=env, timeout=600, check=False).returncode:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600, check=False)
        subprocess.run(install, capture_output=True, env=env, timeout=600, check=False)
    return bool(shutil.which(binary) or Path(f"/usr/sbin/{binary}").exists())


def uv_bin() -> str:
    """The uv executable: next to this Python (the project venv has it), else on PATH."""
    here = Path(sys.executable).parent / "uv"
    if here.exists():
        return str(here)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: run through `make bench` (the project venv has it)")
    return found


def uv_venv(name: str, requirements: Path) -> Path:
    """A venv under bench/.work with ``requirements`` installed (re-made when the file changes); its python."""
    venv = WORK / name
    python = venv / "bin" / "python"
    digest = hashlib.sha256(requirements.read_bytes() + b"compiled").hexdigest()[:16]
    stamp = venv / ".bench-stamp"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    say(f"setting up {name} from {requirements.name} (uv)")
    shutil.rmtree(venv, ignore_errors=True)
    uv = uv_bin()
    run([uv, "venv", "-q", "--python", f"{sys.version_info.major}.{sys.version_info.minor}", str(venv)])
    # Bytecode compiled up front, like Atoll's build environments: a peer must not pay for compiling
    # its libraries at every start (PYTHONDONTWRITEBYTECODE may be set).
    run([uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python), "-r", str(requirements)],
        timeout=900)
    stamp.write_text(digest)
    return python


def fmt(value: float, unit: str = "") -> str:
    """A figure with sensible digits."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()
