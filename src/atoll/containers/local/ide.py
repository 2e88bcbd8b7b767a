"""The IDE on the local runtime: Jupyter Lab from the build's environment.

Installed into that environment on first use, bound to 127.0.0.1, its token
in a 0600 config file (never the command line). Its state is
``$ATOLL_HOME/run/ide/<proj>.json`` ({pid, start_time, port, url, log}).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from atoll.containers.base import ContainerManager
from atoll.containers.local.environment import (
    build_env_dir,
    build_python,
    link_app,
    link_mounts,
    task_environment,
)
from atoll.containers.local.limits import preexec, process_limits
from atoll.containers.local.process import kill_group, log_tail, proc_start_time, read_json, write_json
from atoll.containers.local.services import alive, port_in_use, run_dir
from atoll.containers.spec import IdeLaunch, StagedTask, TaskSpec, describe_exit
from atoll.errors import BackendError, ExecutionError, UsageError

INSTALL_TIMEOUT = 600.0  # installing jupyterlab into a build environment


class LocalIde(ContainerManager):
    """The IDE primitives of the local manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ide_procs: dict[str, subprocess.Popen[bytes]] = {}

    @staticmethod
    def _ide_state(project: str) -> Path:
        return run_dir() / "ide" / f"{project}.json"

    @staticmethod
    def _ide_log(project: str) -> Path:
        return run_dir() / "ide" / f"{project}.log"

    def ide_info(self, project: str) -> dict[str, Any] | None:
        """The running IDE of ``project`` ({pid, port, url, log}) or None."""
        info = read_json(self._ide_state(project))
        return info if alive(info) else None

    def launch_ide(self, spec: TaskSpec, staged: StagedTask, port: int, token: str) -> IdeLaunch:
        if port_in_use(port):
            raise UsageError(f"port {port} is already in use on 127.0.0.1; choose another --port")
        project = spec.project.name
        python = build_python(spec.build)
        _ensure_jupyterlab(python, spec)
        root = staged.root
        app = link_app(spec, staged)
        link_mounts(spec, staged)
        config = self.write_ide_config(
            staged,
            token,
            ip="127.0.0.1",
            port=port,
            root_dir=str(app),
            allow_remote_access=False,
            allow_root=os.geteuid() == 0,  # containers and CI machines often run as root
        )
        env = task_environment(spec.build, staged, spec.env)
        env["JUPYTER_CONFIG_DIR"] = str(root / "atoll" / "jupyter-config")
        env["JUPYTER_RUNTIME_DIR"] = str(root / "atoll" / "jupyter-runtime")
        log_path = self._ide_log(project)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fetched = staged.staging == "fetch" and _fetch_inputs(python, app, env, log_path)
        with open(log_path, "ab" if fetched else "wb") as out:
            proc = subprocess.Popen(
                [str(python), "-m", "jupyterlab", f"--config={config}"],
                cwd=app,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec(process_limits(spec.profile)),  # noqa: PLW1509 - see local.limits
            )
        self._ide_procs[project] = proc
        base_url = f"http://127.0.0.1:{port}"
        write_json(self._ide_state(project), {
            "pid": proc.pid, "start_time": proc_start_time(proc.pid), "port": port,
            "url": f"{base_url}/lab", "log": str(log_path), "task_dir": str(root),
        })
        return IdeLaunch(base_url=base_url, task_id=str(proc.pid))

    def ide_exit(self, project: str) -> str | None:
        proc = self._ide_procs.get(project)
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            return f"exited with code {code}" if code >= 0 else describe_exit(128 - code)
        info = read_json(self._ide_state(project))
        if info is None:
            return "not started"
        return None if alive(info) else "exited"

    def ide_log_tail(self, project: str) -> str:
        return log_tail(self._ide_log(project))

    def discard_ide(self, project: str) -> None:
        """Stop the project's IDE (its whole process group); missing is not an error."""
        state = self._ide_state(project)
        info = read_json(state)
        if info and info.get("pid"):
            kill_group(int(info["pid"]), info.get("start_time"))
        proc = self._ide_procs.pop(project, None)
        if proc is not None:
            proc.poll()
        state.unlink(missing_ok=True)


def _find_uv() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _ensure_jupyterlab(python: Path, spec: TaskSpec) -> None:
    """Install jupyterlab into the build environment once."""
    if (build_env_dir(spec.build) / "bin" / "jupyter-lab").exists():
        return
    uv = _find_uv()
    argv = (
        [uv, "pip", "install", "--quiet", "--python", str(python), "jupyterlab"]
        if uv
        else [str(python), "-m", "pip", "install", "--quiet", "jupyterlab"]
    )
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise BackendError(
            f"installing jupyterlab into the build environment did not finish within {INSTALL_TIMEOUT:g}s "
            "(waiting for the package index?)"
        ) from exc
    if done.returncode != 0:
        raise BackendError(
            "installing jupyterlab into the build environment failed: "
            + "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        )


def _fetch_inputs(python: Path, app: Path, env: dict[str, str], log_path: Path) -> bool:
    """Fetch staging: let the task fetch its datasets and model versions before Jupyter starts."""
    with open(log_path, "wb") as out:
        done = subprocess.run(
            [str(python), "-m", "atoll.runner", "fetch"], cwd=app, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, check=False, timeout=INSTALL_TIMEOUT,
        )
    if done.returncode != 0:
        tail = log_tail(log_path)
        raise ExecutionError("the IDE could not fetch its inputs", log_tail=tail)
    return True


__all__ = ["LocalIde"]
