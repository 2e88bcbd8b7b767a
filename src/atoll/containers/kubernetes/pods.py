"""Reading a pod's state the way a user wants it explained (pure functions over the API's JSON).

A task that will never run or finish says why: an image the node cannot pull
(``ImagePullBackOff``), a container killed for memory (``OOMKilled``), a pod
evicted by the node, a deadline exceeded, a crash loop, a failing fetch of
the inputs (the ``fetch`` init container).
"""

from __future__ import annotations

from typing import Any

from atoll.containers.base import ReplicaStatus
from atoll.containers.spec import describe_exit

Pod = dict[str, Any]

# Waiting reasons that do not resolve by waiting longer.
STUCK = {
    "ImagePullBackOff": "the node cannot pull the image",
    "ErrImagePull": "the node cannot pull the image",
    "InvalidImageName": "the image reference is invalid",
    "CreateContainerConfigError": "the container cannot be configured (a missing Secret or ConfigMap?)",
    "CreateContainerError": "the container cannot be created",
    "CrashLoopBackOff": "the container keeps crashing",
}


def _statuses(pod: Pod, which: str = "containerStatuses") -> list[dict[str, Any]]:
    return list((pod.get("status") or {}).get(which) or [])


def memory_limit(pod: Pod) -> str | None:
    for container in pod.get("spec", {}).get("containers", []):
        limit = (container.get("resources") or {}).get("limits", {}).get("memory")
        if limit:
            return str(limit)
    return None


def _terminated_problem(pod: Pod, term: dict[str, Any], init: bool) -> str | None:
    code = int(term.get("exitCode") or 0)
    reason = term.get("reason") or ""
    if reason == "OOMKilled":
        limit = memory_limit(pod)
        return "killed: out of memory" + (f" (limit {limit})" if limit else "")
    if code != 0:
        what = "fetching the inputs failed" if init else "the task failed"
        return f"{what}: {describe_exit(code)}" + (f" ({reason})" if reason and reason != "Error" else "")
    return None


def pod_problem(pod: Pod) -> str | None:
    """Why the pod will not run or finish as it should (None while all is well or still starting)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or ""
    if reason == "Evicted":
        return f"evicted: {status.get('message') or 'the node reclaimed resources'}"
    if reason == "DeadlineExceeded":
        return f"deadline exceeded: {status.get('message') or 'the task ran longer than allowed'}"
    for which, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for container in _statuses(pod, which):
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in STUCK:
                detail = waiting.get("message") or ""
                return f"{waiting['reason']}: {STUCK[waiting['reason']]}" + (f" ({detail})" if detail else "")
            if "terminated" in state and (init or status.get("phase") == "Failed"):
                problem = _terminated_problem(pod, state["terminated"], init)
                if problem:
                    return problem
            last = (container.get("lastState") or {}).get("terminated")
            if last and last.get("reason") == "OOMKilled" and not init:
                return _terminated_problem(pod, last, False)
    return None


def exit_code(pod: Pod) -> int | None:
    """The task container's exit code once it ended."""
    for container in _statuses(pod):
        term = (container.get("state") or {}).get("terminated")
        if term is not None:
            return int(term.get("exitCode") or 0)
    return None


def is_ready(pod: Pod) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def restarts(pod: Pod) -> int:
    return sum(int(c.get("restartCount") or 0) for c in _statuses(pod))


def replica_status(pod: Pod, port: int) -> ReplicaStatus:
    """A deployment pod as ``depl info`` shows it: healthy, starting, unhealthy or failed (and why)."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    ip = status.get("podIP")
    url = f"http://{ip}:{port}" if ip else None
    problem = pod_problem(pod)
    if pod["metadata"].get("deletionTimestamp"):
        state = "stopped"
    elif problem or status.get("phase") == "Failed":
        state = "failed"
    elif is_ready(pod):
        state = "healthy"
    elif status.get("phase") == "Running" and restarts(pod):
        state = "unhealthy"
    else:
        state = "starting"
    return ReplicaStatus(name=name, state=state, url=url, restarts=restarts(pod), error=problem)


__all__ = ["STUCK", "exit_code", "is_ready", "memory_limit", "pod_problem", "replica_status", "restarts"]
