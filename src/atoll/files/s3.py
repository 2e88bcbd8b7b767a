"""S3FileStore: keys as objects of one S3 bucket (AWS, MinIO, Ceph, the `files` island).

Talks plain S3 with boto3, configured for the lowest common denominator of
S3 servers: path-style addressing (``http://host/bucket/key``), SigV4
signatures, and request/response checksums only where the operation requires
them (newer botocore adds CRC32 trailers by default, which several
S3-compatible servers reject). Large files go up in parts (TransferConfig),
and the bucket is created on first use when it is missing.

Every botocore error is translated here (see :func:`_translate`): a missing
key becomes :class:`~atoll.errors.NotFoundError`, an unreachable endpoint a
:class:`~atoll.errors.BackendUnavailableError` naming the endpoint with any
credentials in it masked.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any, NoReturn

from atoll.config import mask_url
from atoll.errors import BackendError, BackendUnavailableError, ConfigError, NotFoundError, UsageError
from atoll.files.base import FileStore, check_key

try:
    import boto3
    from boto3.exceptions import Boto3Error, S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        IncompleteReadError,
        NoCredentialsError,
        ReadTimeoutError,
        ResponseStreamingError,
    )
except ImportError as exc:  # reported by the registry, which names ``exc.name`` and the install hint
    raise ImportError(f"the s3 file store needs boto3 (pip install 'atoll[s3]'): {exc}", name=exc.name) from exc

MB = 1024 * 1024
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_CONSISTENT_TRIES = 5  # downloads re-read when the object changed while being read
_PLAIN_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')  # a single-part object's ETag is its MD5


class _TornRead(Exception):
    """What one GET returned is not the object its ETag names (replaced while being read)."""
_DENIED_CODES = frozenset({"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


class S3FileStore(FileStore):
    """Files in an S3 bucket, optionally under a key prefix.

    Args:
        url: endpoint URL (``http://127.0.0.1:9000``); None means AWS.
        bucket: the bucket (created when missing, unless ``create_bucket`` is False).
        region: the SigV4 signing region.
        access_key / secret_key: the key pair; None falls back to boto3's
            usual sources (environment, ``~/.aws``, instance roles).
        user / password: the same pair under the names treasure chests use
            (``atoll.backends`` passes them so).
        prefix: keys are stored under ``<prefix>/`` inside the bucket.
        multipart_threshold / multipart_chunksize: bytes from which, and in
            which parts, files are transferred in several requests.
        addressing_style: ``path`` (default, works everywhere) or ``virtual``.
        connect_timeout / read_timeout / max_attempts: per-request limits.
    """

    def __init__(
        self,
        url: str | None = None,
        bucket: str = "atoll",
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        prefix: str = "",
        create_bucket: bool = True,
        multipart_threshold: int = 16 * MB,
        multipart_chunksize: int = 16 * MB,
        addressing_style: str = "path",
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ConfigError("file_store.bucket: the s3 file store needs a bucket name")
        access_key = access_key or user or None
        secret_key = secret_key or password or None
        if bool(access_key) != bool(secret_key):
            raise ConfigError("the s3 file store needs both an access key and a secret key (or neither)")
        self.url = url or None
        self.bucket = bucket
        self.region = region or "us-east-1"
        self.prefix = prefix.strip("/")
        self._create_bucket = create_bucket
        self._bucket_ready = False
        self._lock = threading.Lock()
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize, use_threads=True
        )
        config = BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=self.region
            )
            self._client = session.client("s3", endpoint_url=self.url, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise ConfigError(f"cannot configure the s3 file store for {self.endpoint}: {exc}") from exc

    @property
    def endpoint(self) -> str:
        """The endpoint URL with any credentials masked (safe to print)."""
        return mask_url(self.url) if self.url else f"AWS S3 ({self.region})"

    def __repr__(self) -> str:
        return f"S3FileStore({self.endpoint!r}, bucket={self.bucket!r})"

    # Primitives.

    def upload(self, local_path: Path, key: str) -> None:
        name = self._name(key)
        local_path = Path(local_path)
        if not local_path.is_file():
            raise NotFoundError(f"cannot upload {local_path}: no such file")
        self._ensure_bucket()
        try:
            # A PUT (single or completed multipart) replaces the object at once:
            # readers see the old or the new bytes, never a mix.
            self._client.upload_file(str(local_path), self.bucket, name, Config=self._transfer)
        except FileNotFoundError as exc:  # removed while we read it
            raise NotFoundError(f"cannot upload {local_path}: no such file") from exc
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            self._translate(exc, f"upload {key}")

    def download(self, key: str, local_path: Path) -> None:
        name = self._name(key)
        local_path = Path(local_path)
        self._ensure_bucket()
        head = self._head(name)
        if head is None:
            raise NotFoundError(f"no file {key!r} in {self}")
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            for _attempt in range(_CONSISTENT_TRIES):
                if int(head.get("ContentLength") or 0) < self._transfer.multipart_threshold:
                    # One GET answers with one version of the object on S3 proper; a server
                    # that rewrites the file under an open answer cuts it short or tears it
                    # (caught by the ETag's MD5): read again.
                    try:
                        self._get_whole(name, head.get("ETag"), tmp)
                        break
                    except (IncompleteReadError, ResponseStreamingError, _TornRead):
                        pass
                    head = self._head(name)
                    if head is None:
                        raise NotFoundError(f"no file {key!r} in {self}")
                    continue
                # Large files in parallel ranged requests; those may straddle a concurrent
                # upload, so the object must be the same before and after.
                self._client.download_file(self.bucket, name, str(tmp), Config=self._transfer)
                after = self._head(name)
                if after is not None and after.get("ETag") == head.get("ETag"):
                    break
                if after is None:
                    raise NotFoundError(f"no file {key!r} in {self}")
                head = after
            else:
                raise BackendError(f"cannot download {key!r} from {self}: it kept changing while being read")
            os.replace(tmp, local_path)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            self._translate(exc, f"download {key}", key=key)
        finally:
            tmp.unlink(missing_ok=True)

    def _get_whole(self, name: str, etag: str | None, target: Path) -> None:
        """Stream one GET of ``name`` into ``target`` (pinned to ``etag`` when known).

        Some S3 servers (those over a plain directory, e.g. ``rclone serve s3``) rewrite
        a file in place, so one answer can mix old and new bytes at the right length.
        When the answer's ETag is a plain MD5 (a single-part upload), the bytes read
        must hash to it, else :class:`_TornRead` asks the caller to read again.
        """
        extra = {"IfMatch": etag} if etag else {}
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=name, **extra)
        except ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "412"):
                raise
            answer = self._client.get_object(Bucket=self.bucket, Key=name)  # replaced meanwhile: the new one
        body = answer["Body"]
        plain = _PLAIN_MD5_ETAG.match(str(answer.get("ETag") or ""))
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(target, "wb") as out:
                for chunk in body.iter_chunks(MB):
                    digest.update(chunk)
                    out.write(chunk)
        finally:
            body.close()
        if plain and digest.hexdigest() != plain.group(1):
            raise _TornRead(name)

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._ensure_bucket()
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                return
            self._translate(exc, f"delete {key}")
        except BotoCoreError as exc:
            self._translate(exc, f"delete {key}")

    def list(self, prefix: str = "") -> list[str]:
        if prefix.startswith("/"):
            raise UsageError(f"invalid file-store key prefix {prefix!r}")
        self._ensure_bucket()
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    name = item["Key"]
                    if not name.endswith("/"):  # directory markers some servers show
                        keys.append(name[strip:])
        except (BotoCoreError, ClientError) as exc:
            self._translate(exc, f"list {prefix!r}")
        return sorted(keys)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        self._ensure_bucket()
        return self._exists(name)

    def close(self) -> None:
        self._client.close()

    # Helpers.

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _exists(self, name: str) -> bool:
        return self._head(name) is not None

    def _head(self, name: str) -> dict[str, Any] | None:
        """The object's metadata (size, ETag), None when it does not exist."""
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND_CODES:
                return None
            self._translate(exc, f"check {name}")
        except BotoCoreError as exc:
            self._translate(exc, f"check {name}")
        return head

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use when it is missing (once per store)."""
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                    self._translate(exc, f"open bucket {self.bucket}")
                if not self._create_bucket:
                    raise NotFoundError(f"bucket {self.bucket!r} does not exist at {self.endpoint}") from exc
                self._make_bucket()
            except BotoCoreError as exc:
                self._translate(exc, f"open bucket {self.bucket}")
            self._bucket_ready = True

    def _make_bucket(self) -> None:
        options: dict[str, Any] = {"Bucket": self.bucket}
        if self.url is None and self.region != "us-east-1":  # AWS wants the region spelled out elsewhere
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**options)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):  # a racing creator
                self._translate(exc, f"create bucket {self.bucket}")
        except BotoCoreError as exc:
            self._translate(exc, f"create bucket {self.bucket}")

    def _translate(self, exc: Exception, action: str, key: str | None = None) -> NoReturn:
        """Raise the Atoll error for a boto3/botocore failure of ``action``."""
        cause: BaseException = exc
        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, (ClientError, BotoCoreError)):
            cause = exc.__context__
        where = f"{self.endpoint} (bucket {self.bucket})"
        if isinstance(cause, _UNREACHABLE):
            raise BackendUnavailableError(f"cannot {action}: S3 endpoint {self.endpoint} is unreachable") from exc
        if isinstance(cause, NoCredentialsError):
            raise ConfigError(
                f"cannot {action}: no S3 credentials for {self.endpoint} (set file_store.tchest)"
            ) from exc
        if isinstance(cause, ClientError):
            code = _code(cause)
            if code in _NOT_FOUND_CODES and key is not None:
                raise NotFoundError(f"no file {key!r} in {self}") from exc
            if code in _DENIED_CODES:
                raise BackendError(f"cannot {action}: {where} refused the credentials ({code})") from exc
            message = cause.response.get("Error", {}).get("Message") or code
            raise BackendError(f"cannot {action}: {where} answered {code}: {message}") from exc
        raise BackendError(f"cannot {action} at {where}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


__all__ = ["S3FileStore"]
