"""A container manager whose runtime lives in this process, for tests.

``MemoryContainerManager`` implements only the primitives of
:class:`~atoll.containers.base.ContainerManager`; staging, build bookkeeping,
the roll-out rule, readiness waiting and the IDE's token are the base's, so
tests of the API (and the container conformance suite) exercise the real
shared behaviour without processes or Docker:

- a build keeps the project's files in memory (its ``image_id`` is the code hash);
- a training executes the notebook's code cells in a thread (parameters
  injected after the ``parameters`` cell) and records RUNNING, then FINISHED,
  FAILED (with the failing cell) or CANCELLED, as the on-board runner does;
  :meth:`MemoryContainerManager.kill` ends one the way an OOM kill would;
- a replica executes every cell but the last (which, by the contract, starts
  the server) and answers :meth:`MemoryContainerManager.predict` with the
  notebook's ``predict`` function; it is healthy when those cells ran;
- the IDE is a tiny HTTP server on 127.0.0.1 answering ``/api/status`` only
  with the token read from the Jupyter config the base wrote.

``calls`` records the removals the API asked for, in order.
"""

from __future__ import annotations

import ctypes
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from atoll.containers.base import (
    BuildRequest,
    ContainerManager,
    IdeLaunch,
    LogSink,
    ReplicaStatus,
    Rollout,
    StagedTask,
    TaskSpec,
    TaskStatus,
    describe_exit,
)
from atoll.domain.records import BuildVersion, TaskState, Training, utcnow
from atoll.errors import NotFoundError, UsageError
from atoll.task.records import update_training

_KILLED = 137  # 128 + SIGKILL


class _Stop(BaseException):
    """Raised inside a training thread: cancelled (SIGTERM) or killed (SIGKILL)."""


class _Cancelled(_Stop):
    pass


class _Killed(_Stop):
    pass


def _raise_in(thread: threading.Thread, exc: type[BaseException]) -> None:
    """Interrupt ``thread`` between two bytecodes with ``exc`` (how a signal would)."""
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc))


def _cells(source: bytes) -> list[tuple[int, str, bool]]:
    """``(index, source, is the parameters cell)`` of each code cell of a notebook."""
    nb = orjson.loads(source)
    out = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        out.append((index, text, "parameters" in (cell.get("metadata") or {}).get("tags", [])))
    return out


def _params(spec: TaskSpec) -> dict[str, Any]:
    """The notebook parameters: in the training / deployment record, as the runner reads them."""
    record = spec.meta.get("training") or spec.meta.get("deployment") or {}
    return dict(record.get("params") or {})


def _namespace(lines: list[str]) -> dict[str, Any]:
    def echo(*args: Any, **_: Any) -> None:
        lines.append(" ".join(str(a) for a in args))

    return {"__name__": "__main__", "print": echo}


@dataclass
class _Task:
    spec: TaskSpec
    thread: threading.Thread | None = None
    lines: list[str] = field(default_factory=list)
    exit_code: int | None = None


@dataclass
class _Replica:
    name: str
    url: str
    state: str = "starting"
    error: str | None = None
    predict: Any = None
    lines: list[str] = field(default_factory=list)


@dataclass
class _Service:
    generation: int
    replicas: list[_Replica]
    pending: tuple[int, list[_Replica]] | None = None


class MemoryContainerManager(ContainerManager):
    """An in-process runtime (``container_manager.type: memory``; tests only)."""

    type = "memory"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, Any]] = []
        self.images: dict[str, dict[str, bytes]] = {}
        self.tasks: dict[str, _Task] = {}
        self.services: dict[tuple[str, str], _Service] = {}
        self.ides: dict[str, http.server.ThreadingHTTPServer] = {}

    # The public removals, recorded for the API tests (then the base's behaviour).

    def remove_build(self, build: BuildVersion) -> None:
        self.calls.append(("remove_build", build.name))
        super().remove_build(build)

    def remove_service(self, project: str, name: str) -> None:
        self.calls.append(("remove_service", f"{project}:{name}"))
        super().remove_service(project, name)

    def stop_task(self, task_id: str) -> None:
        self.calls.append(("stop_task", task_id))
        task = self.tasks.get(task_id)
        if task is not None and task.thread is not None and task.thread.is_alive():
            _raise_in(task.thread, _Cancelled)
            task.thread.join(10)

    def remove_task(self, task_id: str) -> None:
        self.calls.append(("remove_task", task_id))
        super().remove_task(task_id)

    def stop_ide(self, project: str) -> None:
        self.calls.append(("stop_ide", project))
        super().stop_ide(project)

    # Builds

    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        files = {
            str(path.relative_to(request.source_dir)): path.read_bytes()
            for path in sorted(request.source_dir.rglob("*")) if path.is_file()
        }
        self.images[request.code_hash] = files
        log(f"kept {len(files)} file(s) of {request.project.name} in memory")
        return BuildVersion(
            name=request.tag, proj=request.project.name, container_manager=self.type,
            built_from=request.built_from, code_hash=request.code_hash, git_commit=request.git_commit,
            image=f"memory/{request.project.name}:{request.tag}", image_id=request.code_hash,
        )

    def delete_build(self, build: BuildVersion) -> None:
        self.images.pop(build.image_id or "", None)

    def _notebook(self, spec: TaskSpec) -> bytes:
        files = self.images.get(spec.build.image_id or "")
        if files is None:
            raise NotFoundError(f"build {spec.build.ref} is not in this memory runtime")
        try:
            return files[spec.notebook or ""]
        except KeyError:
            raise NotFoundError(f"build {spec.build.ref} has no notebook {spec.notebook}") from None

    # Trainings

    def launch_task(self, spec: TaskSpec, task_id: str, staged: StagedTask) -> None:
        cells = _cells(self._notebook(spec))
        task = self.tasks[task_id] = _Task(spec)
        task.thread = threading.Thread(target=self._train, args=(task, cells), daemon=True, name=task_id)
        task.thread.start()

    def _record(self, spec: TaskSpec, change: Any) -> None:
        update_training(self.metadata, spec.project.name, spec.name, change)

    def _train(self, task: _Task, cells: list[tuple[int, str, bool]]) -> None:
        spec = task.spec
        state, error, failed, code = TaskState.FINISHED, None, None, 0
        try:
            self._record(spec, _start)
            namespace = _namespace(task.lines)
            for index, source, is_params in cells:
                try:
                    exec(compile(source, f"<cell {index}>", "exec"), namespace)  # noqa: S102 - the test's notebook
                except _Stop:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failing cell fails the training
                    state, error, failed, code = TaskState.FAILED, f"{type(exc).__name__}: {exc}", index, 1
                    task.lines.append(f"atoll: cell {index} failed: {error}")
                    break
                if is_params:
                    namespace.update(_params(spec))
        except _Killed:
            task.exit_code = _KILLED  # like SIGKILL: the record is left as it was
            return
        except _Cancelled:
            state, error, code = TaskState.CANCELLED, "cancelled by the user", 143

        def finish(record: Training) -> bool:
            if record.task.state.ended:
                return False
            record.task.state, record.task.error, record.task.failed_cell = state, error, failed
            if state == TaskState.FINISHED:
                record.task.progress = 1.0
            return True

        self._record(spec, finish)
        task.exit_code = code

    def kill(self, task_id: str) -> None:
        """End a training the way the kernel's OOM killer would (no chance to record anything)."""
        task = self.tasks[task_id]
        if task.thread is not None and task.thread.is_alive():
            _raise_in(task.thread, _Killed)
            task.thread.join(10)

    def task_status(self, task_id: str) -> TaskStatus:
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"no memory task {task_id}")
        if task.thread is not None and task.thread.is_alive():
            return TaskStatus(task_id, running=True)
        code = task.exit_code
        if code is None:
            return TaskStatus(task_id, running=False, error="the task vanished without an exit status")
        return TaskStatus(task_id, running=False, exit_code=code, error=None if code == 0 else describe_exit(code))

    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"no memory task {task_id}")
        sent = 0
        while True:
            lines = task.lines[sent:]
            sent += len(lines)
            yield from lines
            if not (follow and task.thread is not None and task.thread.is_alive()):
                if sent == len(task.lines):
                    return
            else:
                time.sleep(0.05)

    def discard_task(self, task_id: str) -> None:
        task = self.tasks.pop(task_id, None)
        if task is not None and task.thread is not None and task.thread.is_alive():
            _raise_in(task.thread, _Killed)
            task.thread.join(10)

    # Deployments

    def running_generation(self, project: str, name: str) -> int | None:
        service = self.services.get((project, name))
        return service.generation if service is not None else None

    def start_generation(
        self, spec: TaskSpec, generation: int, previous: int | None, timeout: float, log: LogSink
    ) -> None:
        project, name = spec.project.name, spec.name
        if spec.port is not None and spec.replicas != 1:
            raise UsageError("--port publishes one replica; use the router for several")
        self.stage_task(spec, self.generation_root(project, name, generation))
        cells = _cells(self._notebook(spec))[:-1]  # the last cell starts the server
        replicas = [self._replica(spec, f"{name}-{i}", generation, cells) for i in range(spec.replicas)]
        if previous is None:
            self.services[(project, name)] = _Service(generation, [], pending=(generation, replicas))
        else:
            self.services[(project, name)].pending = (generation, replicas)

    def _replica(self, spec: TaskSpec, name: str, generation: int, cells: list[tuple[int, str, bool]]) -> _Replica:
        replica = _Replica(name, f"memory://{spec.project.name}/{spec.name}/g{generation}/{name}")
        namespace = _namespace(replica.lines)
        namespace["__replica__"] = name
        for index, source, is_params in cells:
            try:
                exec(compile(source, f"<cell {index}>", "exec"), namespace)  # noqa: S102 - the test's notebook
            except Exception as exc:  # noqa: BLE001 - the replica fails, as its process would
                replica.state, replica.error = "failed", f"cell {index} failed: {type(exc).__name__}: {exc}"
                replica.lines.append(replica.error)
                return replica
            if is_params:
                namespace.update(_params(spec))
        replica.predict = namespace.get("predict")
        replica.state = "healthy" if callable(replica.predict) else "failed"
        return replica

    def rollout_state(self, project: str, name: str, generation: int) -> Rollout:
        service = self.services.get((project, name))
        if service is not None and service.pending is None and service.generation == generation:
            return Rollout("done", [self._status(r) for r in service.replicas])  # asked again once done
        if service is None or service.pending is None or service.pending[0] != generation:
            return Rollout("failed", error="no such roll-out")
        replicas = service.pending[1]
        broken = [r for r in replicas if r.state == "failed"]
        if broken:
            return Rollout("failed", error=str(broken[0].error), log_tail="\n".join(broken[0].lines))
        service.generation, service.replicas, service.pending = generation, replicas, None
        return Rollout("done", [self._status(r) for r in replicas])

    def roll_back(self, project: str, name: str, previous: int, failed: int) -> None:
        self.services[(project, name)].pending = None

    def discard_service(self, project: str, name: str) -> None:
        self.services.pop((project, name), None)

    @staticmethod
    def _status(replica: _Replica) -> ReplicaStatus:
        return ReplicaStatus(replica.name, replica.state, replica.url, error=replica.error)

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        service = self.services.get((project, name))
        return [self._status(r) for r in service.replicas] if service is not None else []

    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        service = self.services.get((project, name))
        for replica in service.replicas if service is not None else []:
            for line in replica.lines:
                yield f"[{replica.name}] {line}"

    def predict(self, url: str, body: str) -> Any:
        """What the replica at ``url`` answers to ``POST /predict`` with ``body``."""
        for service in self.services.values():
            for replica in service.replicas:
                if replica.url == url:
                    return replica.predict(body)
        raise NotFoundError(f"no replica serves {url}")

    # IDE

    def launch_ide(self, spec: TaskSpec, staged: StagedTask, port: int, token: str) -> IdeLaunch:
        config_file = self.write_ide_config(staged, token, ip="127.0.0.1", port=port)
        expected = orjson.loads(config_file.read_bytes())["IdentityProvider"]["token"]
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _ide_handler(expected))
        except OSError as exc:
            raise UsageError(f"port {port} is already in use on 127.0.0.1; choose another --port") from exc
        threading.Thread(target=server.serve_forever, daemon=True, name=f"ide-{spec.project.name}").start()
        self.ides[spec.project.name] = server
        return IdeLaunch(base_url=f"http://127.0.0.1:{port}", task_id=f"memory-ide-{spec.project.name}")

    def ide_exit(self, project: str) -> str | None:
        return None if project in self.ides else "not started"

    def ide_log_tail(self, project: str) -> str:
        return ""

    def discard_ide(self, project: str) -> None:
        server = self.ides.pop(project, None)
        if server is not None:
            server.shutdown()
            server.server_close()


def _start(record: Training) -> bool:
    if record.task.state.ended:
        return False
    record.task.state, record.task.start_time, record.task.progress = TaskState.RUNNING, utcnow(), 0.0
    return True


def _ide_handler(token: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            given = self.headers.get("Authorization", "").removeprefix("token ")
            ok = token and (given == token or query.get("token") == [token])
            self.send_response(200 if ok else 403)
            self.end_headers()
            self.wfile.write(b'{"started": true}' if ok else b"forbidden")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


__all__ = ["MemoryContainerManager"]
