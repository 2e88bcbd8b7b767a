"""The supervisor of one local deployment: a detached process that outlives the CLI.

``python -m atoll.containers.local.supervisor RUN_DIR`` keeps the replicas of
one deployment running. :class:`~atoll.containers.local.services.LocalServices`
writes the desired state to ``RUN_DIR/spec.json`` (0600: it holds the
replicas' environment) and reads the supervisor's ``RUN_DIR/status.json``;
files are the whole protocol, so the CLI can come and go::

    RUN_DIR/spec.json          {"generation": g, "replicas": [...], "port", "timeout", ...}
    RUN_DIR/status.json        live replicas, the active generation, the last roll-out
    RUN_DIR/active.json        the spec of the generation that serves (0600; for adoption)
    RUN_DIR/supervisor.pid     "<pid> <start time>"
    RUN_DIR/logs/g<g>-<i>.log  what each replica printed

The supervisor

- starts the replicas of a new generation (all at once for a new deployment,
  one at a time for a redeploy: start new *i*, wait until healthy, stop old
  *i*); if a new replica exits or never gets healthy it stops the new ones,
  restarts the old ones it had already replaced, and reports the failure with
  the replica's log tail;
- abandons a roll-out (as if a replica had failed) when the process that
  deployed it (``spec["owner"]``: the CLI) is gone before every new replica
  is healthy, so a ``depl new`` cut short leaves nothing running and a
  redeploy cut short keeps the old replicas;
- health-checks ``GET /health`` and restarts a replica that exits, or that
  stays alive but unhealthy (its health checks failing or hanging) for more
  than ``healthcheck.unhealthy_after`` seconds since its last good answer,
  waiting 0.5 s, 1 s, 2 s... (at most 30 s) between attempts; a spec's ``restart``
  (``{"backoff", "limit", "stable_after"}``) sets the first wait and may give up
  after ``limit`` restarts in a row (``gave_up`` in the status, then it exits);
- writes the router's discovery file ``$ATOLL_HOME/run/deployments/<proj>/<name>.json``
  atomically on every change;
- with a ``port``, serves a small balancer on ``127.0.0.1:<port>`` that forwards
  every request to the healthy replicas in turn with the router's keep-alive
  client (:mod:`atoll._http.client`), retrying another replica when one
  cannot be reached.

SIGTERM stops the replicas (SIGTERM to each process group, SIGKILL after 5 s)
and removes the discovery file.

``--adopt`` starts a supervisor in place of one that died (SIGKILL, OOM) while
its replicas ran (:meth:`LocalServices.recover_service`): it takes over the
live replicas of the serving generation (watched by PID and start time, as
they are not its children), restarts its dead ones, stops every other
replica the dead supervisor left and resumes a roll-out it did not finish.

The local router (:mod:`atoll.islands.router`) is one such "replica": fixed ``host``/``port``,
the caller's environment (``inherit_env``), ``healthcheck.tls``, a bounded ``restart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from atoll.config import rotating_file_handler
from atoll.containers.local.process import (
    kill_group, log_tail, pid_alive, proc_start_time, read_json, write_json,
)
from atoll.containers.local.replica import Replica, tls_health
from atoll.errors import ConfigError

log = logging.getLogger("atoll.supervisor")

TICK = 0.2  # seconds between two looks at the replicas
STARTING_CHECK = 0.2  # health-check period while a replica starts...
STARTING_FAST = 0.05  # ...and during its first FAST_FOR seconds, when most replicas get ready:
FAST_FOR = 10.0  # a refused connection costs next to nothing, a late one costs a cold start
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0  # a replica healthy this long has its restart back-off reset
DRAIN = 1.0  # seconds between unpublishing a replica and stopping it


class Abandoned(Exception):
    """A roll-out given up because its deployer is gone."""


class Supervisor:
    """Keeps the replicas of ``RUN_DIR/spec.json`` running; see the module docstring."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.spec_path = run_dir / "spec.json"
        self.status_path = run_dir / "status.json"
        self.active_path = run_dir / "active.json"
        spec = read_json(self.spec_path) or {}
        self.project: str = spec.get("project", "")
        self.deployment: str = spec.get("deployment", "")
        self.discovery = Path(spec.get("discovery", run_dir / "discovery.json"))
        self.health: dict[str, float] = spec.get("healthcheck", {})
        restart = spec.get("restart") or {}
        self.backoff = float(restart.get("backoff", 0.5))
        self.restart_limit: int | None = restart.get("limit")
        self.stable_after = float(restart.get("stable_after", STABLE_AFTER))
        self.gave_up: str | None = None
        self.replicas: list[Replica] = []
        self.active_gen = 0
        self.active_spec: dict[str, Any] | None = None
        self.attempted_gen = 0
        self.rollout: dict[str, Any] = {}
        self.rolling: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.balancer: Any = None  # local.balancer.Balancer, imported only with a port
        self.balancer_handle: Any = None
        self.balancer_port: int | None = None
        self._last_written: bytes = b""
        self._pool: Any = None
        self.prespawned: list[Replica] = []
        self.owner: dict[str, Any] | None = None  # the deployer of the roll-out in progress

    def prespawn(self) -> None:
        """Spawn the replicas of a new deployment before anything else (imports, event loop).

        A fresh supervisor has no replicas, so its first roll-out starts them
        all at once anyway; doing it first lets Python and the model load in
        the replicas while this process sets up its loop, health checks and
        balancer. :meth:`_rollout` adopts them.
        """
        spec = read_json(self.spec_path)
        if not spec or int(spec.get("generation", 0)) < 1:
            return
        self.owner = spec.get("owner")
        try:
            for index in range(len(spec["replicas"])):
                if self._owner_gone():  # the roll-out reports it
                    raise RuntimeError("the deployer exited")
                self.prespawned.append(self._new(spec, index))
        except Exception:  # the roll-out spawns (and reports) again
            log.exception("cannot start the replicas of generation %s early", spec.get("generation"))
            for r in self.prespawned:
                r.stop()
                if r in self.replicas:
                    self.replicas.remove(r)
            self.prespawned = []

    def adopt(self) -> None:
        """Take over what a supervisor that died left running (``--adopt``; see the module docstring)."""
        status = read_json(self.status_path) or {}
        spec = read_json(self.spec_path) or {}
        gen = int(status.get("active_generation") or 0)
        # active.json, or the spec itself when it still describes the serving generation (an older supervisor)
        active = read_json(self.active_path) or (spec if int(spec.get("generation", 0)) == gen else {})
        live = {
            (item.get("generation"), item.get("index")): item
            for item in status.get("replicas", [])
            if pid_alive(item.get("pid"), item.get("start_time"))
        }
        if gen and int(active.get("generation", 0)) == gen:
            for index, replica_spec in enumerate(active["replicas"]):
                replica = Replica(replica_spec, gen, active["command"])
                item = live.pop((gen, index), None)
                if item is not None:
                    replica.adopt(item)
                    log.info("adopted %s (pid %s)", replica.name, item["pid"])
                else:
                    replica.spawn()
                    log.warning("restarted %s: it had ended with the supervisor that ran it", replica.name)
                replica.in_rollout = False
                self.replicas.append(replica)
            self.active_gen, self.active_spec = gen, active
            if active.get("port"):
                try:
                    self._serve_balancer(active["port"], active)
                except Exception:
                    log.exception("cannot serve the balancer on port %s again", active["port"])
        for item in live.values():  # an unfinished roll-out's replicas (it is resumed) or strays
            log.warning("stopping %s (generation %s) left by the supervisor that died", item["name"], item["generation"])
            kill_group(int(item["pid"]), item.get("start_time"))
        self.attempted_gen = self.active_gen
        rollout = status.get("rollout") or {}
        if rollout.get("generation") == spec.get("generation") and rollout.get("state") in ("done", "failed"):
            self.attempted_gen = max(self.attempted_gen, int(rollout["generation"]))  # ended: not redone
            self.rollout = rollout

    # main loop
    async def run(self) -> None:
        from atoll._http.client import Pool

        timeout = float(self.health.get("timeout", 2))
        self._pool = Pool(connect_timeout=timeout, timeout=timeout, max_idle=1)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            while not self.stopping.is_set():
                spec = read_json(self.spec_path)
                if spec is None and not self.replicas and self.rolling is None:
                    log.warning("no spec and nothing running (the deployment was discarded): exiting")
                    break
                if spec and spec.get("generation", 0) > self.attempted_gen and self.rolling is None:
                    self.attempted_gen = spec["generation"]
                    self.rolling = asyncio.create_task(self._rollout(spec))
                await self._tick()
                self._publish()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), self._pause())
        finally:
            if self.rolling is not None:
                self.rolling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.rolling
            await asyncio.gather(*(asyncio.to_thread(r.stop) for r in self.replicas))
            self.replicas = []
            if self.balancer_handle is not None:
                self.balancer_handle.stop(5)
            with contextlib.suppress(FileNotFoundError):
                self.discovery.unlink()
            self._publish(final=True)
            self._pool.close()

    def _pause(self) -> float:
        """Seconds until the next look: TICK, or less when a starting replica is due a check."""
        due = [r.next_check for r in self.replicas if r.proc is not None and r.state == "starting"]
        if not due:
            return TICK
        return min(TICK, max(0.01, min(due) - time.monotonic()))

    async def _tick(self) -> None:
        now = time.monotonic()
        checks = []
        for r in list(self.replicas):
            if r.proc is not None and r.proc.poll() is not None:
                self._exited(r, now)
            elif r.proc is None and r.next_restart is not None and now >= r.next_restart:
                r.restarts += 1
                r.streak += 1
                log.warning("restarting %s (restart %d)", r.name, r.restarts)
                r.spawn()
            elif r.proc is not None and now >= r.next_check:
                checks.append(self._check(r))
            if r.healthy_since is not None and now - r.healthy_since > self.stable_after:
                r.streak = 0
        if checks:
            await asyncio.gather(*checks)
        self._update_targets()

    def _update_targets(self) -> None:
        if self.balancer is not None:
            self.balancer.targets = tuple(("127.0.0.1", r.port) for r in self.replicas if r.state == "healthy")

    def _exited(self, r: Replica, now: float) -> None:
        code = r.proc.returncode if r.proc is not None else None
        if code is None:  # an adopted replica: not our child
            r.error = "ended (its exit status is unknown: adopted from a supervisor that died)"
        else:
            r.error = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        log.warning("%s %s", r.name, r.error)
        r.state = "failed"
        r.proc = None
        r.healthy_since = None
        if r.in_rollout:  # during a roll-out the roll-out decides
            return
        self._restart_later(r, now)

    def _restart_later(self, r: Replica, now: float) -> None:
        """Schedule the restart of ``r`` (ended) after its back-off, or give up past the restart limit."""
        if self.restart_limit is not None and r.streak >= self.restart_limit:
            self.gave_up = f"{r.name} {r.error}; gave up after {r.streak} restart(s) in a row"
            log.error("%s", self.gave_up)
            self.stopping.set()
            return
        r.next_restart = now + min(MAX_BACKOFF, self.backoff * 2**r.streak)

    async def _check(self, r: Replica) -> None:
        from atoll._http.client import UpstreamError

        interval = float(self.health.get("interval", 2))
        try:
            if self.health.get("tls"):
                ok = await tls_health(r.host, r.port, float(self.health.get("timeout", 2)))
            else:
                answer = await self._pool.request(r.host, r.port, "GET", b"/health", [], b"")
                ok = answer.status == 200
        except UpstreamError:
            ok = False
        now = time.monotonic()
        if r.proc is None:
            return
        if ok:
            if r.state != "healthy":
                r.healthy_since = now
                log.info("%s healthy %.2fs after its start", r.name, now - r.started_at)
            r.state, r.failures, r.error = "healthy", 0, None
            r.last_ok = now
            r.next_check = now + interval
            return
        if r.state == "starting":
            r.next_check = now + (STARTING_FAST if now - r.started_at < FAST_FOR else STARTING_CHECK)
            start_period = float(self.health.get("start_period", 60))
            if not r.in_rollout and now - r.started_at > start_period:
                r.error = f"not healthy {start_period:g}s after start"
                await asyncio.to_thread(r.stop)
                r.proc, r.state = None, "failed"
                r.next_restart = now + min(MAX_BACKOFF, self.backoff * 2**r.streak)
            return
        r.failures += 1
        r.next_check = now + interval
        if r.failures >= int(self.health.get("retries", 3)):
            r.state, r.healthy_since = "unhealthy", None
            r.error = f"{r.failures} health checks failed in a row"
        limit = float(self.health.get("unhealthy_after") or 0)
        if limit and r.state == "unhealthy" and not r.in_rollout and now - r.last_ok > limit:
            why = f"unhealthy for {now - r.last_ok:.0f}s ({r.failures} health checks failed in a row)"
            log.warning("%s %s: restarting it", r.name, why)
            await asyncio.to_thread(r.stop)
            r.proc, r.state, r.error, r.healthy_since = None, "failed", why, None
            self._restart_later(r, now)

    # roll-outs
    def _new(self, spec: dict[str, Any], index: int) -> Replica:
        replica = Replica(spec["replicas"][index], spec["generation"], spec["command"])
        self.replicas.append(replica)
        replica.spawn()
        return replica

    def _owner_gone(self) -> bool:
        owner = self.owner
        return bool(owner) and not pid_alive(owner.get("pid"), owner.get("start_time"))  # type: ignore[union-attr]

    async def _await_healthy(self, replicas: list[Replica], timeout: float, owned: bool = True) -> str | None:
        """None once all are healthy; else why not (with the log tail, or the deployer gone)."""
        deadline = time.monotonic() + timeout
        while True:
            for r in replicas:
                if r.state == "failed":
                    return f"replica {r.name} {r.error} before becoming healthy\n{log_tail(r.spec['log'])}"
            if all(r.state == "healthy" for r in replicas):
                return None
            if owned and self._owner_gone():
                return "the command deploying it exited before the replicas were healthy"
            if time.monotonic() > deadline:
                late = next(r for r in replicas if r.state != "healthy")
                return f"replica {late.name} did not become healthy within {timeout:g}s\n{log_tail(late.spec['log'])}"
            await asyncio.sleep(0.05)

    async def _stop(self, replicas: list[Replica], drain: bool = False) -> None:
        """Stop replicas; with ``drain``, first tell the router and balancer they are gone."""
        for r in replicas:
            if r in self.replicas:
                self.replicas.remove(r)
        if drain and any(r.state == "healthy" for r in replicas):
            self._update_targets()
            self._publish()
            await asyncio.sleep(DRAIN)
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in replicas))

    async def _rollout(self, spec: dict[str, Any]) -> None:
        gen, count, timeout = spec["generation"], len(spec["replicas"]), float(spec.get("timeout", 120))
        self.rollout = {"generation": gen, "state": "running", "error": None}
        self.owner = spec.get("owner")
        old_port = self.balancer_port
        try:
            if self._owner_gone():
                raise Abandoned("the command deploying it exited before the roll-out began")
            if spec.get("port") != self.balancer_port:
                self._serve_balancer(spec.get("port"), spec)
            early, self.prespawned = [r for r in self.prespawned if r.generation == gen], []
            old = [r for r in self.replicas if r.generation == self.active_gen and r not in early]
            if not old:
                new = early or [self._new(spec, i) for i in range(count)]
                error = await self._await_healthy(new, timeout)
                if error:
                    await self._stop(new)
            else:
                new, error = [], None
                for i in range(max(count, len(old))):
                    if i < count:
                        new.append(self._new(spec, i))
                        error = await self._await_healthy(new[-1:], timeout)
                        if error:
                            await self._restore(old, i, timeout)
                            await self._stop(new)
                            break
                    await self._stop([r for r in old if r.index == i], drain=True)
        except Exception as exc:
            log.exception("roll-out %d failed", gen)
            error = str(exc) if isinstance(exc, Abandoned) else f"{type(exc).__name__}: {exc}"
            if not self.active_gen:  # a new deployment: nothing of it may keep running
                with contextlib.suppress(Exception):
                    await self._stop([r for r in self.replicas if r.generation == gen])
        if error:
            self.rollout = {"generation": gen, "state": "failed", "error": error}
            if self.balancer_port != old_port and self.replicas:
                try:  # the old replicas keep serving: so does their balanced port
                    self._serve_balancer(old_port, self.active_spec or spec)
                except Exception:
                    log.exception("cannot serve the balancer on port %s again", old_port)
            if not self.replicas:  # nothing to keep serving: a failed new deployment ends here
                self.stopping.set()
        else:
            for r in new:
                r.in_rollout = False
            self.active_gen, self.active_spec = gen, spec
            write_json(self.active_path, spec, mode=0o600)
            self.rollout = {"generation": gen, "state": "done", "error": None}
        self.rolling = None
        self._publish()

    async def _restore(self, old: list[Replica], upto: int, timeout: float) -> None:
        """Restart the old replicas with index < ``upto`` (already replaced), then wait for them."""
        restored = []
        for r in old:
            if r.index < upto and r not in self.replicas:
                self.replicas.append(r)
                r.spawn()
                r.in_rollout = False
                restored.append(r)
        if restored:
            await self._await_healthy(restored, timeout, owned=False)

    def _serve_balancer(self, port: int | None, spec: dict[str, Any]) -> None:
        """Serve (or stop) the ``--port`` balancer with ``spec``'s ``balancer`` settings (keys, secret, limits)."""
        from atoll.containers.local.balancer import serve_balancer

        if self.balancer_handle is not None:
            self.balancer_handle.stop(5)
            self.balancer_handle = self.balancer = None
        self.balancer_port = port
        if port:
            self.balancer, self.balancer_handle = serve_balancer(
                (self.project, self.deployment), port, spec.get("balancer") or {})

    # state files
    def _publish(self, final: bool = False) -> None:
        replicas = [r.public() for r in self.replicas]
        status = {
            "project": self.project,
            "deployment": self.deployment,
            "supervisor": {"pid": os.getpid(), "start_time": proc_start_time(os.getpid())},
            "active_generation": self.active_gen,
            "port": self.balancer_port,
            "rollout": self.rollout,
            "replicas": replicas,
            "stopped": final,
            "gave_up": self.gave_up,
        }
        data = orjson.dumps(status)
        if data == self._last_written:
            return
        self._last_written = data
        write_json(self.status_path, status)
        if not final and (self.active_gen or self.replicas):
            write_json(
                self.discovery,
                {
                    "project": self.project,
                    "deployment": self.deployment,
                    "replicas": [{k: r[k] for k in ("name", "url", "pid", "state")} for r in replicas],
                },
            )


def log_to_file(spec: dict[str, Any]) -> logging.Handler | None:
    """With ``logger.directory`` set (the spec's ``log_file``), records also go to a rotated file there."""
    settings = spec.get("log_file")
    if not settings:
        return None
    try:
        handler = rotating_file_handler(Path(settings["path"]), settings["max_bytes"], settings["backup_count"])
    except ConfigError as exc:
        log.warning("%s", exc)  # supervisor.log keeps everything anyway
        return None
    logging.getLogger().addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    adopt = "--adopt" in args
    args = [a for a in args if a != "--adopt"]
    if len(args) != 1:
        print("usage: python -m atoll.containers.local.supervisor RUN_DIR [--adopt]", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    log_to_file(read_json(run_dir / "spec.json") or {})
    write_json(run_dir / "supervisor.pid", {"pid": os.getpid(), "start_time": proc_start_time(os.getpid())})
    # The pid file stays after exit: with the start time it cannot be mistaken
    # for a later process, and the CLI uses it to wait until this one is gone.
    supervisor = Supervisor(run_dir)
    if adopt:
        supervisor.adopt()
    else:
        supervisor.prespawn()
    asyncio.run(supervisor.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
