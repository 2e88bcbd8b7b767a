"""The IDE on the swarm runtime: Jupyter Lab in a container of the build.

The container ``<ns>-ide-<proj>`` publishes Jupyter's port on 127.0.0.1
only; the token reaches Jupyter in its config file (written 0600 by
:meth:`ContainerManager.write_ide_config`, mounted read-only), never on a
command line or in the environment. Waiting for it and the token rules are
:class:`~atoll.containers.base.ContainerManager`'s.
"""

from __future__ import annotations

from pathlib import Path

from atoll.containers.base import IdeLaunch, StagedTask, TaskSpec
from atoll.containers.swarm.stage import chosen_user, task_env
from atoll.containers.swarm.tasks import SwarmContainers, container_state

IDE_PORT = 8888  # inside the container
JUPYTER_CONFIG_PATH = "/run/secrets/jupyter_server_config.json"


class SwarmIde(SwarmContainers):
    """The IDE primitives of the swarm manager."""

    def ide_name(self, project: str) -> str:
        return f"{self.namespace}-ide-{project}"

    def ide_uid(self, edit_dir: Path | None) -> int | None:
        """The container's user: the owner of ``edit_dir`` (``note --edit``), else never root."""
        return chosen_user(edit_dir)[0]

    def launch_ide(self, spec: TaskSpec, staged: StagedTask, port: int, token: str) -> IdeLaunch:
        """Start Jupyter Lab detached, its port published on 127.0.0.1:``port`` only."""
        config = self.write_ide_config(staged, token, ip="0.0.0.0", port=IDE_PORT, root_dir="/app",
                                       allow_root=spec.allow_root, allow_remote_access=True)
        name = self.ide_name(spec.project.name)
        self.run_container(
            spec, staged, name, "ide", ["python", "-m", "jupyterlab", f"--config={JUPYTER_CONFIG_PATH}"],
            extra_binds=[(str(config), JUPYTER_CONFIG_PATH, True)],
            environment=task_env(spec, staged, {"JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime"}),
            ports={f"{IDE_PORT}/tcp": ("127.0.0.1", port)},
        )
        return IdeLaunch(base_url=f"http://127.0.0.1:{port}", task_id=name)

    def ide_exit(self, project: str) -> str | None:
        return container_state(self.container(self.ide_name(project)))

    def ide_log_tail(self, project: str) -> str:
        container = self.container(self.ide_name(project))
        if container is None:
            return ""
        try:
            return bytes(container.logs(tail=20)).decode(errors="replace")
        except Exception:  # noqa: BLE001 - the tail only decorates the real error
            return ""

    def discard_ide(self, project: str) -> None:
        self.remove_container(self.ide_name(project))


__all__ = ["IDE_PORT", "SwarmIde"]
