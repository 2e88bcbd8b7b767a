"""Deployments as ``apps/v1`` Deployments: roll out a generation, watch it, roll it back, remove it.

Each deploy is a *generation* (label ``atoll.io/generation`` on the pod
template, its own meta ConfigMap). The Deployment rolls pods over with
``maxUnavailable: 0``, so the old pods keep serving until new ones are ready.
A roll-out fails when a new pod is stuck (image pull, crash loop, OOM, failed
fetch) or no new pod got ready within ``--timeout``; then the template of the
previous generation (kept in an annotation) is put back — the cluster's own
``kubectl rollout undo``, done through the API — and the error carries the
failing pod's log tail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from atoll.containers.base import ReplicaStatus, TaskSpec
from atoll.containers.kubernetes.manifests import KubeTasks, deployment_manifests
from atoll.containers.kubernetes.objects import LABEL_GENERATION, SERVICE_PORT, selector
from atoll.containers.kubernetes.pods import is_ready, pod_problem, replica_status
from atoll.errors import BackendError, ConflictError

PREVIOUS_TEMPLATE = "atoll.io/previous-template"
ROLLOUT_STARTED = "atoll.io/rollout-started"
ROLLOUT_TIMEOUT = "atoll.io/rollout-timeout"
LOG_TAIL_LINES = 20


@dataclass
class RolloutView:
    """How one generation's roll-out goes: ``running``, ``done`` or ``failed`` (with why and a log tail)."""

    state: Literal["running", "done", "failed"]
    replicas: list[ReplicaStatus] = field(default_factory=list)
    error: str | None = None
    log_tail: str = ""


def _generation(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(LABEL_GENERATION)


class KubeDeployments(KubeTasks):
    """The deployments of one cluster namespace."""

    kind: ClassVar[str] = "deploy"

    def _read(self, project: str, name: str) -> dict[str, Any] | None:
        return self.kube.read("Deployment", self.objects(project, name).base)

    def running_generation(self, project: str, name: str) -> str | None:
        """The generation of the serving template (None when there is no Deployment).

        Raises:
            ConflictError: the Deployment is being deleted.
        """
        depl = self._read(project, name)
        if depl is None:
            return None
        if depl["metadata"].get("deletionTimestamp"):
            raise ConflictError(f"deployment {project}:{name} is being removed; try again in a moment")
        return _generation(depl["spec"]["template"])

    def start(self, spec: TaskSpec, generation: str, timeout: float) -> None:
        """Apply the generation's objects; the Deployment rolls its pods over by itself."""
        manifests = deployment_manifests(spec, self.config, generation, timeout)
        self.kube.ensure_namespace()
        existing = self._read(spec.project.name, spec.name)
        for manifest in manifests:
            if manifest["kind"] == "Deployment":
                notes = manifest["metadata"].setdefault("annotations", {})
                notes[ROLLOUT_STARTED] = f"{time.time():.3f}"
                notes[ROLLOUT_TIMEOUT] = f"{timeout:g}"
                if existing is not None:
                    notes[PREVIOUS_TEMPLATE] = json.dumps(existing["spec"]["template"], sort_keys=True)
            self.kube.apply(manifest)
        objects = self.objects(spec.project.name, spec.name)
        if not any(m["kind"] == "HorizontalPodAutoscaler" for m in manifests):
            self.kube.delete("HorizontalPodAutoscaler", objects.base)  # the profile lost its auto_scale
        if spec.port is None:
            self.kube.delete("Service", objects.exposed_service)

    def rollout(self, project: str, name: str, generation: str) -> RolloutView:
        """How the roll-out of ``generation`` goes (polled until done or failed)."""
        depl = self._read(project, name)
        if depl is None:
            return RolloutView("failed", error="the Deployment disappeared")
        pods = self.kube.pods(selector("deploy", project, name))
        replicas = [replica_status(p, SERVICE_PORT) for p in pods]
        fresh = [p for p in pods if _generation(p) == generation]
        for pod in fresh:
            problem = pod_problem(pod)
            if problem:
                return RolloutView("failed", replicas, f"pod {pod['metadata']['name']}: {problem}",
                                   self.kube.pod_log(pod["metadata"]["name"], LOG_TAIL_LINES))
        wanted = int(depl["spec"].get("replicas") or 1)
        ready = [p for p in fresh if is_ready(p)]
        if len(ready) >= wanted and len(fresh) == len(pods):
            return RolloutView("done", replicas)
        notes = depl["metadata"].get("annotations") or {}
        started = float(notes.get(ROLLOUT_STARTED) or time.time())
        timeout = float(notes.get(ROLLOUT_TIMEOUT) or self.config.container_manager.api_timeout)
        if time.time() - started > timeout:
            waiting = [p for p in fresh if not is_ready(p)]
            tail = self.kube.pod_log(waiting[0]["metadata"]["name"], LOG_TAIL_LINES) if waiting else ""
            return RolloutView("failed", replicas,
                               f"{len(ready)} of {wanted} new pods got ready within {timeout:g}s", tail)
        return RolloutView("running", replicas)

    def roll_back(self, project: str, name: str, failed: str) -> None:
        """Put the previous generation's template back, drop the failed generation's ConfigMap, wait for its pods to go.

        Raises:
            BackendError: the Deployment has no previous template to return to.
        """
        depl = self._read(project, name)
        if depl is None:
            raise BackendError(f"deployment {project}:{name} is gone: nothing to roll back")
        notes = dict(depl["metadata"].get("annotations") or {})
        previous = notes.pop(PREVIOUS_TEMPLATE, None)
        if previous is None:
            raise BackendError(f"deployment {project}:{name} has no previous template to roll back to")
        body: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {k: v for k, v in depl["metadata"].items() if k in ("name", "namespace", "labels")},
                "spec": dict(depl["spec"], template=json.loads(previous))}
        body["metadata"]["annotations"] = {k: v for k, v in notes.items() if k not in (ROLLOUT_STARTED, ROLLOUT_TIMEOUT)}
        self.kube.apply(body)
        self.kube.delete("ConfigMap", self.objects(project, name).meta_config(failed))
        # The Deployment controller removes the failed generation's pods: what serves
        # afterwards is the previous generation only (bounded by api_timeout).
        self.kube.wait_gone("Pod", f"{selector('deploy', project, name)},{LABEL_GENERATION}={failed}")

    def keep_only(self, project: str, name: str, generation: str) -> None:
        """Remove the ConfigMaps of every other generation (once ``generation`` serves)."""
        for config_map in self.kube.find("ConfigMap", selector("deploy", project, name)):
            own = _generation(config_map)
            if own is not None and own != generation:
                self.kube.delete("ConfigMap", config_map["metadata"]["name"])

    def discard(self, project: str, name: str) -> None:
        """Remove the Deployment, its pods, Services, autoscaler, Secret and ConfigMaps."""
        chosen = selector("deploy", project, name)
        self.kube.delete_selected(chosen)
        if not self.kube.wait_gone("Pod", chosen):
            raise BackendError(f"the pods of deployment {project}:{name} did not go away within "
                               f"{self.config.container_manager.api_timeout:g}s")

    def status(self, project: str, name: str) -> list[ReplicaStatus]:
        """Each pod's state ([] when nothing runs)."""
        return [replica_status(p, SERVICE_PORT) for p in self.kube.pods(selector("deploy", project, name))]

    def logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        """Lines of every pod, prefixed ``[<pod>] `` (with ``follow``: the newest pod's, as they come)."""
        pods = self.kube.pods(selector("deploy", project, name))
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            if follow and pod is pods[-1]:
                for line in self.kube.follow_log(pod_name):
                    yield f"[{pod_name}] {line}"
            else:
                for line in self.kube.pod_log(pod_name).splitlines():
                    yield f"[{pod_name}] {line}"


__all__ = ["KubeDeployments", "RolloutView"]
