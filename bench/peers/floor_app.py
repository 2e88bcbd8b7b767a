"""The floor: the least a Python prediction service can do, run in bench/.work/venv-floor.

A raw ASGI callable on uvicorn (uvloop, httptools, no access log, one
process) answering ``POST /predict`` with ``{"result": predict(body)}``, where
``predict`` is the very code of the example's prediction notebook: its code
cells are executed here, except those that use Atoll (import it or serve), with ``clf`` unpickled
beforehand.

    python floor_app.py --model clf.pkl --notebook predict.ipynb --port P
"""

from __future__ import annotations

import argparse
import json
import pickle
from typing import Any

import orjson
import uvicorn

_ATOLL_WORDS = ("atoll", "OnlinePredict", "LazyModelServer")


def load_predict(model: str, notebook: str, whole: bool = False) -> Any:
    """The notebook's ``predict`` (``whole``: the namespace its cells defined) with ``clf`` unpickled."""
    with open(model, "rb") as handle:
        namespace: dict[str, Any] = {"clf": pickle.load(handle), "__name__": "__main__"}
    with open(notebook) as handle:
        cells = json.load(handle)["cells"]
    for cell in cells:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and not any(w in source for w in _ATOLL_WORDS):
            exec(compile(source, notebook, "exec"), namespace)  # noqa: S102 - the example notebook
    return namespace if whole else namespace["predict"]


def make_app(predict: Any) -> Any:
    headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        body = message.get("body", b"")
        while message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        try:
            payload, status = orjson.dumps({"result": predict(body.decode())}), 200
        except ValueError as exc:
            payload, status = orjson.dumps({"error": str(exc)}), 400
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--notebook", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = make_app(load_predict(args.model, args.notebook))
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", lifespan="off",
                access_log=False, log_level="warning", server_header=False, interface="asgi3")


if __name__ == "__main__":
    main()
