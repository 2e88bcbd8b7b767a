"""A test control plane for :mod:`atoll.testing.kube_api`: the controllers and a kubelet, in miniature.

The emulator only stores objects. :class:`TestController` plays the parts of
the cluster Atoll relies on, through the same HTTP API and the official
client (so every change it makes is an API call, as in a cluster):

- job controller: one pod per Job (labels ``job-name``, ownerReference),
  Job conditions ``Complete`` / ``Failed`` (reason ``BackoffLimitExceeded``
  or ``DeadlineExceeded``) from the pod's phase;
- deployment controller: pods of the current template (``pod-template-hash``)
  rolled with maxSurge 1 / maxUnavailable 0, old pods removed once the new
  ones are ready, status ``replicas`` / ``updatedReplicas`` / ``readyReplicas``;
- statefulset controller: pod ``<name>-<i>`` per replica (label
  ``controller-revision-hash``), a claim ``<template>-<name>-<i>`` per volume
  claim template (kept when the StatefulSet goes, as a cluster keeps it), a
  pod of an older template deleted and made again, status ``replicas`` /
  ``updatedReplicas`` / ``readyReplicas``;
- garbage collector: pods whose owner is gone are deleted (what foreground
  propagation does in a cluster);
- a kubelet (:class:`Kubelet`) that decides each pod's status:
  :class:`ScriptedKubelet` from rules (succeed, fail, OOMKilled,
  ImagePullBackOff, Evicted, deadline, ready, never ready), or the Docker
  kubelet of :mod:`atoll.testing.kube_docker` that really runs the containers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from atoll.testing.kube_api import matches

Outcome = Literal["succeed", "fail", "oom", "image-pull", "evicted", "deadline", "ready", "unready", "run"]
Pod = dict[str, Any]
TICK = 0.05  # seconds between two reconciliations


class Kubelet(ABC):
    """Runs (or pretends to run) the pods the controller created."""

    @abstractmethod
    def sync(self, pod: Pod) -> dict[str, Any] | None:
        """The pod's new ``status`` (None when unchanged)."""

    def forget(self, pod: Pod) -> None:
        """The pod was deleted: stop what runs for it."""

    def close(self) -> None:
        """Stop everything still running."""


def _container(pod: Pod) -> str:
    return str(pod["spec"]["containers"][0]["name"])


def terminated(pod: Pod, code: int, reason: str, phase: str = "Failed", message: str = "") -> dict[str, Any]:
    """A ``status`` for a pod whose container ended."""
    state = {"terminated": {"exitCode": code, "reason": reason, "message": message}}
    return {"phase": phase, "containerStatuses": [
        {"name": _container(pod), "image": pod["spec"]["containers"][0]["image"], "imageID": "", "ready": False,
         "restartCount": 0, "state": state}]}


def running(pod: Pod, ready: bool, restarts: int = 0, ip: str = "10.0.0.1") -> dict[str, Any]:
    """A ``status`` for a running pod, ready or not."""
    flag = "True" if ready else "False"
    return {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": flag}, {"type": "ContainersReady", "status": flag}],
            "containerStatuses": [{"name": _container(pod), "image": pod["spec"]["containers"][0]["image"],
                                   "imageID": "", "ready": ready, "restartCount": restarts,
                                   "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}


def scripted_status(pod: Pod, outcome: Outcome) -> dict[str, Any]:
    """The status a kubelet reports for ``outcome``."""
    image = pod["spec"]["containers"][0]["image"]
    if outcome == "succeed":
        return terminated(pod, 0, "Completed", "Succeeded")
    if outcome == "fail":
        return terminated(pod, 1, "Error")
    if outcome == "oom":
        return terminated(pod, 137, "OOMKilled")
    if outcome == "image-pull":
        waiting = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
        return {"phase": "Pending", "containerStatuses": [
            {"name": _container(pod), "image": image, "imageID": "", "ready": False, "restartCount": 0,
             "state": waiting}]}
    if outcome == "evicted":
        return {"phase": "Failed", "reason": "Evicted",
                "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 20Mi."}
    if outcome == "deadline":
        return dict(terminated(pod, 137, "Error"), reason="DeadlineExceeded",
                    message="Pod was active on the node longer than the specified deadline")
    if outcome == "run":
        return running(pod, ready=False)
    return running(pod, ready=outcome == "ready", restarts=0 if outcome == "ready" else 3)


def _default_rule(pod: Pod) -> Outcome:
    return "succeed" if "job-name" in pod["metadata"].get("labels", {}) else "ready"


class ScriptedKubelet(Kubelet):
    """Pods go Pending, then to the outcome ``rule(pod)`` names; ``logs(pod)`` is what they print.

    Args:
        rule: outcome of a pod (default: Job pods succeed, other pods get ready).
        logs: the pod's log (default: one line naming the pod).
        set_log: where logs go (the emulator's ``set_pod_log``).
    """

    def __init__(self, rule: Callable[[Pod], Outcome] | None = None, logs: Callable[[Pod], str] | None = None,
                 set_log: Callable[[str, str, str], None] | None = None) -> None:
        self.rule = rule or _default_rule
        self.logs = logs or (lambda pod: f"pod {pod['metadata']['name']} says hello\n")
        self.set_log = set_log
        self._seen: set[str] = set()

    def sync(self, pod: Pod) -> dict[str, Any] | None:
        uid = pod["metadata"]["uid"]
        if uid not in self._seen:
            self._seen.add(uid)
            return {"phase": "Pending"}
        status = scripted_status(pod, self.rule(pod))
        if self.set_log is not None:
            self.set_log(pod["metadata"]["namespace"], pod["metadata"]["name"], self.logs(pod))
        current = pod.get("status") or {}
        return None if all(current.get(k) == v for k, v in status.items()) else status


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _ready(pod: Pod) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class TestController:
    """Reconciles Jobs, Deployments and pods of an emulated cluster in a background thread.

    Args:
        api_client: a ``kubernetes.client.ApiClient`` for the emulated cluster.
        kubelet: decides the pods' statuses.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, api_client: Any, kubelet: Kubelet) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.kubelet = kubelet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self._counter = 0

    def __enter__(self) -> TestController:
        self._thread = threading.Thread(target=self._run, name="kube-test-controller", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.kubelet.close()

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - kept for the test to report; the loop goes on
                self.errors.append(exc)

    @staticmethod
    def _items(call: Callable[..., Any]) -> list[dict[str, Any]]:
        raw = call(_preload_content=False)
        return list(json.loads(raw.data)["items"])

    def reconcile(self) -> None:
        """One pass: GC, jobs, deployments, then the kubelet over every pod."""
        jobs = self._items(self.batch.list_job_for_all_namespaces)
        deployments = self._items(self.apps.list_deployment_for_all_namespaces)
        statefulsets = self._items(self.apps.list_stateful_set_for_all_namespaces)
        pods = self._items(self.core.list_pod_for_all_namespaces)
        owners = {o["metadata"]["uid"] for o in jobs + deployments + statefulsets}
        live = []
        for pod in pods:
            refs = pod["metadata"].get("ownerReferences") or []
            if refs and refs[0]["uid"] not in owners:
                self._delete_pod(pod)
            else:
                live.append(pod)
        for job in jobs:
            self._job(job, [p for p in live if self._owned(p, job)])
        for depl in deployments:
            self._deployment(depl, [p for p in live if self._owned(p, depl)])
        for sts in statefulsets:
            self._statefulset(sts, [p for p in live if self._owned(p, sts)])
        for pod in self._items(self.core.list_pod_for_all_namespaces):
            status = self.kubelet.sync(pod)
            if status is not None:
                self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"],
                                                      {"status": status})

    @staticmethod
    def _owned(pod: Pod, owner: dict[str, Any]) -> bool:
        refs = pod["metadata"].get("ownerReferences") or []
        return bool(refs) and refs[0]["uid"] == owner["metadata"]["uid"]

    def _delete_pod(self, pod: Pod) -> None:
        from kubernetes.client import ApiException

        self.kubelet.forget(pod)
        try:
            self.core.delete_namespaced_pod(pod["metadata"]["name"], pod["metadata"]["namespace"])
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _new_pod(self, owner: dict[str, Any], kind: str, name: str, extra_labels: dict[str, str]) -> None:
        template = owner["spec"]["template"]
        meta = owner["metadata"]
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {**template["metadata"].get("labels", {}), **extra_labels},
                         "annotations": dict(template["metadata"].get("annotations", {})),
                         "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": kind, "name": meta["name"],
                                              "uid": meta["uid"], "controller": True}]},
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        self.core.create_namespaced_pod(meta["namespace"], pod)  # type: ignore[arg-type]  # the client takes dicts too

    def _job(self, job: dict[str, Any], pods: list[Pod]) -> None:
        meta = job["metadata"]
        status = job.get("status") or {}
        if any(c.get("status") == "True" for c in status.get("conditions") or []):
            return
        if not pods:
            self._new_pod(job, "Job", f"{meta['name']}-{self._suffix()}",
                          {"job-name": meta["name"], "batch.kubernetes.io/job-name": meta["name"]})
            self.batch.patch_namespaced_job_status(meta["name"], meta["namespace"],
                                                   {"status": {"active": 1, "startTime": meta["creationTimestamp"]}})
            return
        phase = (pods[0].get("status") or {}).get("phase")
        if phase == "Succeeded":
            new = {"active": 0, "succeeded": 1, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
        elif phase == "Failed":
            reason = "DeadlineExceeded" if pods[0]["status"].get("reason") == "DeadlineExceeded" else "BackoffLimitExceeded"
            message = "Job was active longer than specified deadline" if reason == "DeadlineExceeded" \
                else "Job has reached the specified backoff limit"
            new = {"active": 0, "failed": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": reason},
                {"type": "Failed", "status": "True", "reason": reason, "message": message}]}
        else:
            return
        self.batch.patch_namespaced_job_status(meta["name"], meta["namespace"], {"status": new})

    def _suffix(self) -> str:
        self._counter += 1
        return hashlib.sha256(str(self._counter).encode()).hexdigest()[:5]

    def _deployment(self, depl: dict[str, Any], pods: list[Pod]) -> None:
        meta = depl["metadata"]
        selector = ",".join(f"{k}={v}" for k, v in depl["spec"]["selector"]["matchLabels"].items())
        pods = [p for p in pods if matches(selector, p["metadata"].get("labels"))]
        replicas = int(depl["spec"].get("replicas", 1))
        current = template_hash(depl["spec"]["template"])
        new = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == current]
        old = [p for p in pods if p not in new]
        ready_new = [p for p in new if _ready(p)]
        ready_old = [p for p in old if _ready(p)]
        if len(new) > replicas:
            for pod in (new[replicas:]):
                self._delete_pod(pod)
        elif len(new) < replicas and len(pods) < replicas + 1:  # maxSurge 1
            self._new_pod(depl, "Deployment", f"{meta['name']}-{current}-{self._suffix()}",
                          {"pod-template-hash": current})
        if old and len(ready_new) >= replicas:
            for pod in old:
                self._delete_pod(pod)
        elif old and len(ready_new) + len(ready_old) > replicas:  # maxUnavailable 0: keep `replicas` ready
            self._delete_pod(min(old, key=_ready))
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods),
                  "updatedReplicas": len(new), "readyReplicas": len(ready_new) + len(ready_old),
                  "availableReplicas": len(ready_new) + len(ready_old)}
        if {k: (depl.get("status") or {}).get(k) for k in status} != status:
            self.apps.patch_namespaced_deployment_status(meta["name"], meta["namespace"], {"status": status})

    def _statefulset(self, sts: dict[str, Any], pods: list[Pod]) -> None:
        from kubernetes.client import ApiException

        meta = sts["metadata"]
        replicas = int(sts["spec"].get("replicas", 1))
        current = template_hash(sts["spec"]["template"])
        by_name = {p["metadata"]["name"]: p for p in pods}
        for index in range(replicas):
            pod_name = f"{meta['name']}-{index}"
            pod = by_name.get(pod_name)
            if pod is not None and pod["metadata"]["labels"].get("controller-revision-hash") != current:
                self._delete_pod(pod)  # RollingUpdate: replace the pod of an older template
                continue
            if pod is None:
                for claim in sts["spec"].get("volumeClaimTemplates") or []:
                    body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": f"{claim['metadata']['name']}-{pod_name}",
                                         "labels": dict(claim["metadata"].get("labels") or {})},
                            "spec": claim["spec"]}
                    try:
                        self.core.create_namespaced_persistent_volume_claim(meta["namespace"], body)  # type: ignore[arg-type]
                    except ApiException as exc:
                        if exc.status != 409:
                            raise
                self._new_pod(sts, "StatefulSet", pod_name, {"controller-revision-hash": current,
                                                              "statefulset.kubernetes.io/pod-name": pod_name})
        for pod in pods:
            if pod["metadata"]["name"] not in {f"{meta['name']}-{i}" for i in range(replicas)}:
                self._delete_pod(pod)
        updated = [p for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == current]
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods),
                  "updatedReplicas": len(updated), "readyReplicas": len([p for p in pods if _ready(p)]),
                  "availableReplicas": len([p for p in pods if _ready(p)])}
        if {k: (sts.get("status") or {}).get(k) for k in status} != status:
            self.apps.patch_namespaced_stateful_set_status(meta["name"], meta["namespace"], {"status": status})


__all__ = ["Kubelet", "Outcome", "ScriptedKubelet", "TestController", "running", "scripted_status", "terminated"]
