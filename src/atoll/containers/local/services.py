"""Deployments on the local runtime.

A deployment is N replica processes (``<build env>/bin/python -m atoll.runner
serve``), each in its own task directory
``$ATOLL_HOME/tasks/<proj>/depl/<name>/g<generation>/<name>-<i>/``, kept
running by one detached supervisor process per deployment
(:mod:`atoll.containers.local.supervisor`), which also rolls replicas over one
at a time and keeps the old ones when a new one fails. This side stages the
task directories, writes the supervisor's spec, starts the supervisor when
none runs and reads the roll-out it reports; so the CLI may exit while the
replicas keep serving.

Run state lives under ``$ATOLL_HOME/run/``::

    services/<proj>/<name>/     supervisor spec, status, pid and logs
    deployments/<proj>/<name>.json   the router's discovery file (written by the supervisor)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from atoll.config import atoll_home
from atoll.containers.base import ContainerManager, LogSink, ReplicaStatus, Rollout, TaskSpec
from atoll.containers.local.environment import build_python, link_app, link_mounts, task_environment
from atoll.containers.local.limits import process_limits
from atoll.containers.local.process import (
    kill_group, log_tail, pid_alive, proc_start_time, read_json, write_json,
)
from atoll.errors import ConflictError, UsageError


def run_dir() -> Path:
    return atoll_home() / "run"


def service_dir(project: str, name: str) -> Path:
    """Where the supervisor of deployment ``project:name`` keeps its state."""
    return run_dir() / "services" / project / name


def discovery_file(project: str, name: str) -> Path:
    """The router's discovery file of a deployment."""
    return run_dir() / "deployments" / project / f"{name}.json"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def alive(info: dict[str, Any] | None) -> bool:
    """True when ``info`` ({pid, start_time}) names a process that still runs."""
    return bool(info) and pid_alive(info.get("pid"), info.get("start_time"))  # type: ignore[union-attr]


def _replica_status(item: dict[str, Any]) -> ReplicaStatus:
    return ReplicaStatus(
        name=item["name"],
        state=item["state"],
        url=item.get("url"),
        restarts=int(item.get("restarts", 0)),
        error=item.get("error"),
    )


class LocalServices(ContainerManager):
    """The deployment primitives of the local manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What this process started or replaced, for rollout_state and roll_back.
        self._supervisors: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._previous_specs: dict[tuple[str, str], dict[str, Any]] = {}

    def service_lock(self, project: str, name: str) -> AbstractContextManager[object]:
        state_dir = service_dir(project, name)
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(state_dir.parent / f".{name}.lock"))

    def running_generation(self, project: str, name: str) -> int | None:
        state_dir = service_dir(project, name)
        if not alive(read_json(state_dir / "supervisor.pid")):
            return None
        if (read_json(state_dir / "status.json") or {}).get("stopped"):
            raise ConflictError(f"deployment {project}:{name} is being stopped; try again in a moment")
        return int((read_json(state_dir / "spec.json") or {}).get("generation", 0))

    def start_generation(
        self, spec: TaskSpec, generation: int, previous: int | None, timeout: float, log: LogSink
    ) -> None:
        project, name = spec.project.name, spec.name
        state_dir = service_dir(project, name)
        state_dir.mkdir(parents=True, exist_ok=True)
        old_spec = read_json(state_dir / "spec.json") if previous is not None else None
        if spec.port and spec.port != (old_spec or {}).get("port") and port_in_use(spec.port):
            raise UsageError(f"port {spec.port} is already in use on 127.0.0.1; choose another --port")
        new_spec = self._supervisor_spec(spec, generation, timeout)
        self._previous_specs[(project, name)] = old_spec or {}
        if old_spec:  # for a roll_back from another process (a `depl new -b` settled by a later look)
            write_json(state_dir / "previous-spec.json", old_spec, mode=0o600)
        write_json(state_dir / "spec.json", new_spec, mode=0o600)
        if previous is None:
            log(f"starting {spec.replicas} replica(s) of {project}:{name}")
            self._supervisors[(project, name)] = self._start_supervisor(state_dir)
        else:
            log(f"rolling over {project}:{name} one replica at a time")

    def _supervisor_spec(self, spec: TaskSpec, generation: int, timeout: float) -> dict[str, Any]:
        """Stage one task directory per replica and return the supervisor's spec."""
        project, name = spec.project.name, spec.name
        base = self.generation_root(project, name, generation)
        replicas = []
        for index in range(spec.replicas):
            replica = f"{name}-{index}"
            staged = self.stage_task(spec, base / replica)
            link_app(spec, staged)
            link_mounts(spec, staged)
            replicas.append(
                {
                    "name": replica,
                    "index": index,
                    "task_dir": str(staged.root),
                    "env": task_environment(spec.build, staged, spec.env),
                    "log": str(service_dir(project, name) / "logs" / f"g{generation}-{index}.log"),
                    "limits": process_limits(spec.profile),
                }
            )
        return {
            "project": project,
            "deployment": name,
            "generation": generation,
            "command": [str(build_python(spec.build)), "-m", "atoll.runner", "serve"],
            "replicas": replicas,
            "port": spec.port,
            "timeout": timeout,
            "healthcheck": self.config.container_manager.healthcheck.model_dump(),
            "discovery": str(discovery_file(project, name)),
            # logger.directory set: the supervisor also logs there, rotated (supervisor.log stays)
            "log_file": {
                "path": str(self.config.log_dir / f"supervisor-{project}-{name}.log"),
                "max_bytes": self.config.logger.max_bytes,
                "backup_count": self.config.logger.backup_count,
            } if self.config.logger.directory else None,
            # The process deploying it: a roll-out it does not live to see through is abandoned
            # (none for `depl new -b`: that roll-out goes on by itself).
            "owner": None if spec.detached else {"pid": os.getpid(), "start_time": proc_start_time(os.getpid())},
            "balancer": {  # spec.json is 0600: the replica secret may sit here
                "keys_file": str(self.config.router_keys_file) if self.config.router.auth else None,
                "replica_secret": (spec.replica or {}).get("secret"),
                "limits": (spec.replica or {}).get("limits") or self.config.serving.limits(),
            },
        }

    @staticmethod
    def _start_supervisor(state_dir: Path, adopt: bool = False) -> subprocess.Popen[bytes]:
        with open(state_dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "atoll.containers.local.supervisor", str(state_dir),
                 *(["--adopt"] if adopt else [])],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI and its Ctrl-C
                close_fds=True,
            )
        # At once, not when it gets to it: a look in between must not take it for dead (recover_service).
        write_json(state_dir / "supervisor.pid", {"pid": proc.pid, "start_time": proc_start_time(proc.pid)})
        return proc

    def recover_service(self, project: str, name: str) -> None:
        """A supervisor that died (SIGKILL, OOM) while its replicas run: start one that adopts them.

        The new supervisor (``--adopt``) takes over the live replicas of the
        serving generation, restarts the dead ones, stops the others and
        resumes an unfinished roll-out; so no replica is left without a
        supervisor. Skipped while another process deploys or removes it (it
        holds the service lock and deals with what it finds).
        """
        state_dir = service_dir(project, name)
        status = read_json(state_dir / "status.json")
        if not status or status.get("stopped") or alive(read_json(state_dir / "supervisor.pid")):
            return
        try:
            with FileLock(str(state_dir.parent / f".{name}.lock"), timeout=0):
                status = read_json(state_dir / "status.json")
                if not status or status.get("stopped") or alive(read_json(state_dir / "supervisor.pid")):
                    return
                if read_json(state_dir / "spec.json") is None:  # nothing to adopt them into: stop them
                    for item in status.get("replicas", []):
                        if item.get("pid"):
                            kill_group(int(item["pid"]), item.get("start_time"))
                    write_json(state_dir / "status.json", {**status, "replicas": [], "stopped": True})
                    return
                self._supervisors[(project, name)] = self._start_supervisor(state_dir, adopt=True)
        except Timeout:
            return

    def rollout_state(self, project: str, name: str, generation: int) -> Rollout:
        """The roll-out the supervisor reports in status.json (or that it exited)."""
        state_dir = service_dir(project, name)

        def reported() -> Rollout | None:
            status = read_json(state_dir / "status.json") or {}
            rollout = status.get("rollout") or {}
            if rollout.get("generation") != generation or rollout.get("state") not in ("done", "failed"):
                return None
            if rollout["state"] == "done":
                return Rollout("done", [_replica_status(r) for r in status.get("replicas", [])])
            first, _, tail = str(rollout.get("error") or "the replicas did not become healthy").partition("\n")
            return Rollout("failed", error=first, log_tail=tail)

        outcome = reported()
        if outcome is not None:
            return outcome
        proc = self._supervisors.get((project, name))
        exited = proc.poll() is not None if proc is not None else not alive(read_json(state_dir / "supervisor.pid"))
        if exited:
            return reported() or Rollout(
                "failed", error="the deployment's supervisor exited", log_tail=log_tail(state_dir / "supervisor.log")
            )
        status = read_json(state_dir / "status.json") or {}
        replicas = [
            ReplicaStatus(f"{item['name']} (generation {item['generation']})", item["state"])
            for item in status.get("replicas", [])
        ]
        return Rollout("running", replicas)

    def roll_back(self, project: str, name: str, previous: int, failed: int) -> None:
        """The supervisor kept the old replicas; put their spec back (numbered past ``failed``)."""
        spec_file = service_dir(project, name) / "spec.json"
        old_spec = self._previous_specs.pop((project, name), None) or read_json(spec_file.with_name("previous-spec.json"))
        if old_spec and (read_json(spec_file) or {}).get("generation") == failed:  # the new spec was written
            write_json(spec_file, {**old_spec, "generation": failed}, mode=0o600)

    def discard_service(self, project: str, name: str) -> None:
        """Stop the supervisor and every replica (by PID and process group); remove the run state."""
        state_dir = service_dir(project, name)
        supervisor = read_json(state_dir / "supervisor.pid")
        if supervisor and supervisor.get("pid"):
            kill_group(int(supervisor["pid"]), supervisor.get("start_time"), grace=15.0)
        for item in (read_json(state_dir / "status.json") or {}).get("replicas", []):
            if item.get("pid"):
                kill_group(int(item["pid"]), item.get("start_time"))
        proc = self._supervisors.pop((project, name), None)
        if proc is not None and proc.poll() is None:  # started by us before it wrote its pid file
            kill_group(proc.pid, None, grace=15.0)
        if proc is not None:
            proc.poll()  # collect our child's exit status
        discovery_file(project, name).unlink(missing_ok=True)
        shutil.rmtree(state_dir, ignore_errors=True)

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        """Each live replica as its supervisor last saw it ([] when nothing runs)."""
        state_dir = service_dir(project, name)
        if not alive(read_json(state_dir / "supervisor.pid")):
            return []
        status = read_json(state_dir / "status.json") or {}
        return [_replica_status(item) for item in status.get("replicas", [])]

    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        """Lines of every current replica's log, prefixed with the replica name.

        With ``follow``, keeps yielding new lines until the supervisor stops.
        """
        state_dir = service_dir(project, name)
        status = read_json(state_dir / "status.json") or {}
        handles = []
        for item in status.get("replicas", []):
            try:
                handles.append((item["name"], open(item["log"], "rb")))  # noqa: SIM115 - closed below
            except OSError:
                continue
        try:
            while True:
                got = False
                for replica, handle in handles:
                    for raw in handle.readlines():
                        got = True
                        yield f"[{replica}] {raw.decode(errors='replace').rstrip()}"
                if not follow or not alive(read_json(state_dir / "supervisor.pid")):
                    return
                if not got:
                    time.sleep(0.2)
        finally:
            for _, handle in handles:
                handle.close()


__all__ = ["LocalServices", "alive", "discovery_file", "port_in_use", "run_dir", "service_dir"]
