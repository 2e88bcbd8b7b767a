"""What the repository-manager file stores (Artifactory, Nexus) share.

Both keep keys as paths inside one repository reached over HTTP(S) with
httpx. Written once here:

- **connection**: ``url`` (a bare ``host:port`` gets ``https://`` when
  ``use_ssl``, else ``http://``), ``check_certificate`` (off only for a test
  server), ``ca_bundle`` (a PEM file of the company CA);
- **credentials**: ``user``/``password`` (HTTP Basic) or an API key/access
  token (``api_key``; a treasure chest whose user is empty or ``api-key``
  holds one), sent as the backend's header;
- **retries**: bounded (``max_attempts``) with exponential back-off, on
  connection errors, timeouts, truncated bodies and 5xx answers only — a 4xx
  is an answer, not a hiccup;
- **errors**: one line naming the repository: 401/403 → refused credentials,
  404 of a key → :class:`~atoll.errors.NotFoundError`, unreachable →
  :class:`~atoll.errors.BackendUnavailableError`;
- **streaming**: uploads read the file in 1 MiB chunks (once to hash, once to
  send), downloads write chunks to a temporary file renamed into place only
  when the size and checksum are right — never a whole file in memory, never
  a partial file visible;
- **checksums the server needs**: these are sha256 (and sha1, md5), whatever
  the record holds: an upload sends them for the server to check what it
  received (and for Artifactory's checksum deploy); a download compares the
  sha256 the server vouches for (Artifactory's ``X-Checksum-Sha256``) with
  the bytes received. Checking a fetched file against its *record* (BLAKE3,
  or sha256 for files recorded before) is :meth:`FileStore.download_verified`'s,
  as for every store.

A subclass names its URLs (:meth:`_file_path`), how it deploys
(:meth:`_put`), which checksum headers a download carries and how it lists.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, Self

from atoll.config import mask_url
from atoll.errors import BackendError, BackendUnavailableError, ConfigError, NotFoundError, UsageError
from atoll.files.base import FileStore, check_key

try:
    import httpx
except ImportError as exc:  # pragma: no cover - reported by the registry with the install hint
    raise ImportError(f"this file store needs httpx (pip install 'atoll[artifactory]'): {exc}") from exc

CHUNK = 1024 * 1024
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_API_KEY_USERS = ("", "api-key")


class Checksums:
    """sha256, sha1 and md5 of a local file, read once in chunks."""

    def __init__(self, path: Path) -> None:
        sha256, sha1, md5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5()
        size = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                size += len(chunk)
                sha256.update(chunk)
                sha1.update(chunk)
                md5.update(chunk)
        self.size = size
        self.sha256 = sha256.hexdigest()
        self.sha1 = sha1.hexdigest()
        self.md5 = md5.hexdigest()


class HttpRepositoryFileStore(FileStore):
    """Base of the file stores kept in one repository of a repository manager.

    Args:
        url: the server's base URL (``https://repo.example.com/artifactory``).
        repository: the repository holding the files.
        user / password: HTTP Basic credentials.
        api_key: an API key or access token instead of user/password.
        prefix: keys are stored under ``<prefix>/`` inside the repository.
        use_ssl: the scheme for a ``url`` given without one.
        check_certificate: verify the server's TLS certificate.
        ca_bundle: a PEM file of CA certificates to verify it with.
        timeout: seconds per connect/read.
        max_attempts / backoff: retries of a failed request, the first
            pause ``backoff`` seconds, doubling.
    """

    kind = "repository"  # "artifactory" / "nexus" in messages
    api_key_header = "Authorization"

    def __init__(
        self,
        url: str | None = None,
        repository: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        prefix: str = "",
        use_ssl: bool = False,
        check_certificate: bool = True,
        ca_bundle: str | None = None,
        timeout: float = 30,
        max_attempts: int = 4,
        backoff: float = 0.2,
        **_ignored: Any,
    ) -> None:
        if not url:
            raise ConfigError(f"file_store.url: the {self.kind} file store needs the server URL")
        if not repository:
            raise ConfigError(f"file_store.repository: the {self.kind} file store needs a repository name")
        if "://" not in url:
            url = ("https://" if use_ssl else "http://") + url
        if user in _API_KEY_USERS and password and not api_key:
            api_key, user, password = password, None, None
        self.url = url.rstrip("/")
        self.repository = repository
        self.prefix = prefix.strip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self._where = f"{self.kind} repository {repository!r} at {mask_url(self.url)}"
        verify: bool | str = check_certificate
        if check_certificate and ca_bundle:
            if not Path(ca_bundle).expanduser().is_file():
                raise ConfigError(f"file_store.ca_bundle: no such file {ca_bundle}")
            verify = str(Path(ca_bundle).expanduser())
        headers = {self.api_key_header: self._api_key_value(api_key)} if api_key else {}
        self._client = httpx.Client(
            auth=httpx.BasicAuth(user, password or "") if user else None,
            headers=headers,
            verify=verify,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
        )
        self._lock = threading.Lock()

    def _api_key_value(self, api_key: str) -> str:
        return f"Bearer {api_key}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self.url)!r}, repository={self.repository!r})"

    def __str__(self) -> str:
        return self._where

    # -- what a backend provides ---------------------------------------------

    def _file_path(self, name: str) -> str:
        """URL of a stored name (the key with the store prefix)."""
        raise NotImplementedError

    def _put(self, local_path: Path, name: str, sums: Checksums, key: str) -> None:
        """Deploy one file (a backend may first try a checksum deploy)."""
        self._send_file("PUT", self._file_path(name), local_path, sums, key)

    def _expected_sha256(self, response: httpx.Response) -> str | None:
        """The sha256 a download answer vouches for, if the server sends one."""
        return None

    def _list_names(self, prefix: str) -> list[str]:
        """Every stored name (store prefix included) starting with ``prefix``."""
        raise NotImplementedError

    # -- primitives ------------------------------------------------------------

    def upload(self, local_path: Path, key: str) -> None:
        name = self._name(key)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise NotFoundError(f"cannot upload {local_path}: no such file")
        try:
            sums = Checksums(local_path)
        except FileNotFoundError as exc:
            raise NotFoundError(f"cannot upload {local_path}: no such file") from exc
        self._put(local_path, name, sums, key)

    def download(self, key: str, local_path: Path) -> None:
        name = self._name(key)
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            for attempt in self._attempts(f"download {key}"):
                with attempt:
                    self._download_once(self._file_path(name), key, tmp)
            os.replace(tmp, local_path)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        name = self._name(key)
        response = self._request("DELETE", self._file_path(name), f"delete {key}")
        if response.status_code not in (200, 202, 204, 404):
            self._fail(response, f"delete {key}")

    def list(self, prefix: str = "") -> list[str]:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise UsageError(f"invalid file-store key prefix {prefix!r}")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(name[strip:] for name in self._list_names(full) if name.startswith(full))

    def exists(self, key: str) -> bool:
        name = self._name(key)
        response = self._request("HEAD", self._file_path(name), f"check {key}")
        if response.status_code == 404:
            return False
        if response.status_code >= 300:
            self._fail(response, f"check {key}")
        return True

    def close(self) -> None:
        self._client.close()

    # -- shared machinery ------------------------------------------------------

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _send_file(
        self, method: str, url: str, local_path: Path, sums: Checksums, key: str, headers: dict[str, str] | None = None
    ) -> None:
        """Stream a file up (re-reading it on each attempt); fail unless the server stored it."""
        all_headers = {"Content-Length": str(sums.size), "Content-Type": "application/octet-stream"}
        all_headers.update(headers or {})
        response = self._request(
            method, url, f"upload {key}", content=lambda: _chunks(local_path), headers=all_headers
        )
        if response.status_code not in (200, 201, 204):
            self._fail(response, f"upload {key}")

    def _request(
        self,
        method: str,
        url: str,
        action: str,
        *,
        content: Callable[[], Iterator[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One request, retried on connection errors and 5xx; 401/403 raise here."""
        response: httpx.Response | None = None
        for attempt in self._attempts(action):
            with attempt:
                response = self._client.request(
                    method, url, content=content() if content else None, headers=headers, params=params
                )
                if response.status_code in _RETRY_STATUS:
                    attempt.retry_on(response)
        if response is None:  # pragma: no cover - _attempts always runs once
            raise BackendError(f"cannot {action}: no answer from {self._where}")
        if response.status_code in (401, 403):
            self._fail(response, action)
        return response

    def _download_once(self, url: str, key: str, tmp: Path) -> None:
        with self._client.stream("GET", url) as response:
            if response.status_code in _RETRY_STATUS:
                _Attempt.raise_retry(response)
            if response.status_code == 404:
                raise NotFoundError(f"no file {key!r} in {self._where}")
            if response.status_code != 200:
                response.read()
                self._fail(response, f"download {key}")
            expected_size = response.headers.get("Content-Length")
            expected_sha = self._expected_sha256(response)
            digest, size = hashlib.sha256(), 0
            with open(tmp, "wb") as out:
                for chunk in response.iter_raw(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        if expected_size is not None and size != int(expected_size):
            raise _Truncated(f"{size} of {expected_size} bytes")
        if expected_sha and digest.hexdigest() != expected_sha.lower():
            raise BackendError(
                f"cannot download {key}: {self._where} sent bytes whose sha256 {digest.hexdigest()[:12]} "
                f"is not the stored {expected_sha[:12]}"
            )

    def _attempts(self, action: str) -> Iterator[_Attempt]:
        """Yield attempts until one succeeds; back off between them; give up clearly."""
        pause = self.backoff
        for number in range(1, self.max_attempts + 1):
            attempt = _Attempt()
            yield attempt
            if attempt.error is None:
                return
            if number == self.max_attempts:
                self._give_up(action, attempt.error, number)
            time.sleep(pause)
            pause *= 2

    def _give_up(self, action: str, error: BaseException, attempts: int) -> NoReturn:
        tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(error, _ServerError):
            raise BackendError(f"cannot {action}: {self._where} answered {error} ({tries})") from error
        if isinstance(error, (_Truncated, httpx.RemoteProtocolError)):
            raise BackendUnavailableError(
                f"cannot {action}: {self._where} sent a truncated answer ({_first_line(error)}, {tries})"
            ) from error
        raise BackendUnavailableError(
            f"cannot {action}: {self._where} is unreachable ({type(error).__name__}, {tries})"
        ) from error

    def _fail(self, response: httpx.Response, action: str) -> NoReturn:
        status = response.status_code
        if status in (401, 403):
            raise BackendError(f"cannot {action}: {self._where} refused the credentials (HTTP {status})")
        if status == 404:
            raise BackendError(f"cannot {action}: {self._where} does not exist (HTTP 404)")
        detail = _short(response)
        raise BackendError(f"cannot {action}: {self._where} answered HTTP {status}{detail}")


class _ServerError(Exception):
    """A 5xx answer (retried)."""


class _Truncated(Exception):
    """A body shorter than its Content-Length (retried)."""


class _Attempt:
    """Context of one try: records a retryable failure instead of raising it."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, (httpx.TransportError, _ServerError, _Truncated)):
            self.error = exc
            return True
        return False

    def retry_on(self, response: httpx.Response) -> None:
        self.raise_retry(response)

    @staticmethod
    def raise_retry(response: httpx.Response) -> NoReturn:
        raise _ServerError(f"HTTP {response.status_code}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _short(response: httpx.Response) -> str:
    try:
        text = response.text.strip()
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    first = text.splitlines()[0] if text else ""
    return f": {first[:120]}" if first else ""


__all__ = ["Checksums", "HttpRepositoryFileStore"]
