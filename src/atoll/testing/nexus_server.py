"""A Nexus Repository 3 stand-in (raw hosted repositories) over real HTTP.

No Nexus can run on the machines Atoll is tested on, so :class:`NexusServer`
answers what Sonatype documents for these calls::

    PUT    /repository/<repo>/<path>     201 (raw hosted upload)
    GET    /repository/<repo>/<path>     200, or 404
    HEAD   /repository/<repo>/<path>     the same, no body
    DELETE /repository/<repo>/<path>     204, or 404
    GET    /service/rest/v1/assets?repository=<repo>[&continuationToken=T]
                                         {"items": [{"id", "repository", "format": "raw",
                                         "path", "downloadUrl", "checksum": {...}}],
                                         "continuationToken": T or null}; ``page_size``
                                         items a page (Nexus: 10); 404 for an unknown
                                         repository

Credentials: HTTP Basic or ``Authorization: Bearer <token>``; without valid
ones every call is 401. Fault injection: see
:mod:`atoll.testing._repository_server`.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from atoll.testing._repository_server import Answer, RepositoryServer, Request


class NexusServer(RepositoryServer):
    """``with NexusServer(repositories=("atoll",)) as server: server.url``."""

    page_size = 10

    def route(self, request: Request) -> Answer:
        if not self.authorized(request):
            return Answer(401, b"Unauthorized", {"WWW-Authenticate": 'BASIC realm="Sonatype Nexus Repository Manager"'})
        if request.path == "/service/rest/v1/assets" and request.method == "GET":
            return self._assets(request)
        if not request.path.startswith("/repository/"):
            return Answer(404, b"Not Found")
        repo, _, path = request.path[len("/repository/") :].partition("/")
        if repo not in self.repositories:
            return Answer(404, f"Repository not found: {repo}".encode())
        if not path:
            return Answer(400, b"Missing path")
        if request.method == "PUT":
            with self.lock:
                self.files[(repo, path)] = request.body or b""
            return Answer(201)
        with self.lock:
            data = self.files.get((repo, path))
        if data is None:
            return Answer(404, b"Not Found")
        if request.method == "DELETE":
            with self.lock:
                self.files.pop((repo, path), None)
            return Answer(204)
        return Answer(200, data, {"Content-Type": "application/octet-stream"})

    def _assets(self, request: Request) -> Answer:
        repo = request.query.get("repository", [""])[0]
        if repo not in self.repositories:
            return Answer(404, {"message": f"Repository not found: {repo}"})
        token = request.query.get("continuationToken", [None])[0]
        start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        with self.lock:
            paths = sorted((p, d) for (r, p), d in self.files.items() if r == repo)
        page = paths[start : start + self.page_size]
        items: list[dict[str, Any]] = [
            {
                "id": base64.urlsafe_b64encode(f"{repo}:{path}".encode()).decode(),
                "repository": repo,
                "format": "raw",
                "path": path,
                "downloadUrl": f"{self.url}/repository/{repo}/{path}",
                "checksum": {
                    "sha1": hashlib.sha1(data).hexdigest(),
                    "sha256": self.sha256(data),
                    "md5": hashlib.md5(data).hexdigest(),
                },
            }
            for path, data in page
        ]
        end = start + self.page_size
        next_token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(paths) else None
        return Answer(200, {"items": items, "continuationToken": next_token})


__all__ = ["NexusServer"]
