"""``python -m atoll.runner {train|serve|fetch} [options]``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the runner of the task kind named first on the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else ""
    if command == "train":
        from atoll.runner.train import main as train_main

        return train_main(args)
    if command == "serve":
        from atoll.runner.serve import main as serve_main

        return serve_main(args)
    if command == "fetch":
        from atoll.runner.fetch import main as fetch_main

        return fetch_main(args)
    print("usage: python -m atoll.runner {train|serve|fetch} [options]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
