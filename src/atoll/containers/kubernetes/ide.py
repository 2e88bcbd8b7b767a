"""The IDE on a cluster: Jupyter Lab in a pod, a Service in front, the token in a Secret.

Atoll waits for the pod to be ready (its port answering) and then tells the
user how to reach it: the NodePort of ``--port`` on any node
(``container_manager.kubernetes.service_type`` NodePort/LoadBalancer), or the
``kubectl port-forward`` line for the ClusterIP Service.
"""

from __future__ import annotations

import time
from typing import ClassVar

from atoll.containers.base import TaskSpec
from atoll.containers.kubernetes.manifests import IDE_PORT, KubeTasks, TaskObjects, ide_manifests
from atoll.containers.kubernetes.objects import selector
from atoll.containers.kubernetes.pods import is_ready, pod_problem
from atoll.errors import ConflictError, ExecutionError

START_TIMEOUT = 300.0  # image pull + Jupyter start


class KubeIde(KubeTasks):
    """One Jupyter Lab pod per project."""

    kind: ClassVar[str] = "ide"

    @classmethod
    def objects(cls, project: str, name: str = "ide") -> TaskObjects:
        return super().objects(project, name)

    def exit_reason(self, project: str) -> str | None:
        """None while the IDE pod exists and is not failing; else why not."""
        pod = self.kube.read("Pod", self.objects(project).base)
        if pod is None:
            return "not started"
        return pod_problem(pod) or ((pod.get("status") or {}).get("phase") == "Failed" and "failed") or None

    def start(self, spec: TaskSpec, token: str, timeout: float = START_TIMEOUT) -> str:
        """Create the IDE's objects, wait until Jupyter's port answers; return how to reach it.

        Raises:
            ConflictError: the project's IDE already runs.
            ExecutionError: the pod failed or was not ready within ``timeout`` (with its log tail).
        """
        project = spec.project.name
        if self.exit_reason(project) is None:
            raise ConflictError(f"the IDE of project {project} already runs "
                                f"(stop it with `atoll note --stop --proj {project}`)")
        manifests = ide_manifests(spec, self.config, token)
        self.kube.ensure_namespace()
        self.discard(project)
        for manifest in manifests:
            self.kube.apply(manifest)
        name = self.objects(project).base
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.kube.read("Pod", name)
            problem = pod_problem(pod) if pod else "the pod disappeared"
            if problem:
                tail = self.kube.pod_log(name, 20)
                self.discard(project)
                raise ExecutionError(f"Jupyter Lab did not start: {problem}", log_tail=tail)
            if pod is not None and is_ready(pod):
                return self.address(spec, token)
            time.sleep(0.2)
        tail = self.kube.pod_log(name, 20)
        self.discard(project)
        raise ExecutionError(f"Jupyter Lab was not ready within {timeout:g}s", log_tail=tail)

    def address(self, spec: TaskSpec, token: str) -> str:
        """Where the user opens Jupyter (the token is theirs: printed to them only)."""
        name = self.objects(spec.project.name).base
        if spec.port is not None:
            return f"http://<any node address>:{spec.port}/lab?token={token}"
        return (f"kubectl -n {self.kube.namespace} port-forward service/{name} {self.config.ide.port}:{IDE_PORT}"
                f"  then  http://127.0.0.1:{self.config.ide.port}/lab?token={token}")

    def log_tail(self, project: str) -> str:
        return self.kube.pod_log(self.objects(project).base, 20)

    def discard(self, project: str) -> None:
        """Remove the IDE's pod, Service, Secrets and ConfigMap (missing is fine)."""
        chosen = selector("ide", project, "ide")
        self.kube.delete_selected(chosen)
        self.kube.wait_gone("Pod", chosen)


__all__ = ["KubeIde"]
