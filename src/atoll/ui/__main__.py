"""``python -m atoll.ui --host H --port P --state-file F``: the UI as a background process (the ui island).

The token is read from the island's state file (mode 0600), never from the
command line or the environment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from atoll.api.context import AtollContext
from atoll.errors import AtollError
from atoll.ui.server import bind, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atoll.ui")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True, help="JSON holding the token (mode 0600)")
    args = parser.parse_args(argv)
    try:
        token = str(orjson.loads(args.state_file.read_bytes())["token"])
        sock = bind(args.host, args.port)
        with AtollContext() as ctx:
            serve(ctx, sock, token)
    except (AtollError, OSError, KeyError, orjson.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
