"""Atoll's OnlinePredict serving the example's SVC, unbatched or batched, in Atoll's own venv.

The deployed replica of section 1 runs the prediction notebook through the
local runtime; this runs the same notebook code (``parse``, ``names``, the
unpickled ``clf``) straight under ``OnlinePredict``, so the batched and
unbatched figures differ by batching alone.

    python atoll_server.py --model clf.pkl --notebook predict.ipynb --port P [--batch N --latency-ms M]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from floor_app import load_predict

from atoll.toolkit import BatchConfig, OnlinePredict


def batch_of(namespace: dict[str, Any]) -> Any:
    """``predict_batch`` written as a user would for this notebook: one ``clf.predict`` for every row of the batch."""
    parse, names, clf = namespace["parse"], namespace["names"], namespace["clf"]

    def predict_batch(bodies: list[str]) -> list[Any]:
        out: list[Any] = [None] * len(bodies)
        rows: list[list[float]] = []
        spans = []
        for i, body in enumerate(bodies):
            try:
                parsed = parse(body)
            except ValueError as exc:
                out[i] = exc  # this request alone is answered 400
                continue
            spans.append((i, len(rows), len(rows) + len(parsed)))
            rows.extend(parsed)
        if rows:
            labels = names(clf.predict(rows).tolist())
            for i, start, end in spans:
                out[i] = labels[start:end]
        return out

    return predict_batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--notebook", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--batch", type=int, default=0, help="max batch size (0: unbatched)")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    namespace = load_predict(args.model, args.notebook, whole=True)
    if args.batch:
        server = OnlinePredict(batch_of(namespace), batch=BatchConfig(args.batch, args.latency_ms))
    else:
        server = OnlinePredict(namespace["predict"])
    server(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
