"""The peers Atoll is measured against, each in its own venv so their pins never meet ours.

* ``venv-mlflow``: MLflow's scoring server (``mlflow models serve --env-manager local -w 1``);
* ``venv-floor``: a bare ASGI app on uvicorn calling the notebook's own ``predict`` (the floor);
* ``venv-bentoml``: ``bentoml serve`` (1 worker) of :mod:`bench.peers.bento_service`, batching on or off.

Both serve the SVC fitted once by :mod:`bench.peers.train_peer` on the example's dataset.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.tools import ROOT, SERVER_CPU, WORK, Proc, run, uv_venv

HERE = Path(__file__).resolve().parent
IRIS = ROOT / "examples" / "iris"
ROW = b"[5.1, 3.5, 1.4, 0.2]"
MLFLOW_ROW = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
BENTOML_ROW = b'{"rows": [[5.1, 3.5, 1.4, 0.2]]}'


@dataclass
class Peers:
    mlflow_python: Path
    floor_python: Path
    model_dir: Path
    bentoml_python: Path | None = None


def setup() -> Peers:
    """Make both venvs (cached by their requirement files) and the peers' model."""
    mlflow_python = uv_venv("venv-mlflow", HERE / "mlflow.txt")
    floor_python = uv_venv("venv-floor", HERE / "floor.txt")
    model_dir = WORK / "peer-model"
    if not (model_dir / "mlflow-model-rf" / "MLmodel").exists():
        run([str(mlflow_python), str(HERE / "train_peer.py"), str(IRIS / "datasets" / "iris"), str(model_dir)],
            timeout=300, env=_mlflow_env())
    return Peers(mlflow_python, floor_python, model_dir)


def setup_bentoml(peers: Peers) -> Peers:
    """Add the BentoML venv (cached by its requirement file) to ``peers``."""
    peers.bentoml_python = uv_venv("venv-bentoml", HERE / "bentoml.txt")
    return peers


def start_bentoml(peers: Peers, port: int, batch: int, latency_ms: int = 10, cpus: str | None = SERVER_CPU,
                  model: str = "clf.pkl") -> Proc:
    """``bentoml serve`` with one worker; ``batch`` > 0 turns its adaptive batching on (max batch size)."""
    if peers.bentoml_python is None:
        raise RuntimeError("the BentoML venv is not set up (setup_bentoml)")
    env = _mlflow_env()
    env.update(BENCH_MODEL=str(peers.model_dir / model), BENCH_BATCH=str(batch),
               BENCH_LATENCY_MS=str(latency_ms), BENTOML_DO_NOT_TRACK="true",
               BENTOML_HOME=str(WORK / "bentoml-home"))
    env["PATH"] = f"{peers.bentoml_python.parent}{os.pathsep}{env.get('PATH', '')}"
    return Proc([str(peers.bentoml_python.parent / "bentoml"), "serve", "bento_service:Iris", "--host",
                 "127.0.0.1", "--port", str(port)], WORK / "logs" / f"bentoml-{batch}.log", cpus=cpus, env=env,
                cwd=HERE)


def start_atoll(peers: Peers, port: int, batch: int, latency_ms: float = 5.0, cpus: str | None = SERVER_CPU,
                model: str = "clf.pkl") -> Proc:
    """Atoll's OnlinePredict on the example's notebook code (:mod:`bench.peers.atoll_server`), in Atoll's venv."""
    return Proc([sys.executable, str(HERE / "atoll_server.py"), "--model", str(peers.model_dir / model),
                 "--notebook", str(IRIS / "notebooks" / "predict.ipynb"), "--port", str(port), "--batch",
                 str(batch), "--latency-ms", str(latency_ms)], WORK / "logs" / f"atoll-{batch}.log", cpus=cpus,
                cwd=WORK)


def _mlflow_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLFLOW_TRACKING_URI=f"file://{WORK / 'mlruns'}", MLFLOW_ENABLE_TELEMETRY="false",
               DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true", PYTHONWARNINGS="ignore")
    env.pop("VIRTUAL_ENV", None)
    return env


def start_mlflow(peers: Peers, port: int, cpus: str | None = SERVER_CPU, model: str = "mlflow-model") -> Proc:
    """``mlflow models serve`` with one worker, in the caller's environment (no conda, no venv of its own)."""
    mlflow = peers.mlflow_python.parent / "mlflow"
    env = _mlflow_env()
    env["PATH"] = f"{peers.mlflow_python.parent}{os.pathsep}{env.get('PATH', '')}"
    return Proc([str(mlflow), "models", "serve", "-m", str(peers.model_dir / model), "--env-manager",
                 "local", "-w", "1", "-h", "127.0.0.1", "-p", str(port)], WORK / "logs" / "mlflow.log",
                cpus=cpus, env=env, cwd=WORK)


def start_floor(peers: Peers, port: int, cpus: str | None = SERVER_CPU, nice: bool = True,
                model: str = "clf.pkl") -> Proc:
    """The floor app on ``port`` (``nice``: at the bench's raised priority, as under load)."""
    return Proc([str(peers.floor_python), str(HERE / "floor_app.py"), "--model", str(peers.model_dir / model),
                 "--notebook", str(IRIS / "notebooks" / "predict.ipynb"), "--port", str(port)],
                WORK / "logs" / "floor.log", cpus=cpus, cwd=WORK, nice=nice)
