"""What the Artifactory and Nexus test servers share: HTTP on 127.0.0.1, auth, storage, faults.

A :class:`RepositoryServer` runs a ``ThreadingHTTPServer`` on a free
loopback port in a background thread and keeps the repositories' files in
memory (``files[(repo, path)] = bytes``). Subclasses route requests.

Fault mode (:class:`Faults`, set by a test at any time)::

    server.faults.fail_next(2, status=503)   next 2 requests: that status
    server.faults.slow = 0.5                 every answer waits 0.5 s first
    server.faults.truncate_next(1)           next download: half the body, then the
                                             connection closes (Content-Length is full)

A request whose body is shorter than its Content-Length (a client that
died half-way) stores nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit


class Faults:
    """Failures a test asks the server to produce."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._truncate = 0
        self.slow = 0.0

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._fail.extend([status] * count)

    def truncate_next(self, count: int) -> None:
        with self._lock:
            self._truncate += count

    def take_failure(self) -> int | None:
        with self._lock:
            return self._fail.pop(0) if self._fail else None

    def take_truncation(self) -> bool:
        with self._lock:
            if self._truncate:
                self._truncate -= 1
                return True
            return False

    def reset(self) -> None:
        with self._lock:
            self._fail.clear()
            self._truncate = 0
            self.slow = 0.0


class Request:
    """One parsed request, handed to a server's ``route``."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = unquote(parts.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = handler.headers
        self.body = body


class Answer:
    """What a route returns: status, headers and body (bytes or JSON)."""

    def __init__(self, status: int, body: bytes | Any = b"", headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = dict(headers or {})
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
            self.headers.setdefault("Content-Type", "application/json")
        self.body = body


class RepositoryServer:
    """Base of the stand-in servers: start with ``with Server(...) as server:``.

    Args:
        repositories: names of the repositories that exist.
        users: ``{user: password}`` accepted with HTTP Basic.
        tokens: API keys / tokens accepted (how: see the subclass).
    """

    def __init__(
        self,
        repositories: tuple[str, ...] = ("atoll",),
        users: dict[str, str] | None = None,
        tokens: tuple[str, ...] = (),
    ) -> None:
        self.repositories = set(repositories)
        self.users = dict(users or {})
        self.tokens = set(tokens)
        self.files: dict[tuple[str, str], bytes] = {}
        self.lock = threading.Lock()
        self.faults = Faults()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, body bytes received)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what a subclass provides ---------------------------------------------

    def route(self, request: Request) -> Answer:
        raise NotImplementedError

    def token_of(self, request: Request) -> str | None:
        """The API key/token a request carries (subclass: which header)."""
        auth = request.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    # -- shared helpers for routes -------------------------------------------

    def authorized(self, request: Request) -> bool:
        if not self.users and not self.tokens:
            return True
        token = self.token_of(request)
        if token is not None:
            return token in self.tokens
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return self.users.get(user) == password

    @staticmethod
    def sha256(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def base_url(self) -> str:
        """What ``file_store.url`` is set to (the server's API root)."""
        return self.url

    def start(self) -> Self:
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (timeouts, fault tests) are normal here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _handler_for(server: RepositoryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``server.requests`` instead."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: bytes | None = None
            if self.command in ("PUT", "POST"):
                body = self.rfile.read(length) if length else b""
                if len(body) < length:  # the client died half-way: store nothing
                    self.close_connection = True
                    return
            with server.lock:
                server.requests.append((self.command, self.path, len(body or b"")))
            if server.faults.slow:
                time.sleep(server.faults.slow)
            failure = server.faults.take_failure()
            if failure is not None:
                answer = Answer(failure, {"errors": [{"status": failure, "message": "injected fault"}]})
            else:
                answer = server.route(Request(self, body))
            self._send(answer)

        def _send(self, answer: Answer) -> None:
            truncate = self.command == "GET" and answer.status == 200 and server.faults.take_truncation()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            if truncate:
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(answer.body)

        do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _serve

    return Handler


__all__ = ["Answer", "Faults", "RepositoryServer", "Request"]
