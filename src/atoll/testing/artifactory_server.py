"""An Artifactory stand-in speaking the documented REST subset Atoll uses, over real HTTP.

No Artifactory can run on the machines Atoll is tested on, so
:class:`ArtifactoryServer` answers what JFrog documents for these calls
(base path ``/artifactory``)::

    PUT    /artifactory/<repo>/<path>       201 + JSON; X-Checksum-Sha256/-Sha1/-Md5 are
                                            checked against the body (409 on mismatch,
                                            nothing stored)
    PUT    ... X-Checksum-Deploy: true      201 when some stored file has that sha256
                                            (or sha1), 404 otherwise; no body read
    GET    /artifactory/<repo>/<path>       200 + X-Checksum-Sha256/-Sha1/-Md5, or 404
    HEAD   /artifactory/<repo>/<path>       the same, no body
    DELETE /artifactory/<repo>/<path>       204, or 404
    GET    /artifactory/api/storage/<repo>/<folder>?list&deep=1
                                            {"uri", "created", "files": [{"uri": "/a/b",
                                            "size", "folder": false, "sha1", "sha2"}]}; 404 for
                                            an unknown repository or folder

Credentials: HTTP Basic, ``X-JFrog-Art-Api: <key>`` or ``Authorization:
Bearer <token>``; without valid ones every call is 401. Fault injection:
see :mod:`atoll.testing._repository_server`.
"""

from __future__ import annotations

import hashlib

from atoll.testing._repository_server import Answer, RepositoryServer, Request

BASE = "/artifactory"


class ArtifactoryServer(RepositoryServer):
    """``with ArtifactoryServer(repositories=("atoll",)) as server: server.url + "/artifactory"``."""

    @property
    def base_url(self) -> str:
        """What ``file_store.url`` is set to."""
        return self.url + BASE

    def token_of(self, request: Request) -> str | None:
        return request.headers.get("X-JFrog-Art-Api") or super().token_of(request)

    def route(self, request: Request) -> Answer:
        if not request.path.startswith(BASE + "/"):
            return _error(404, "Not Found")
        if not self.authorized(request):
            return _error(401, "Bad credentials")
        rest = request.path[len(BASE) + 1 :]
        if rest.startswith("api/storage/") and request.method == "GET":
            return self._storage(rest[len("api/storage/") :], request)
        repo, _, path = rest.partition("/")
        if repo not in self.repositories:
            return _error(404, f"Repository {repo} not found")
        if not path:
            return _error(400, "A path inside the repository is required")
        if request.method == "PUT":
            return self._deploy(repo, path, request)
        with self.lock:
            data = self.files.get((repo, path))
        if data is None:
            return _error(404, "File not found.")
        if request.method == "DELETE":
            with self.lock:
                self.files.pop((repo, path), None)
            return Answer(204)
        return Answer(200, data, {"Content-Type": "application/octet-stream", **_checksum_headers(data)})

    def _deploy(self, repo: str, path: str, request: Request) -> Answer:
        if request.headers.get("X-Checksum-Deploy", "").lower() == "true":
            sha256 = request.headers.get("X-Checksum-Sha256")
            sha1 = request.headers.get("X-Checksum-Sha1")
            with self.lock:
                found = next(
                    (
                        data
                        for data in self.files.values()
                        if (sha256 and self.sha256(data) == sha256)
                        or (sha1 and hashlib.sha1(data).hexdigest() == sha1)
                    ),
                    None,
                )
                if found is None:
                    return _error(404, "Checksum deploy failed: no content with these checksums")
                self.files[(repo, path)] = found
            return self._created(repo, path, found)
        data = request.body or b""
        for header, value in _checksum_headers(data).items():
            sent = request.headers.get(header)
            if sent is not None and sent.lower() != value:
                return _error(409, f"Checksum error: {header} {sent} does not match the received content")
        with self.lock:
            self.files[(repo, path)] = data
        return self._created(repo, path, data)

    def _created(self, repo: str, path: str, data: bytes) -> Answer:
        sums = {k.rpartition("-")[2].lower(): v for k, v in _checksum_headers(data).items()}
        return Answer(
            201,
            {
                "repo": repo,
                "path": "/" + path,
                "size": str(len(data)),
                "checksums": sums,
                "downloadUri": f"{self.base_url}/{repo}/{path}",
            },
        )

    def _storage(self, rest: str, request: Request) -> Answer:
        repo, _, folder = rest.partition("/")
        folder = folder.strip("/")
        if repo not in self.repositories:
            return _error(404, f"Repository {repo} not found")
        if "list" not in request.query:
            return _error(400, "only ?list is implemented by this stand-in")
        deep = request.query.get("deep", ["0"])[0] == "1"
        base = f"{folder}/" if folder else ""
        with self.lock:
            below = {p: d for (r, p), d in self.files.items() if r == repo and p.startswith(base)}
        if folder and not below:
            return _error(404, "Unable to find item")
        files = []
        for path, data in sorted(below.items()):
            rel = path[len(base) :]
            if not deep and "/" in rel:
                continue
            files.append(
                {
                    "uri": "/" + rel,
                    "size": len(data),
                    "folder": False,
                    "sha1": hashlib.sha1(data).hexdigest(),
                    "sha2": self.sha256(data),
                }
            )
        return Answer(200, {"uri": f"{self.base_url}/api/storage/{repo}/{folder}", "files": files})


def _checksum_headers(data: bytes) -> dict[str, str]:
    return {
        "X-Checksum-Sha256": hashlib.sha256(data).hexdigest(),
        "X-Checksum-Sha1": hashlib.sha1(data).hexdigest(),
        "X-Checksum-Md5": hashlib.md5(data).hexdigest(),
    }


def _error(status: int, message: str) -> Answer:
    return Answer(status, {"errors": [{"status": status, "message": message}]})


__all__ = ["ArtifactoryServer"]
