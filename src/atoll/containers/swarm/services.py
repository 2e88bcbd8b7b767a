"""Deployments as swarm services (DESIGN.md §4).

A deployment is the service ``<ns>-<proj>-<depl>``: N replicas of ``python -m
atoll.runner serve`` on the attachable overlay network ``<ns>`` with
``endpoint_mode=dnsrr`` (the router finds them as ``tasks.<service>``; the
ingress mesh is not used), a health check on ``/health``, restart on failure,
rolling updates one replica at a time that roll back by themselves when a new
replica fails, resource limits/reservations, and the store settings as a
Docker secret. ``--port`` publishes the single replica's 8080 in host mode.

Every deploy is a new *generation* (:meth:`ContainerManager.deploy` numbers
them and waits): its own staged directory and secret (and, with ``fetch``
staging, its records as Docker configs), so the replicas of the previous
generation keep their files while a redeploy rolls; the old generation's
leftovers are removed once the new one is healthy, the new one's when it fails.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from atoll.config import ResourceProfile
from atoll.containers.base import (
    ContainerManager,
    LogSink,
    ReplicaStatus,
    Rollout,
    StagedTask,
    TaskSpec,
    wait_until,
)
from atoll.containers.swarm.build import runnable_ref
from atoll.containers.swarm.engine import (
    LABEL_GENERATION,
    LABEL_KIND,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    NS,
    SERVICE_PORT,
    dns_name,
    engine_errors,
    ensure_network,
    get_or_none,
    labels,
    memory_bytes,
    nano_cpus,
    remove_service,
    service_healthcheck,
    split_lines,
)
from atoll.containers.swarm.stage import mounts, task_binds, task_env, task_user, user_env, user_mounts
from atoll.errors import UsageError
from atoll.task.layout import META_DIR

if TYPE_CHECKING:
    from docker.models.services import Service

    from docker import DockerClient

GPU_RESOURCE = "NVIDIA-GPU"  # the generic resource kind nodes advertise for GPUs
STORE_SECRET_FILE = "atoll-store.json"  # -> /run/secrets/atoll-store.json (stage.STORE_SECRET_PATH)
_FAILED = ("failed", "rejected", "orphaned")
_GIVE_UP_FAILURES = 2  # a new service whose replicas failed this often will not get healthy
_ROLLBACK_GRACE = 120.0
_POLL = 0.5  # seconds between two looks at the engine while a roll-out runs


def service_resources(profile: ResourceProfile | None) -> Any:
    """Swarm ``Resources`` (limits/reservations; GPUs as a generic resource) or None."""
    if profile is None:
        return None
    from docker.types import Resources

    return Resources(
        cpu_limit=nano_cpus(profile.cpu_limit),
        mem_limit=memory_bytes(profile.memory_limit),
        cpu_reservation=nano_cpus(profile.cpu_request),
        mem_reservation=memory_bytes(profile.memory_request),
        generic_resources={GPU_RESOURCE: profile.gpu} if profile.gpu else None,
    )



class SwarmServices(ContainerManager):
    """The deployment primitives of the swarm manager."""

    client: DockerClient

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    def service_name(self, project: str, name: str) -> str:
        return dns_name(self.namespace, project, name)

    @property
    def _polled(self) -> dict[str, float]:
        """When the engine was last asked how each service's roll-out goes (``time.monotonic()``)."""
        return self.__dict__.setdefault("_polled_at", {})  # type: ignore[no-any-return]

    def _service(self, name: str) -> Service | None:
        return get_or_none(self.config, f"inspecting service {name}", lambda: self.client.services.get(name))

    # Start / roll

    def running_generation(self, project: str, name: str) -> int | None:
        service = self._service(self.service_name(project, name))
        if service is None:
            return None
        label = ((service.attrs.get("Spec") or {}).get("Labels") or {}).get(LABEL_GENERATION, "")
        return int(label) if label.isdigit() else 0  # 0: made by an Atoll that named generations otherwise

    def start_generation(
        self, spec: TaskSpec, generation: int, previous: int | None, timeout: float, log: LogSink
    ) -> None:
        """Create the service, or update it to ``generation`` (swarm rolls one replica at a time)."""
        project, name = spec.project.name, spec.name
        service = self.service_name(project, name)
        if spec.port is not None and spec.replicas != 1:
            raise UsageError(
                "--port publishes one replica on the host; with several replicas use the router "
                f"({self.config.router.url}/predict?project=...&deploy=...)"
            )
        ensure_network(self.client, self.config)
        staged = self.stage_task(spec, self.generation_root(project, name, generation))
        kwargs = self._spec(spec, service, str(generation), staged)
        current = self._service(service) if previous is not None else None
        if current is None:
            log(f"creating service {service} with {spec.replicas} replica(s)")
            with engine_errors(self.config, f"creating service {service}"):
                self.client.services.create(**kwargs)
        else:
            log(f"rolling service {service} over to generation {generation}, one replica at a time")
            with engine_errors(self.config, f"updating service {service}"):
                current.update(**kwargs)
        self._polled.pop(service, None)

    def _spec(self, spec: TaskSpec, service: str, generation: str, staged: StagedTask) -> dict[str, Any]:
        from docker.types import EndpointSpec, RestartPolicy, RollbackConfig, ServiceMode, UpdateConfig

        hc = self.config.container_manager.healthcheck
        ports = {spec.port: (SERVICE_PORT, "tcp", "host")} if spec.port is not None else None
        # start-first keeps every old replica serving until its successor is healthy;
        # a host-published port cannot be held by two replicas, so that case stops first.
        order = "stop-first" if ports else "start-first"
        monitor = int(max(hc.interval * (hc.retries + 1), 5) * NS)
        tag = labels(self.config, "deploy", spec.project.name, spec.name, **{LABEL_GENERATION: generation})
        env = task_env(spec, staged, {"ATOLL_HOST": "0.0.0.0", "ATOLL_PORT": str(SERVICE_PORT),
                                      "ATOLL_REPLICA": "{{.Service.Name}}.{{.Task.Slot}}"})
        binds = task_binds(spec, staged, store_file=False)
        if staged.staging == "fetch":  # the records travel as configs: no host path for /atoll/meta
            binds = [b for b in binds if b[1] != META_DIR]
        user = task_user(spec, staged, binds)
        env.update(user_env(user))
        return {
            "image": runnable_ref(spec.build),
            "command": ["python", "-m", "atoll.runner", "serve"],
            "name": service,
            "env": [f"{k}={v}" for k, v in env.items()],
            "workdir": "/app",
            "user": f"{user[0]}:{user[1]}",
            "init": True,
            "labels": tag,
            "container_labels": tag,
            "hostname": "{{.Service.Name}}-{{.Task.Slot}}",
            "mounts": [*mounts(binds), *user_mounts(spec)],
            "secrets": [self._store_secret(service, tag, staged, user)],
            "configs": self._meta_configs(service, tag, staged) if staged.staging == "fetch" else None,
            "networks": [self.namespace],
            "endpoint_spec": EndpointSpec(mode="dnsrr", ports=ports),
            "mode": ServiceMode("replicated", replicas=spec.replicas),
            "healthcheck": service_healthcheck(self.config),
            "restart_policy": RestartPolicy(condition="on-failure", delay=2 * NS, max_attempts=0),
            "update_config": UpdateConfig(
                parallelism=1, delay=0, failure_action="rollback", monitor=monitor, max_failure_ratio=0, order=order
            ),
            "rollback_config": RollbackConfig(
                parallelism=1, delay=0, failure_action="pause", monitor=monitor, max_failure_ratio=0, order=order
            ),
            "resources": service_resources(spec.profile),
            "stop_grace_period": 10 * NS,
        }

    def _object_name(self, service: str, kind: str, generation: str, index: int | None = None) -> str:
        short = hashlib.sha256(service.encode()).hexdigest()[:10]
        return f"{self.namespace[:20]}-{kind}-{short}-{generation}" + (f"-{index}" if index is not None else "")

    def _store_secret(self, service: str, tag: dict[str, str], staged: StagedTask, user: tuple[int, int]) -> Any:
        from docker.types import SecretReference

        name = self._object_name(service, "store", tag[LABEL_GENERATION])
        with engine_errors(self.config, f"creating the secret of {service}"):
            secret = self.client.secrets.create(name=name, data=orjson.dumps(staged.store_config), labels=tag)
        return SecretReference(secret.id, name, filename=STORE_SECRET_FILE, uid=str(user[0]), gid=str(user[1]),
                               mode=0o400)

    def _meta_configs(self, service: str, tag: dict[str, str], staged: StagedTask) -> list[Any]:
        """The task's records as Docker configs at ``/atoll/meta/...`` (fetch staging: any node)."""
        from docker.types import ConfigReference

        refs = []
        meta = staged.layout.meta_dir
        for index, path in enumerate(sorted(p for p in meta.rglob("*.json") if p.is_file())):
            name = self._object_name(service, "meta", tag[LABEL_GENERATION], index)
            with engine_errors(self.config, f"creating the records of {service}"):
                config = self.client.configs.create(name=name, data=path.read_bytes(), labels=tag)
            target = f"{META_DIR}/{path.relative_to(meta).as_posix()}"
            refs.append(ConfigReference(config.id, name, filename=target, mode=0o444))
        return refs

    # Progress

    def rollout_state(self, project: str, name: str, generation: int) -> Rollout:
        service = self.service_name(project, name)
        # The base polls fast; the engine is asked every _POLL s per service, and at once
        # after an answer that was not "running" (a later look must get the same answer).
        if time.monotonic() - self._polled.get(service, 0.0) < _POLL:
            return Rollout("running")
        self._polled[service] = time.monotonic()
        state = self._rollout_state(service, generation)
        if state.state != "running":
            self._polled.pop(service, None)
        return state

    def _rollout_state(self, service: str, generation: int) -> Rollout:
        current = self._service(service)
        if current is None:
            return Rollout("failed", error=f"the service {service} vanished")
        gen = str(generation)
        update = str(((current.attrs or {}).get("UpdateStatus") or {}).get("State") or "")
        wanted = int((((current.attrs.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 1)
        if update.startswith("rollback") or update == "paused":
            error, tail = self._why(service, gen)
            return Rollout("failed", error=f"a new replica failed ({error}); rolled back", log_tail=tail)
        if update in ("", "completed") and len(self._healthy_tasks(service, gen)) >= wanted:
            return Rollout("done", self.status_of(service))
        if not update and len(self._failures(service, gen)) >= _GIVE_UP_FAILURES:
            error, tail = self._why(service, gen)
            return Rollout("failed", error=f"its replicas kept failing: {error}", log_tail=tail)
        return Rollout("running")

    def roll_back(self, project: str, name: str, previous: int, failed: int) -> None:
        """Let swarm finish its own roll-back, or put the previous spec back; drop ``failed``'s objects."""
        service = self.service_name(project, name)

        def update_state() -> str:
            current = self._service(service)
            return str(((current.attrs if current else {}).get("UpdateStatus") or {}).get("State") or "")

        if not update_state().startswith("rollback"):
            self._rollback(service)
        wait_until(lambda: update_state() in ("rollback_completed", "rollback_paused", ""), _ROLLBACK_GRACE)
        self._remove_objects(project, name, lambda gen: gen == str(failed))

    def _rollback(self, service: str) -> None:
        """Put the previous spec back (what ``docker service rollback`` does)."""
        current = self._service(service)
        previous = (current.attrs if current else {}).get("PreviousSpec")
        if current is None or not previous:
            return
        with engine_errors(self.config, f"rolling back {service}"):
            self.client.api.update_service(
                current.id,
                current.version,
                task_template=previous.get("TaskTemplate"),
                name=previous.get("Name"),
                labels=previous.get("Labels"),
                mode=previous.get("Mode"),
                update_config=previous.get("UpdateConfig"),
                rollback_config=previous.get("RollbackConfig"),
                networks=previous.get("Networks"),
                endpoint_spec=previous.get("EndpointSpec"),
            )

    def _tasks(self, service: str) -> list[dict[str, Any]]:
        tasks = get_or_none(
            self.config, f"listing the tasks of {service}", lambda: list(self.client.api.tasks(filters={"service": service}))
        )
        return tasks or []

    @staticmethod
    def _generation(task: dict[str, Any]) -> str | None:
        spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
        return (spec.get("Labels") or {}).get(LABEL_GENERATION)

    def _healthy_tasks(self, service: str, generation: str) -> list[dict[str, Any]]:
        return [
            t for t in self._tasks(service)
            if self._generation(t) == generation and t.get("DesiredState") == "running"
            and t["Status"]["State"] == "running" and self._container_health(t) in ("healthy", None)
        ]

    def _container_health(self, task: dict[str, Any]) -> str | None:
        """The health of the task's container ("healthy", "starting"...; None: no health check)."""
        container_id = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        if not container_id:
            return "starting"
        attrs = get_or_none(self.config, "inspecting a replica", lambda: self.client.api.inspect_container(container_id))
        if attrs is None:
            return "gone"
        health = (attrs.get("State") or {}).get("Health")
        return None if health is None else str(health.get("Status"))

    def _failures(self, service: str, generation: str) -> list[dict[str, Any]]:
        return [t for t in self._tasks(service) if self._generation(t) == generation and t["Status"]["State"] in _FAILED]

    def _why(self, service: str, generation: str) -> tuple[str, str]:
        """The newest task error of ``generation`` and its container's log tail."""
        tasks = [t for t in self._tasks(service) if self._generation(t) == generation]
        tasks.sort(key=lambda t: t.get("UpdatedAt", ""), reverse=True)
        error, tail = "no replica reported an error", ""
        for task in tasks:
            status = task.get("Status") or {}
            if status.get("Err") or status.get("State") in _FAILED:
                error = f"{status.get('State')}: {status.get('Err') or status.get('Message')}"
            container_id = (status.get("ContainerStatus") or {}).get("ContainerID")
            if container_id and not tail:
                tail = self._container_tail(container_id)
            if status.get("Err") and tail:
                break
        if not tasks:
            error = "no replica was scheduled (not enough resources on the nodes?)"
        return error, tail

    def _container_tail(self, container_id: str, lines: int = 20) -> str:
        from docker.errors import APIError

        try:
            raw = self.client.api.logs(container_id, stdout=True, stderr=True, tail=lines)
        except (APIError, OSError):
            return ""
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    # Status, logs, removal

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        service = self.service_name(project, name)
        return self.status_of(service) if self._service(service) is not None else []

    def status_of(self, service: str) -> list[ReplicaStatus]:
        tasks = self._tasks(service)
        current = self._service(service)
        ports = ((current.attrs.get("Endpoint") or {}).get("Ports") or []) if current else []
        published = next((p.get("PublishedPort") for p in ports if p.get("PublishedPort")), None)
        by_slot: dict[int, list[dict[str, Any]]] = {}
        for task in tasks:
            by_slot.setdefault(int(task.get("Slot") or 0), []).append(task)
        out = []
        for slot, history in sorted(by_slot.items()):
            live = [t for t in history if t.get("DesiredState") == "running"]
            if not live:
                continue
            task = max(live, key=lambda t: t.get("UpdatedAt", ""))
            state = task["Status"]["State"]
            if state == "running":
                health = self._container_health(task)
                shown = "healthy" if health in ("healthy", None) else "unhealthy" if health == "unhealthy" else "starting"
            elif state in _FAILED:
                shown = "failed"
            else:
                shown = "starting"
            url = f"http://127.0.0.1:{published}" if published else self._task_url(task)
            out.append(ReplicaStatus(
                name=f"{service}.{slot}", state=shown, url=url, restarts=len(history) - 1,
                error=(task["Status"].get("Err") or None),
            ))
        return out

    def _task_url(self, task: dict[str, Any]) -> str | None:
        for attachment in task.get("NetworksAttachments") or []:
            if ((attachment.get("Network") or {}).get("Spec") or {}).get("Name") == self.namespace:
                addresses = attachment.get("Addresses") or []
                if addresses:
                    return f"http://{addresses[0].split('/')[0]}:{SERVICE_PORT}"
        return None

    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        service = self.service_name(project, name)
        if self._service(service) is None:
            return iter(())
        with engine_errors(self.config, f"reading the logs of {service}"):
            stream = self.client.api.service_logs(service, stdout=True, stderr=True, follow=follow)
        return split_lines(stream)

    def discard_service(self, project: str, name: str) -> None:
        """Remove the service, wait for its containers to go, then its secrets and configs."""
        remove_service(self.client, self.config, self.service_name(project, name))
        self._remove_objects(project, name, lambda gen: True)

    def drop_generations(self, project: str, name: str, keep: int | None) -> None:
        """The staged directories (the base's part) and the secrets/configs of every generation but ``keep``."""
        super().drop_generations(project, name, keep)
        self._remove_objects(project, name, lambda gen: keep is None or gen != str(keep))

    def _remove_objects(self, project: str, name: str, drop: Any) -> None:
        """Remove the deployment's secrets and configs whose generation ``drop(gen)`` selects.

        One still referenced (a roll-back in progress) stays; it goes with the service.
        """
        from docker.errors import APIError, NotFound

        filters = {"label": [f"{LABEL_KIND}=deploy", f"{LABEL_PROJECT}={project}", f"{LABEL_NAME}={name}",
                             f"{LABEL_NAMESPACE}={self.namespace}"]}
        with engine_errors(self.config, f"listing the secrets of {project}:{name}"):
            found = [*self.client.secrets.list(filters=filters), *self.client.configs.list(filters=filters)]
        for item in found:
            generation = ((item.attrs.get("Spec") or {}).get("Labels") or {}).get(LABEL_GENERATION, "")
            if not drop(generation):
                continue
            try:
                item.remove()
            except (NotFound, APIError):
                pass


__all__ = ["STORE_SECRET_FILE", "SwarmServices", "service_resources"]
