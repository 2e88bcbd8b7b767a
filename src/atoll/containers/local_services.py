"""Deployments and the IDE on the local runtime.

A deployment is N replica processes (``<build env>/bin/python -m atoll.runner
serve``), each in its own task directory
``$ATOLL_HOME/tasks/<proj>/depl/<name>/g<generation>/<name>-<i>/``, kept
running by one detached supervisor process per deployment
(:mod:`atoll.containers.local_supervisor`). This side stages the task
directories, writes the supervisor's spec, starts the supervisor when none
runs, and waits for the roll-out it reports; so the CLI may exit while the
replicas keep serving.

Run state lives under ``$ATOLL_HOME/run/``::

    services/<proj>/<name>/     supervisor spec, status, pid and logs
    deployments/<proj>/<name>.json   the router's discovery file (written by the supervisor)
    ide/<proj>.json             the project's Jupyter Lab process

The IDE is Jupyter Lab from the build's environment (installed there on first
use), bound to 127.0.0.1 and protected by a token that reaches it through a
0600 config file, never the command line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from atoll.config import atoll_home
from atoll.containers._process import (
    kill_group,
    log_tail,
    pid_alive,
    proc_start_time,
    read_json,
    write_json,
)
from atoll.containers.base import IdeHandle, LogSink, ReplicaStatus, TaskSpec, http_ok
from atoll.containers.staging import (
    build_env_dir,
    build_python,
    remove_tree,
    stage_task_dir,
    task_dir_for,
    task_environment,
)
from atoll.errors import BackendError, ConflictError, ExecutionError, UsageError

if TYPE_CHECKING:
    from atoll.containers.base import ContainerManager

IDE_START_TIMEOUT = 120.0


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


def _alive(info: dict[str, Any] | None) -> bool:
    return bool(info) and pid_alive(info.get("pid"), info.get("start_time"))  # type: ignore[union-attr]


def _replica_status(item: dict[str, Any]) -> ReplicaStatus:
    return ReplicaStatus(
        name=item["name"],
        state=item["state"],
        url=item.get("url"),
        restarts=int(item.get("restarts", 0)),
        error=item.get("error"),
    )


class LocalServices:
    """Deployments and the IDE of a :class:`~atoll.containers.local.LocalContainerManager`."""

    def __init__(self, manager: ContainerManager) -> None:
        self.manager = manager

    # deployments

    def deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
        """Start or roll over the replicas of ``spec`` and wait until they are healthy.

        Raises:
            ExecutionError: the new replicas did not become healthy (with the log
                tail); nothing is left running for a new deployment, the old
                replicas keep serving for a redeploy.
            UsageError: ``spec.port`` is taken by another program.
        """
        project, name = spec.project.name, spec.name
        state_dir = service_dir(project, name)
        state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(state_dir.parent / f".{name}.lock")):
            supervisor = read_json(state_dir / "supervisor.pid")
            running = _alive(supervisor)
            status = read_json(state_dir / "status.json") or {}
            previous = read_json(state_dir / "spec.json") if running else None
            if not running:
                self._clean(project, name, keep_dir=True)
            elif status.get("stopped"):
                raise ConflictError(f"deployment {project}:{name} is being stopped; try again in a moment")
            if spec.port and spec.port != (previous or {}).get("port") and port_in_use(spec.port):
                raise UsageError(f"port {spec.port} is already in use on 127.0.0.1; choose another --port")
            generation = int((previous or {}).get("generation", 0)) + 1
            try:
                new_spec = self._stage(spec, generation, timeout)
            except BaseException:
                remove_tree(task_dir_for("depl", project, name) / f"g{generation}")
                if not running:
                    self._clean(project, name)
                raise
            write_json(state_dir / "spec.json", new_spec, mode=0o600)
            proc = None
            if not running:
                log(f"starting {spec.replicas} replica(s) of {project}:{name}")
                proc = self._start_supervisor(state_dir)
            else:
                log(f"rolling over {project}:{name} one replica at a time")
            budget = timeout * (1 + spec.replicas + len(status.get("replicas", []))) + 30
            outcome = self._wait_rollout(state_dir, generation, budget, proc, log)
            if outcome["state"] == "done":
                self._remove_generations(project, name, keep=generation)
                return [_replica_status(r) for r in (read_json(state_dir / "status.json") or {}).get("replicas", [])]
            error = str(outcome.get("error") or "the replicas did not become healthy")
            first, _, tail = error.partition("\n")
            remove_tree(task_dir_for("depl", project, name) / f"g{generation}")
            if running:
                write_json(state_dir / "spec.json", {**(previous or {}), "generation": generation}, mode=0o600)
                raise ExecutionError(
                    f"redeploying {project}:{name} failed, the previous replicas keep serving: {first}",
                    log_tail=tail,
                )
            self._clean(project, name)
            raise ExecutionError(f"deployment {project}:{name} did not start: {first}", log_tail=tail)

    def _stage(self, spec: TaskSpec, generation: int, timeout: float) -> dict[str, Any]:
        """Stage one task directory per replica and return the supervisor's spec."""
        project, name = spec.project.name, spec.name
        base = task_dir_for("depl", project, name) / f"g{generation}"
        replicas = []
        for index in range(spec.replicas):
            replica = f"{name}-{index}"
            root = stage_task_dir(spec, base / replica, self.manager.files, spec.store_config)
            replicas.append(
                {
                    "name": replica,
                    "index": index,
                    "task_dir": str(root),
                    "env": task_environment(spec.build, root, spec.env),
                    "log": str(service_dir(project, name) / "logs" / f"g{generation}-{index}.log"),
                }
            )
        health = self.manager.config.container_manager.healthcheck
        return {
            "project": project,
            "deployment": name,
            "generation": generation,
            "command": [str(build_python(spec.build)), "-m", "atoll.runner", "serve"],
            "replicas": replicas,
            "port": spec.port,
            "timeout": timeout,
            "healthcheck": health.model_dump(),
            "discovery": str(discovery_file(project, name)),
        }

    @staticmethod
    def _start_supervisor(state_dir: Path) -> subprocess.Popen[bytes]:
        with open(state_dir / "supervisor.log", "ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "atoll.containers.local_supervisor", str(state_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI and its Ctrl-C
                close_fds=True,
            )

    @staticmethod
    def _wait_rollout(
        state_dir: Path, generation: int, budget: float, proc: subprocess.Popen[bytes] | None, log: LogSink
    ) -> dict[str, Any]:
        """Follow status.json until the roll-out of ``generation`` is done or failed."""
        deadline = time.monotonic() + budget
        seen: dict[tuple[str, int], str] = {}
        while time.monotonic() < deadline:
            status = read_json(state_dir / "status.json") or {}
            for item in status.get("replicas", []):
                key = (item["name"], item["generation"])
                if seen.get(key) != item["state"]:
                    seen[key] = item["state"]
                    log(f"replica {item['name']} (generation {item['generation']}): {item['state']}")
            rollout = status.get("rollout") or {}
            if rollout.get("generation") == generation and rollout.get("state") in ("done", "failed"):
                return rollout
            supervisor = read_json(state_dir / "supervisor.pid")
            exited = proc.poll() is not None if proc is not None else not _alive(supervisor)
            if exited:
                status = read_json(state_dir / "status.json") or {}
                rollout = status.get("rollout") or {}
                if rollout.get("generation") == generation and rollout.get("state") in ("done", "failed"):
                    return rollout
                tail = log_tail(state_dir / "supervisor.log")
                return {"state": "failed", "error": f"the deployment's supervisor exited\n{tail}"}
            time.sleep(0.1)
        return {"state": "failed", "error": f"the roll-out did not finish within {budget:g}s"}

    def _remove_generations(self, project: str, name: str, keep: int) -> None:
        base = task_dir_for("depl", project, name)
        for path in base.glob("g*"):
            if path.name != f"g{keep}":
                remove_tree(path)

    def _clean(self, project: str, name: str, keep_dir: bool = False) -> None:
        """Stop whatever runs for the deployment and remove its run state and task dirs."""
        state_dir = service_dir(project, name)
        supervisor = read_json(state_dir / "supervisor.pid")
        if supervisor and supervisor.get("pid"):
            kill_group(int(supervisor["pid"]), supervisor.get("start_time"), grace=15.0)
        for item in (read_json(state_dir / "status.json") or {}).get("replicas", []):
            if item.get("pid"):
                kill_group(int(item["pid"]), item.get("start_time"))
        discovery_file(project, name).unlink(missing_ok=True)
        remove_tree(task_dir_for("depl", project, name))
        if keep_dir:
            for entry in ("spec.json", "status.json", "supervisor.pid"):
                (state_dir / entry).unlink(missing_ok=True)
        else:
            shutil.rmtree(state_dir, ignore_errors=True)

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        """Each live replica as its supervisor last saw it ([] when nothing runs)."""
        state_dir = service_dir(project, name)
        if not _alive(read_json(state_dir / "supervisor.pid")):
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
                if not follow or not _alive(read_json(state_dir / "supervisor.pid")):
                    return
                if not got:
                    time.sleep(0.2)
        finally:
            for _, handle in handles:
                handle.close()

    def remove_service(self, project: str, name: str) -> None:
        """Stop the supervisor and every replica (by PID and process group); remove the state."""
        state_dir = service_dir(project, name)
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(state_dir.parent / f".{name}.lock")):
            self._clean(project, name)

    # IDE

    def _ide_state(self, project: str) -> Path:
        return run_dir() / "ide" / f"{project}.json"

    def ide_info(self, project: str) -> dict[str, Any] | None:
        """The running IDE of ``project`` ({pid, port, url, log}) or None."""
        info = read_json(self._ide_state(project))
        return info if _alive(info) else None

    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        """Start Jupyter Lab on the build's environment, detached; wait until it answers.

        Raises:
            ConflictError: the project's IDE already runs.
            UsageError: the port is taken.
            ExecutionError: Jupyter did not start (with its log tail).
        """
        project = spec.project.name
        running = self.ide_info(project)
        if running:
            raise ConflictError(
                f"the IDE of project {project} already runs on port {running['port']} "
                f"(stop it with `atoll note --stop --proj {project}`)"
            )
        port = spec.port or self.manager.config.ide.port
        if port_in_use(port):
            raise UsageError(f"port {port} is already in use on 127.0.0.1; choose another --port")
        python = build_python(spec.build)
        self._ensure_jupyterlab(python, spec)
        root = task_dir_for("ide", project, "ide")
        remove_tree(root)
        stage_task_dir(spec, root, self.manager.files, spec.store_config)
        config = root / "atoll" / "secret" / "jupyter_server_config.json"
        write_json(
            config,
            {
                "IdentityProvider": {"token": token},
                "ServerApp": {
                    "ip": "127.0.0.1",
                    "port": port,
                    "port_retries": 0,
                    "open_browser": False,
                    "root_dir": str(root / "app"),
                    "allow_remote_access": False,
                    "allow_root": os.geteuid() == 0,  # containers and CI machines often run as root
                },
            },
            mode=0o600,
        )
        env = task_environment(spec.build, root, spec.env)
        env["JUPYTER_CONFIG_DIR"] = str(root / "atoll" / "jupyter-config")
        env["JUPYTER_RUNTIME_DIR"] = str(root / "atoll" / "jupyter-runtime")
        log_path = run_dir() / "ide" / f"{project}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [str(python), "-m", "jupyterlab", f"--config={config}"],
                cwd=root / "app",
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        info = {"pid": proc.pid, "start_time": proc_start_time(proc.pid), "port": port,
                "url": f"http://127.0.0.1:{port}/lab", "log": str(log_path), "task_dir": str(root)}
        write_json(self._ide_state(project), info)
        deadline = time.monotonic() + IDE_START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.stop_ide(project)
                tail = log_tail(log_path)
                last = tail.splitlines()[-1] if tail else ""
                raise ExecutionError(
                    f"Jupyter Lab exited with code {proc.returncode} before answering: {last}", log_tail=tail
                )
            if http_ok(f"http://127.0.0.1:{port}/api/status", token):
                return IdeHandle(url=f"http://127.0.0.1:{port}/lab?token={token}", task_id=str(proc.pid))
            time.sleep(0.2)
        self.stop_ide(project)
        raise ExecutionError(f"Jupyter Lab did not answer within {IDE_START_TIMEOUT:g}s", log_tail=log_tail(log_path))

    def _ensure_jupyterlab(self, python: Path, spec: TaskSpec) -> None:
        """Install jupyterlab into the build environment once (a marker file caches the check)."""
        env_dir = build_env_dir(spec.build)
        if (env_dir / "bin" / "jupyter-lab").exists():
            return
        uv = _find_uv()
        argv = (
            [uv, "pip", "install", "--quiet", "--python", str(python), "jupyterlab"]
            if uv
            else [str(python), "-m", "pip", "install", "--quiet", "jupyterlab"]
        )
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BackendError(
                "installing jupyterlab into the build environment failed: "
                + "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            )

    def stop_ide(self, project: str) -> None:
        """Stop the project's IDE (its whole process group); missing is not an error."""
        state = self._ide_state(project)
        info = read_json(state)
        if info and info.get("pid"):
            kill_group(int(info["pid"]), info.get("start_time"))
            if info.get("task_dir"):
                remove_tree(Path(info["task_dir"]))
        state.unlink(missing_ok=True)


def _find_uv() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


__all__ = ["LocalServices", "discovery_file", "port_in_use", "service_dir"]
