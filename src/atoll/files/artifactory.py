"""ArtifactoryFileStore: keys as files of one JFrog Artifactory repository.

The REST subset used (JFrog's documented Artifactory REST API)::

    PUT    {url}/{repo}/{path}            deploy; X-Checksum-Sha256/-Sha1/-Md5 sent,
                                          the server refuses content that does not match
    PUT    ... + X-Checksum-Deploy: true  checksum deploy: no body; 404 when the server
                                          does not hold that content yet (then a real PUT)
    GET    {url}/{repo}/{path}            fetch; X-Checksum-Sha256 verified here
    HEAD   {url}/{repo}/{path}            exists
    DELETE {url}/{repo}/{path}            delete
    GET    {url}/api/storage/{repo}/{folder}?list&deep=1
                                          every file below a folder

``url`` is the Artifactory base (``https://repo.example.com/artifactory``).
Credentials: user/password (Basic) or an API key / access token (sent as
``X-JFrog-Art-Api``). Retries, TLS options and error wording are shared with
Nexus (:mod:`atoll.files._http_store`).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx

from atoll.files._http_store import Checksums, HttpRepositoryFileStore


class ArtifactoryFileStore(HttpRepositoryFileStore):
    """Files in an Artifactory repository (generic or any deployable type)."""

    kind = "artifactory"
    api_key_header = "X-JFrog-Art-Api"

    def _api_key_value(self, api_key: str) -> str:
        return api_key

    def _file_path(self, name: str) -> str:
        return f"{self.url}/{quote(self.repository)}/{quote(name)}"

    def _put(self, local_path: Path, name: str, sums: Checksums, key: str) -> None:
        headers = {"X-Checksum-Sha256": sums.sha256, "X-Checksum-Sha1": sums.sha1, "X-Checksum-Md5": sums.md5}
        if sums.size > 0:
            # The server may hold these bytes already (another version, another key):
            # then it links them without a single byte sent.
            response = self._request(
                "PUT",
                self._file_path(name),
                f"upload {key}",
                headers={**headers, "X-Checksum-Deploy": "true", "Content-Length": "0"},
            )
            if response.status_code in (200, 201):
                return
            if response.status_code != 404:
                self._fail(response, f"upload {key}")
        self._send_file("PUT", self._file_path(name), local_path, sums, key, headers)

    def _expected_sha256(self, response: httpx.Response) -> str | None:
        return response.headers.get("X-Checksum-Sha256")

    def _list_names(self, prefix: str) -> list[str]:
        folder = prefix.rpartition("/")[0]
        url = f"{self.url}/api/storage/{quote(self.repository)}/{quote(folder)}".rstrip("/")
        response = self._request("GET", url, f"list {prefix!r}", params={"list": "", "deep": "1"})
        if response.status_code == 404 and folder:
            return []  # no such folder: nothing stored below it
        if response.status_code != 200:
            self._fail(response, f"list {prefix!r}")
        base = f"{folder}/" if folder else ""
        return [
            base + item["uri"].lstrip("/")
            for item in response.json().get("files", [])
            if not item.get("folder")
        ]


__all__ = ["ArtifactoryFileStore"]
