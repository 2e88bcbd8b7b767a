"""The BentoML peer: the example's SVC behind ``bentoml serve`` (1 worker), adaptive batching on or off.

Run from this directory in bench/.work/venv-bentoml::

    BENCH_MODEL=clf.pkl BENCH_BATCH=64 BENCH_LATENCY_MS=10 bentoml serve bento_service:Iris --port P

``BENCH_BATCH=0`` (the default) serves without batching. Requests are
``POST /predict`` with ``{"rows": [[5.1, 3.5, 1.4, 0.2]]}``; the answer is the
list of species.
"""

from __future__ import annotations

import os
import pickle

import bentoml
import numpy as np

BATCH = int(os.environ.get("BENCH_BATCH", "0"))
LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "10"))


@bentoml.service(workers=1, logging={"access": {"enabled": False}})  # no access log, like Atoll
class Iris:
    def __init__(self) -> None:
        with open(os.environ["BENCH_MODEL"], "rb") as handle:
            self.clf = pickle.load(handle)

    if BATCH:

        @bentoml.api(batchable=True, max_batch_size=BATCH, max_latency_ms=LATENCY_MS)
        def predict(self, rows: np.ndarray) -> np.ndarray:
            return self.clf.predict(rows)

    else:

        @bentoml.api
        def predict(self, rows: np.ndarray) -> np.ndarray:
            return self.clf.predict(rows)
