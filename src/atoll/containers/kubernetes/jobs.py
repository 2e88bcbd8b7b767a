"""Trainings as ``batch/v1`` Jobs: start, state, logs, cancel, removal.

The state comes from the Job's conditions (``Complete`` / ``Failed``) and,
before the Job controller gives up, from its pod: a pod stuck on an image
pull, evicted, killed for memory or past its deadline ends the training at
once (FAILED, with that reason) instead of leaving it RUNNING. Cancelling
suspends the Job (``spec.suspend``: the Job controller stops its pod with
SIGTERM and the grace period, so the runner saves the notebook) and waits for
the pod to go; the Job stays, so the training's state can still be read, until
the training is removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar

from atoll.containers.base import TaskSpec, TaskStatus
from atoll.containers.kubernetes.manifests import KubeTasks, training_manifests
from atoll.containers.kubernetes.objects import selector
from atoll.containers.kubernetes.pods import exit_code, pod_problem
from atoll.errors import BackendError, NotFoundError

_WAIT_FOR_POD = 0.2  # seconds between looks while following a training that has no pod yet
SIGTERM_EXIT = 143  # what a task stopped by SIGTERM exits with (128 + 15)


def _conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items = (job.get("status") or {}).get("conditions") or []
    return {c["type"]: c for c in items if c.get("status") == "True"}


class KubeTrainings(KubeTasks):
    """The trainings of one cluster namespace (task id ``<project>/train/<name>``)."""

    kind: ClassVar[str] = "train"

    def start(self, spec: TaskSpec) -> None:
        """Replace any leftovers of the same training, then create its Secret, ConfigMap and Job."""
        manifests = training_manifests(spec, self.config)  # first: a bad spec creates nothing
        self.kube.ensure_namespace()
        self.discard(spec.project.name, spec.name)
        for manifest in manifests[:-1]:
            self.kube.apply(manifest)
        self.kube.create(manifests[-1])

    def _job(self, project: str, name: str) -> dict[str, Any]:
        job = self.kube.read("Job", self.objects(project, name).base)
        if job is None:
            raise NotFoundError(f"training {project}:{name} has no Job in namespace {self.kube.namespace} "
                                "(removed, or expired after container_manager.kubernetes.job_ttl_seconds)")
        return job

    def _pods(self, project: str, name: str) -> list[dict[str, Any]]:
        return self.kube.pods(selector("train", project, name))

    def status(self, project: str, name: str) -> TaskStatus:
        """The training as the cluster sees it.

        Raises:
            NotFoundError: no such Job.
        """
        task_id = f"{project}/train/{name}"
        job = self._job(project, name)
        conditions = _conditions(job)
        pods = self._pods(project, name)
        pod = pods[-1] if pods else None
        if "Complete" in conditions:
            return TaskStatus(task_id, running=False, exit_code=0)
        if (job.get("spec") or {}).get("suspend") or "Suspended" in conditions:
            return TaskStatus(task_id, running=False, exit_code=SIGTERM_EXIT,
                              error="killed by SIGTERM (cancelled: the Job was suspended)")
        problem = pod_problem(pod) if pod is not None else None
        if "Failed" in conditions:
            failed = conditions["Failed"]
            code = exit_code(pod) if pod is not None else None
            if failed.get("reason") == "DeadlineExceeded":
                problem = f"deadline exceeded: {failed.get('message') or 'activeDeadlineSeconds passed'}"
            return TaskStatus(task_id, running=False, exit_code=code if code is not None else 1,
                              error=problem or failed.get("message") or failed.get("reason") or "the Job failed")
        if problem is not None:
            return TaskStatus(task_id, running=False, exit_code=exit_code(pod) if pod else None, error=problem)
        return TaskStatus(task_id, running=True)

    def logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        """The training pod's lines; with ``follow`` until it ends.

        Raises:
            NotFoundError: no such Job.
        """
        self._job(project, name)
        if not follow:
            pods = self._pods(project, name)
            if pods:
                yield from self.kube.pod_log(pods[-1]["metadata"]["name"]).splitlines()
            return
        deadline = time.monotonic() + self.config.container_manager.api_timeout
        while True:  # wait for the pod's container to start (or the training to end without one)
            pods = self._pods(project, name)
            phase = (pods[-1].get("status") or {}).get("phase") if pods else None
            if phase in ("Running", "Succeeded", "Failed"):
                yield from self.kube.follow_log(pods[-1]["metadata"]["name"])
                return
            if not self.status(project, name).running or time.monotonic() > deadline:
                if pods:
                    yield from self.kube.pod_log(pods[-1]["metadata"]["name"]).splitlines()
                return
            time.sleep(_WAIT_FOR_POD)

    def stop(self, project: str, name: str) -> None:
        """Suspend the Job: its pod is stopped (SIGTERM, grace period) and removed; the Job stays.

        No error when the training already ended (or its Job is gone).
        """
        job = self.kube.read("Job", self.objects(project, name).base)
        if job is None or "Complete" in _conditions(job) or "Failed" in _conditions(job):
            return
        self.kube.patch("Job", self.objects(project, name).base, {"spec": {"suspend": True}})
        self._wait_pods_gone(project, name)

    def discard(self, project: str, name: str) -> None:
        """Remove the Job, its pod, Secret and ConfigMap (missing is fine)."""
        self.kube.delete_selected(selector("train", project, name))
        self._wait_pods_gone(project, name)

    def _wait_pods_gone(self, project: str, name: str) -> None:
        if not self.kube.wait_gone("Pod", selector("train", project, name)):
            raise BackendError(f"the pod of training {project}:{name} did not go away within "
                               f"{self.config.container_manager.api_timeout:g}s")


__all__ = ["KubeTrainings"]
