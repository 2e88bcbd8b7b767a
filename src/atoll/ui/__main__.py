"""``python -m atoll.ui --host H --port P --state-file F [--store-config S]``: the UI as a background process.

The ui island runs it: as a local process, or as a swarm service whose
state file (holding only the token) and store settings are Docker secrets.
The token is read from the state file (mode 0600), never from the command
line or the environment. Without ``--store-config`` the stores are those of
the configuration (the local island); with it, those of the settings file
(:mod:`atoll.task.stores`'s schema) and no container manager.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from atoll.api.context import AtollContext
from atoll.errors import AtollError
from atoll.ui.server import bind, serve
from atoll.ui.stores_context import stores_context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atoll.ui")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True, help="JSON holding the token (mode 0600)")
    parser.add_argument("--store-config", type=Path, help="store settings to open instead of the configuration's")
    args = parser.parse_args(argv)
    try:
        token = str(orjson.loads(args.state_file.read_bytes())["token"])
        sock = bind(args.host, args.port)
        with stores_context(args.store_config) if args.store_config else AtollContext() as ctx:
            serve(ctx, sock, token)
    except (AtollError, OSError, KeyError, orjson.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
