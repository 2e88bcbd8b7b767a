"""Serving the UI: bind the socket (clear errors), then uvicorn until stopped."""

from __future__ import annotations

import ipaddress
import socket

from atoll.api.context import AtollContext
from atoll.errors import BackendUnavailableError, UsageError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port).

    Raises:
        UsageError: the address is malformed.
        BackendUnavailableError: the port is taken or the address is not local.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host!r}: {exc.strerror}") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BackendUnavailableError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_of(sock: socket.socket, host: str) -> str:
    """``http://host:port`` of a bound socket (the real port when it was 0)."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(ctx: AtollContext, sock: socket.socket, token: str) -> None:
    """Serve the UI on ``sock`` until SIGINT/SIGTERM."""
    import uvicorn

    from atoll.ui.app import create_app

    _ = ctx.metadata  # opened once here, not by the first requests racing in the thread pool
    config = uvicorn.Config(create_app(ctx, token), log_level="warning", access_log=False, lifespan="off",
                            server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
