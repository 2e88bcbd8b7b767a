"""Run the router: ``python -m atoll.router --discovery local --state-dir DIR``."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from typing import Any

from atoll._http.asgi import run_app
from atoll._http.client import Pool
from atoll._http.server import HttpServer
from atoll._http.tls import server_context
from atoll.errors import AtollError, ConfigError
from atoll.router.app import Router
from atoll.router.auth import KeyFileAuth, OpenAccess, ReplicaSecretsFile
from atoll.router.discovery import DISCOVERIES, get_discovery


def build_parser() -> argparse.ArgumentParser:
    """The command line of the router."""
    parser = argparse.ArgumentParser(prog="python -m atoll.router", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=30080, help="port (default: 30080)")
    parser.add_argument(
        "--discovery", choices=DISCOVERIES.names(), default="local", help="where replicas are found"
    )
    parser.add_argument("--state-dir", help="local discovery: the local manager's state directory")
    parser.add_argument(
        "--recheck", type=float, default=0.5, help="local discovery: seconds between file checks"
    )
    parser.add_argument(
        "--dns-pattern",
        default="tasks.atoll-{project}-{deployment}",
        help="dns discovery: host name of a deployment's replicas",
    )
    parser.add_argument("--dns-port", type=int, default=8080, help="dns discovery: the replicas' port")
    parser.add_argument(
        "--dns-ttl", type=float, default=3.0, help="dns discovery: seconds an answer is reused"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a replica has to answer")
    parser.add_argument("--connect-timeout", type=float, default=2.0, help="seconds to connect to a replica")
    parser.add_argument(
        "--max-body",
        type=int,
        default=64 * 1024 * 1024,
        help="largest request body, in bytes (default: 64 MiB)",
    )
    parser.add_argument(
        "--server",
        choices=("raw", "uvicorn"),
        default="raw",
        help="HTTP server: the built-in raw one (fastest) or uvicorn with the ASGI app",
    )
    parser.add_argument(
        "--keys-file", help="API keys file written by `atoll key new/rm` (required unless --auth off)"
    )
    parser.add_argument(
        "--auth", choices=("on", "off"), default="on",
        help="require 'Authorization: Bearer <key>' (default: on; off lets anyone through)",
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (with --tls-key)")
    parser.add_argument("--tls-key", help="the certificate's PEM private key (with --tls-cert)")
    parser.add_argument(
        "--replica-secrets", help="the deployments' replica secrets file (written by `atoll depl new/rm`)"
    )
    parser.add_argument("--log-level", default="WARNING", help="log level (default: WARNING)")
    return parser


def discovery_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of the chosen discovery backend, from the command line."""
    if args.discovery == "local":
        return {"state_dir": args.state_dir, "recheck": args.recheck}
    return {"pattern": args.dns_pattern, "port": args.dns_port, "ttl": args.dns_ttl}


def make_auth(args: argparse.Namespace) -> KeyFileAuth | OpenAccess:
    """The API-key check the options ask for; ``--auth off`` warns on stderr.

    Raises:
        ConfigError: auth is on but no keys file is given.
    """
    if args.auth == "off":
        print("atoll router: WARNING: auth is off: anyone who reaches this router can call every "
              "deployment (router.auth: on and `atoll key new` to require API keys)", file=sys.stderr)
        return OpenAccess()
    if not args.keys_file:
        raise ConfigError("auth is on: give --keys-file (written by `atoll key new`), or --auth off")
    return KeyFileAuth(args.keys_file)


def make_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context of ``--tls-cert``/``--tls-key`` (None: plain HTTP).

    Raises:
        ConfigError: only one of them, TLS with ``--server uvicorn``, or files that do not load.
    """
    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise ConfigError("give both --tls-cert and --tls-key (or neither)")
    if args.server != "raw":
        raise ConfigError("TLS is served by the raw server only: drop --server uvicorn")
    return server_context(args.tls_cert, args.tls_key)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        discovery = get_discovery(args.discovery, **discovery_options(args))
        pool = Pool(connect_timeout=args.connect_timeout, timeout=args.timeout)
        tls = make_tls(args)
        router = Router(discovery, pool, max_body=args.max_body, auth=make_auth(args),
                        secrets=ReplicaSecretsFile(args.replica_secrets))
        if args.server == "uvicorn":
            run_app(router.app, host=args.host, port=args.port)
        else:
            HttpServer(router, args.host, args.port, tls=tls).run()
    except AtollError as exc:
        print(f"atoll router: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
