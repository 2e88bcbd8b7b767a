"""NexusFileStore: keys as assets of one Sonatype Nexus Repository 3 *raw hosted* repository.

The REST subset used (Nexus 3's documented endpoints)::

    PUT    {url}/repository/{repo}/{path}                 upload (raw hosted)
    GET    {url}/repository/{repo}/{path}                 fetch (length checked)
    HEAD   {url}/repository/{repo}/{path}                 exists
    DELETE {url}/repository/{repo}/{path}                 delete
    GET    {url}/service/rest/v1/assets?repository={repo}[&continuationToken=T]
                                                          list, page by page

The assets API has no path filter, so listing reads every page and filters
here (fine for Atoll's own repository; give Atoll a repository of its own).
The repository must allow redeploy (``writePolicy: ALLOW``) since a key can
be written again. Credentials: user/password (Basic) or a user token
(Bearer). Retries, TLS options and error wording are shared with Artifactory
(:mod:`atoll.files._http_store`).
"""

from __future__ import annotations

from urllib.parse import quote

from atoll.files._http_store import HttpRepositoryFileStore

MAX_PAGES = 100_000  # a bound on paging, far above any real repository


class NexusFileStore(HttpRepositoryFileStore):
    """Files in a Nexus raw hosted repository."""

    kind = "nexus"

    def _file_path(self, name: str) -> str:
        return f"{self.url}/repository/{quote(self.repository)}/{quote(name)}"

    def _list_names(self, prefix: str) -> list[str]:
        names: list[str] = []
        params = {"repository": self.repository}
        for _ in range(MAX_PAGES):
            response = self._request(
                "GET", f"{self.url}/service/rest/v1/assets", f"list {prefix!r}", params=params
            )
            if response.status_code != 200:
                self._fail(response, f"list {prefix!r}")
            page = response.json()
            names.extend(str(item["path"]).lstrip("/") for item in page.get("items", []))
            token = page.get("continuationToken")
            if not token:
                break
            params = {"repository": self.repository, "continuationToken": token}
        return names


__all__ = ["NexusFileStore"]
