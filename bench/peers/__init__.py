"""The peers Atoll is measured against, each in its own venv so their pins never meet ours.

* ``venv-mlflow``: MLflow's scoring server (``mlflow models serve --env-manager local -w 1``);
* ``venv-floor``: a bare ASGI app on uvicorn calling the notebook's own ``predict`` (the floor).

Both serve the SVC fitted once by :mod:`bench.peers.train_peer` on the example's dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.tools import ROOT, SERVER_CPU, WORK, Proc, run, uv_venv

HERE = Path(__file__).resolve().parent
IRIS = ROOT / "examples" / "iris"
ROW = b"[5.1, 3.5, 1.4, 0.2]"
MLFLOW_ROW = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'


@dataclass
class Peers:
    mlflow_python: Path
    floor_python: Path
    model_dir: Path


def setup() -> Peers:
    """Make both venvs (cached by their requirement files) and the peers' model."""
    mlflow_python = uv_venv("venv-mlflow", HERE / "mlflow.txt")
    floor_python = uv_venv("venv-floor", HERE / "floor.txt")
    model_dir = WORK / "peer-model"
    if not (model_dir / "mlflow-model" / "MLmodel").exists():
        run([str(mlflow_python), str(HERE / "train_peer.py"), str(IRIS / "datasets" / "iris"), str(model_dir)],
            timeout=300, env=_mlflow_env())
    return Peers(mlflow_python, floor_python, model_dir)


def _mlflow_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLFLOW_TRACKING_URI=f"file://{WORK / 'mlruns'}", MLFLOW_ENABLE_TELEMETRY="false",
               DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true", PYTHONWARNINGS="ignore")
    env.pop("VIRTUAL_ENV", None)
    return env


def start_mlflow(peers: Peers, port: int, cpus: str | None = SERVER_CPU) -> Proc:
    """``mlflow models serve`` with one worker, in the caller's environment (no conda, no venv of its own)."""
    mlflow = peers.mlflow_python.parent / "mlflow"
    env = _mlflow_env()
    env["PATH"] = f"{peers.mlflow_python.parent}{os.pathsep}{env.get('PATH', '')}"
    return Proc([str(mlflow), "models", "serve", "-m", str(peers.model_dir / "mlflow-model"), "--env-manager",
                 "local", "-w", "1", "-h", "127.0.0.1", "-p", str(port)], WORK / "logs" / "mlflow.log",
                cpus=cpus, env=env, cwd=WORK)


def start_floor(peers: Peers, port: int, cpus: str | None = SERVER_CPU, nice: bool = True) -> Proc:
    """The floor app on ``port`` (``nice``: at the bench's raised priority, as under load)."""
    return Proc([str(peers.floor_python), str(HERE / "floor_app.py"), "--model", str(peers.model_dir / "clf.pkl"),
                 "--notebook", str(IRIS / "notebooks" / "predict.ipynb"), "--port", str(port)],
                WORK / "logs" / "floor.log", cpus=cpus, cwd=WORK, nice=nice)
