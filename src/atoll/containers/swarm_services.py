"""Deployments as swarm services (DESIGN.md §4).

A deployment is the service ``<ns>-<proj>-<depl>``: N replicas of ``python -m
atoll.runner serve`` on the attachable overlay network ``<ns>`` with
``endpoint_mode=dnsrr`` (the router finds them as ``tasks.<service>``; the
ingress mesh is not used), a health check on ``/health``, restart on failure,
rolling updates one replica at a time that roll back by themselves when a new
replica fails, resource limits/reservations, and the store settings as a
Docker secret. ``--port`` publishes the single replica's 8080 in host mode.

Every deploy is a new *generation*: its own staged directory and secret, so
the replicas of the previous generation keep their files while a redeploy
rolls; the old generation's leftovers are removed once the new one is
healthy, the new one's when it fails.
"""

from __future__ import annotations

import hashlib
import secrets as token_source
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.config import Config, ResourceProfile
from atoll.containers.base import LogSink, ReplicaStatus, TaskSpec
from atoll.containers.staging import remove_tree, task_dir_for
from atoll.containers.swarm_build import runnable_ref
from atoll.containers.swarm_engine import (
    HEALTH_PROBE,
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
    split_lines,
    wait_until,
)
from atoll.containers.swarm_stage import StagedTask, stage_container_task
from atoll.errors import ExecutionError, UsageError

if TYPE_CHECKING:
    from docker.models.services import Service

    from atoll.files.base import FileStore
    from docker import DockerClient

GPU_RESOURCE = "NVIDIA-GPU"  # the generic resource kind nodes advertise for GPUs
STORE_SECRET_FILE = "atoll-store.json"  # -> /run/secrets/atoll-store.json
_FAILED = ("failed", "rejected", "orphaned")
_GIVE_UP_FAILURES = 2  # a new service whose replicas failed this often will not get healthy
_ROLLBACK_GRACE = 120.0


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


class SwarmServices:
    """Deploy, inspect and remove deployment services."""

    def __init__(self, client: DockerClient, config: Config, files: FileStore) -> None:
        self.client = client
        self.config = config
        self.files = files

    @property
    def namespace(self) -> str:
        return self.config.container_manager.namespace

    def service_name(self, project: str, name: str) -> str:
        return dns_name(self.namespace, project, name)

    def _service(self, name: str) -> Service | None:
        return get_or_none(self.config, f"inspecting service {name}", lambda: self.client.services.get(name))

    # Deploy

    def _spec(self, spec: TaskSpec, service: str, generation: str, secret: Any, staged: StagedTask) -> dict[str, Any]:
        from docker.types import (
            EndpointSpec,
            Healthcheck,
            RestartPolicy,
            RollbackConfig,
            SecretReference,
            ServiceMode,
            UpdateConfig,
        )

        if spec.port is not None and spec.replicas != 1:
            raise UsageError(
                "--port publishes one replica on the host; with several replicas use the router "
                f"(http://{self.config.router.host}:{self.config.router.port}/predict?project=...&deploy=...)"
            )
        hc = self.config.container_manager.healthcheck
        ports = {spec.port: (SERVICE_PORT, "tcp", "host")} if spec.port is not None else None
        # start-first keeps every old replica serving until its successor is healthy;
        # a host-published port cannot be held by two replicas, so that case stops first.
        order = "stop-first" if ports else "start-first"
        monitor = int(max(hc.interval * (hc.retries + 1), 5) * NS)
        tag = labels(self.config, "deploy", spec.project.name, spec.name, **{LABEL_GENERATION: generation})
        env = {
            **spec.env,
            "ATOLL_TASK_DIR": "/",
            "ATOLL_STORE_CONFIG": f"/run/secrets/{STORE_SECRET_FILE}",
            "ATOLL_HOST": "0.0.0.0",
            "ATOLL_PORT": str(SERVICE_PORT),
            "ATOLL_REPLICA": "{{.Service.Name}}.{{.Task.Slot}}",
            "PYTHONUNBUFFERED": "1",
        }
        return {
            "image": runnable_ref(spec.build),
            "command": ["python", "-m", "atoll.runner", "serve"],
            "name": service,
            "env": [f"{k}={v}" for k, v in env.items()],
            "workdir": "/app",
            "init": True,
            "labels": tag,
            "container_labels": tag,
            "hostname": "{{.Service.Name}}-{{.Task.Slot}}",
            "mounts": staged.mounts(),
            "secrets": [SecretReference(secret.id, secret.name, filename=STORE_SECRET_FILE, mode=0o400)],
            "networks": [self.namespace],
            "endpoint_spec": EndpointSpec(mode="dnsrr", ports=ports),
            "mode": ServiceMode("replicated", replicas=spec.replicas),
            "healthcheck": Healthcheck(
                test=["CMD", "python", "-c", HEALTH_PROBE],
                interval=int(hc.interval * NS),
                timeout=int(hc.timeout * NS),
                retries=hc.retries,
                start_period=int(hc.start_period * NS),
            ),
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

    def deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
        """Create or roll the service; return once ``spec.replicas`` replicas are healthy.

        Raises:
            ExecutionError: a new service never got healthy (it is removed), or a
                redeploy failed (swarm rolled back: the old replicas keep serving).
        """
        project, name = spec.project.name, spec.name
        service = self.service_name(project, name)
        generation = token_source.token_hex(4)
        ensure_network(self.client, self.config)
        root = task_dir_for("deploy", project, name) / generation
        try:
            staged = stage_container_task(spec, root, self.files)
            secret = self._create_secret(spec, service, generation, staged)
            kwargs = self._spec(spec, service, generation, secret, staged)
            current = self._service(service)
            started = time.monotonic()
            if current is None:
                log(f"creating service {service} with {spec.replicas} replica(s)")
                with engine_errors(self.config, f"creating service {service}"):
                    self.client.services.create(**kwargs)
                replicas = self._wait_new(service, generation, spec.replicas, timeout)
            else:
                log(f"rolling service {service} over to generation {generation}, one replica at a time")
                with engine_errors(self.config, f"updating service {service}"):
                    current.update(**kwargs)
                replicas = self._wait_update(service, generation, spec.replicas, timeout, log)
        except BaseException:
            self._drop_generation(project, name, generation, keep=False)
            raise
        log(f"{spec.replicas} replica(s) of {service} healthy after {time.monotonic() - started:.1f}s")
        self._drop_generation(project, name, generation, keep=True)
        return replicas

    def _create_secret(self, spec: TaskSpec, service: str, generation: str, staged: StagedTask) -> Any:
        short = hashlib.sha256(service.encode()).hexdigest()[:10]
        name = f"{self.namespace[:20]}-store-{short}-{generation}"
        data = orjson.dumps(staged.store_config)
        tag = labels(self.config, "deploy", spec.project.name, spec.name, **{LABEL_GENERATION: generation})
        with engine_errors(self.config, f"creating the secret of {service}"):
            return self.client.secrets.create(name=name, data=data, labels=tag)

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

    def _wait_new(self, service: str, generation: str, replicas: int, timeout: float) -> list[ReplicaStatus]:
        def check() -> list[ReplicaStatus] | str | None:
            if len(self._failures(service, generation)) >= _GIVE_UP_FAILURES:
                return "failed"
            if len(self._healthy_tasks(service, generation)) >= replicas:
                return self.status_of(service)
            return None

        outcome = wait_until(check, timeout)
        if isinstance(outcome, list):
            return outcome
        why = self._why(service, generation)
        reason = "its replicas kept failing" if outcome == "failed" else f"not healthy within {timeout:g}s"
        self._remove_service(service)
        raise ExecutionError(f"deployment {service} did not start: {reason}: {why[0]}", log_tail=why[1])

    def _wait_update(
        self, service: str, generation: str, replicas: int, timeout: float, log: LogSink
    ) -> list[ReplicaStatus]:
        def update_state() -> str:
            current = self._service(service)
            return str(((current.attrs if current else {}).get("UpdateStatus") or {}).get("State") or "")

        def check() -> list[ReplicaStatus] | str | None:
            state = update_state()
            if state.startswith("rollback") or state == "paused":
                return state
            if state == "completed" and len(self._healthy_tasks(service, generation)) >= replicas:
                return self.status_of(service)
            return None

        outcome = wait_until(check, timeout)
        if isinstance(outcome, list):
            return outcome
        why = self._why(service, generation)
        if outcome is None or outcome == "paused":
            log(f"the new replicas of {service} are not healthy; rolling back")
            self._rollback(service)
        else:
            log(f"swarm is rolling {service} back to the previous generation")
        wait_until(lambda: update_state() in ("rollback_completed", "rollback_paused"), _ROLLBACK_GRACE)
        reason = "not healthy in time" if outcome is None else "a new replica failed"
        raise ExecutionError(
            f"redeploy of {service} failed ({reason}: {why[0]}); rolled back, the previous replicas keep serving",
            log_tail=why[1],
        )

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

    def status(self, project: str, name: str) -> list[ReplicaStatus]:
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

    def logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        service = self.service_name(project, name)
        if self._service(service) is None:
            return iter(())
        with engine_errors(self.config, f"reading the logs of {service}"):
            stream = self.client.api.service_logs(service, stdout=True, stderr=True, follow=follow)
        return split_lines(stream)

    def remove(self, project: str, name: str) -> None:
        """Remove the service, wait for its containers to go, then its secrets and staged files."""
        self._remove_service(self.service_name(project, name))
        self._remove_secrets(project, name, keep=None)
        remove_tree(task_dir_for("deploy", project, name))

    def _remove_service(self, service: str) -> None:
        remove_service(self.client, self.config, service)

    def _remove_secrets(self, project: str, name: str, keep: str | None) -> None:
        from docker.errors import APIError, NotFound

        filters = {"label": [f"{LABEL_KIND}=deploy", f"{LABEL_PROJECT}={project}", f"{LABEL_NAME}={name}",
                             f"{LABEL_NAMESPACE}={self.namespace}"]}
        with engine_errors(self.config, f"listing the secrets of {project}:{name}"):
            found = self.client.secrets.list(filters=filters)
        for secret in found:
            if keep is not None and (secret.attrs.get("Spec") or {}).get("Labels", {}).get(LABEL_GENERATION) == keep:
                continue
            try:
                secret.remove()
            except NotFound:
                pass
            except APIError:  # still referenced (a rollback in progress): removed with the service
                pass

    def _drop_generation(self, project: str, name: str, generation: str, keep: bool) -> None:
        """After a deploy: keep only ``generation`` (success) or drop only it (failure)."""
        root = task_dir_for("deploy", project, name)
        if keep:
            self._remove_secrets(project, name, keep=generation)
            for child in root.iterdir() if root.is_dir() else []:
                if child.name != generation:
                    remove_tree(child)
            return
        from docker.errors import APIError, NotFound

        service = self._service(self.service_name(project, name))
        in_use = service is not None and generation in str((service.attrs.get("Spec") or {}).get("Labels"))
        if in_use:
            return
        filters = {"label": [f"{LABEL_GENERATION}={generation}", f"{LABEL_NAMESPACE}={self.namespace}"]}
        with engine_errors(self.config, "removing a failed generation's secret"):
            for secret in self.client.secrets.list(filters=filters):
                try:
                    secret.remove()
                except (NotFound, APIError):
                    pass
        remove_tree(Path(root / generation))


__all__ = ["HEALTH_PROBE", "SwarmServices", "service_resources"]
