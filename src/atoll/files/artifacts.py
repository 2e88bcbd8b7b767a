"""Datasets and model versions as stored files: check, publish, fetch, delete.

Publishing is *files first, record last*: the files are uploaded under a
prefix no other publish uses (``datasets/<model>/<name>/<upload-id>/`` or
``versions/<model>/<name>/<upload-id>/``), and only then is the record
written. Any failure on the way (upload error, a record of that name created
meanwhile, Ctrl-C) deletes what this publish uploaded, so a record never
points at missing files and no file is left without a record. Because every
publish has its own prefix, two racing publishers of one name, or a
``replace``, never overwrite the files an existing record points at.

Every original file is recorded with its size and digest (BLAKE3 by default,
``file_store.digest``; sha256 for files recorded before, see
:class:`~atoll.domain.records.StoredFile`); fetching checks them all with
each file's own algorithm, so a tampered or truncated stored file is caught
before use.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

from atoll.domain.records import ArtifactRecord, FileSpec, StoredFile, utcnow
from atoll.errors import AlreadyExistsError, AtollError, NotFoundError, UsageError, ValidationError
from atoll.files.base import FileStore
from atoll.files.digest import check_algorithm, digest_file, new_hash
from atoll.files.lightweight import PREFIX as LIGHTWEIGHT_PREFIX
from atoll.files.lightweight import LightweightFileStore
from atoll.metadata.base import MetadataStore, describe

log = logging.getLogger(__name__)

A = TypeVar("A", bound=ArtifactRecord)

KEY_PREFIXES = {"ds": "datasets", "movers": "versions"}
ARCHIVE_NAME = "archive.tar.gz"
_MB = 1024 * 1024
_CHUNK = 1 << 20
_READ_ONLY = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def _label(record: ArtifactRecord) -> str:
    """``dataset 'iris:d1'``: how messages name a record (same wording as the stores)."""
    return describe(record.kind, record.name, record.scope)


def key_root(record: ArtifactRecord) -> str:
    """``datasets/<model>/<name>`` or ``versions/<model>/<name>``."""
    top = KEY_PREFIXES.get(record.kind)
    if top is None:
        raise UsageError(f"records of kind {record.kind!r} have no stored files")
    return f"{top}/{record.model}/{record.name}"


# Checking.


def check_files(
    specs: Sequence[FileSpec], src_dir: Path, *, compress: bool, follow_symlinks: bool = False
) -> list[Path]:
    """Check a directory against file specs; return the files to store, sorted.

    When the specs name any file, a top-level file they do not name is refused
    (nothing unexpected is stored); with no specs every file is kept.
    Subdirectories are allowed only when the artifact is compressed (they go
    into the archive). Symbolic links are refused unless ``follow_symlinks``
    (then what a link to a file points to is stored; links to directories are
    always refused): a link in a dataset directory must not smuggle a file
    from elsewhere (``/etc/passwd``) into the store.

    Raises:
        NotFoundError: ``src_dir`` does not exist or is not a directory.
        ValidationError: a required file is missing, a file is over its
            ``max_mb``, an undeclared file, a symbolic link, a subdirectory
            without ``compress``, a special file, or no file at all.
    """
    src_dir = Path(src_dir)
    if not src_dir.exists():
        raise NotFoundError(f"no such directory: {src_dir}")
    if not src_dir.is_dir():
        raise NotFoundError(f"not a directory: {src_dir}")
    by_name = {spec.name: spec for spec in specs}
    missing = [spec.name for spec in specs if spec.required and not (src_dir / spec.name).is_file()]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise ValidationError(f"required file{plural} missing from {src_dir}: {', '.join(missing)}")
    files: list[Path] = []
    for entry in sorted(src_dir.iterdir()):
        if entry.is_symlink() and (entry.is_dir() or not follow_symlinks):
            raise _link_error(entry)
        if entry.is_file() and by_name and entry.name not in by_name:
            raise ValidationError(
                f"{entry.name} is not declared by the model's file specs ({', '.join(sorted(by_name))}); "
                "remove it or declare it"
            )
        if entry.is_dir():
            if not compress:
                raise ValidationError(
                    f"{entry} is a directory: only plain files can be stored, "
                    "unless the files are compressed into an archive"
                )
            files.extend(_walk_files(entry, follow_symlinks))
        elif entry.is_file():
            spec = by_name.get(entry.name)
            size = entry.stat().st_size
            if spec is not None and size > spec.max_mb * _MB:
                raise ValidationError(
                    f"{entry.name} is {size / _MB:.2f} MB ({size} bytes), over its {spec.max_mb:g} MB limit"
                )
            files.append(entry)
        else:
            raise ValidationError(f"{entry} is not a regular file")
    if not files:
        raise ValidationError(f"no files to store in {src_dir}")
    return files


def _link_error(path: Path) -> ValidationError:
    if path.is_dir():
        return ValidationError(f"{path} is a link to a directory; copy its files instead")
    return ValidationError(
        f"{path} is a symbolic link (to {os.readlink(path)}); copy the file, or use --follow-symlinks"
    )


def _walk_files(directory: Path, follow_symlinks: bool) -> list[Path]:
    out: list[Path] = []
    for root, dirnames, filenames in os.walk(directory):
        for name in dirnames:
            if os.path.islink(os.path.join(root, name)):
                raise _link_error(Path(root, name))
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(root, name)
            if path.is_symlink() and not follow_symlinks:
                raise _link_error(path)
            if not path.is_file():
                raise ValidationError(f"{path} is not a regular file")
            out.append(path)
    return out


# Publishing.


def publish_artifact(
    metadata: MetadataStore,
    files: FileStore,
    record: A,
    src_dir: Path,
    specs: Sequence[FileSpec],
    *,
    compress: bool = False,
    skip_upload: bool = False,
    replace: bool = False,
    lightweight: bool = False,
    follow_symlinks: bool = False,
    digest: str | None = None,
) -> A:
    """Store the files of ``src_dir`` and then record them; all or nothing.

    Args:
        record: the dataset or model version to write; its ``files``,
            ``stored``, ``compressed`` and ``store_key`` are filled in here.
        compress: store one ``archive.tar.gz`` (allows subdirectories).
        skip_upload: record names and checksums only (``stored=False``).
        replace: update an existing record of that name (its old files are
            deleted once the new record is written) instead of refusing.
        lightweight: keep the files in the metadata database (keys under
            ``lightweight/``, see :mod:`atoll.files.lightweight`); each file
            must be within ``metadata.lightweight_max_mb``.
        follow_symlinks: store what symbolic links to files point to (refused otherwise).
        digest: record the files with this algorithm (``blake3`` or ``sha256``);
            default: the store's (``files.digest``, from ``file_store.digest``).

    Returns:
        The record as stored.

    Raises:
        NotFoundError / ValidationError: see :func:`check_files`.
        AlreadyExistsError: a record of that name exists (and not ``replace``);
            raised before anything is uploaded.
        UsageError: ``lightweight`` with ``skip_upload``, or with a file store
            that cannot send files to the metadata store.
        BackendError: the file or metadata store failed (nothing is left behind).
    """
    src_dir = Path(src_dir)
    algorithm = check_algorithm(digest or files.digest)
    paths = check_files(specs, src_dir, compress=compress, follow_symlinks=follow_symlinks)
    root = key_root(record)
    if lightweight:
        _check_lightweight(files, paths, skip_upload=skip_upload, compress=compress)
        root = LIGHTWEIGHT_PREFIX + root
    existing = _find(metadata, record)
    if existing is not None and not replace:
        raise AlreadyExistsError(f"{_label(record)} already exists")

    if skip_upload:
        stored = [_stored_file(path, src_dir, algorithm, *_hash_file(path, algorithm)) for path in paths]
        final = record.model_copy(update={"files": stored, "stored": False, "compressed": False, "store_key": None})
        result = _write_record(metadata, final, existing)
        _forget_old_files(files, existing)
        return result

    prefix = f"{root}/{uuid.uuid4().hex[:16]}/"
    uploaded: list[str] = []
    try:
        if compress:
            with tempfile.TemporaryDirectory(prefix="atoll-archive-") as tmp:
                archive = Path(tmp, ARCHIVE_NAME)
                stored = _make_archive(src_dir, paths, archive, algorithm)
                store_key = prefix + ARCHIVE_NAME
                uploaded.append(store_key)  # listed first: a half-done upload is cleaned up too
                files.upload(archive, store_key)
        else:
            stored = []
            store_key = prefix
            for path in paths:
                key = prefix + path.name
                uploaded.append(key)
                stored.append(_stored_file(path, src_dir, algorithm, *_upload_hashing(files, path, key, algorithm)))
        final = record.model_copy(
            update={"files": stored, "stored": True, "compressed": compress, "store_key": store_key}
        )
        result = _write_record(metadata, final, existing)
    except BaseException:
        _rollback(files, uploaded, prefix)
        raise
    _forget_old_files(files, existing)
    return result


def _check_lightweight(files: FileStore, paths: list[Path], *, skip_upload: bool, compress: bool) -> None:
    """Refuse a lightweight publish that cannot succeed, before anything is stored."""
    if skip_upload:
        raise UsageError("--lightweight stores the files in the metadata database; it cannot skip the upload")
    if not isinstance(files, LightweightFileStore):
        raise UsageError(f"the file store {files!r} cannot keep lightweight files (open it from the configuration)")
    if not compress:  # an archive is checked once built, when it is stored
        for path in paths:
            files.check_size(path)


def _find(metadata: MetadataStore, record: A) -> A | None:
    try:
        return metadata.get(type(record), record.name, record.scope)
    except NotFoundError:
        return None


def _write_record(metadata: MetadataStore, final: A, existing: A | None) -> A:
    if existing is None:
        return metadata.create(final)
    return metadata.update(
        final.model_copy(
            update={"revision": existing.revision, "created_at": existing.created_at, "modified_at": utcnow()}
        )
    )


def _rollback(files: FileStore, uploaded: list[str], prefix: str) -> None:
    """Best effort: remove what this publish stored; never hide the original error."""
    for key in uploaded:
        try:
            files.delete(key)
        except (AtollError, OSError) as exc:
            log.warning("could not remove %s after a failed publish: %s", key, exc)
    try:
        files.delete_prefix(prefix)
    except (AtollError, OSError) as exc:
        log.warning("could not remove %s after a failed publish: %s", prefix, exc)


def _forget_old_files(files: FileStore, existing: ArtifactRecord | None) -> None:
    """After a replace: the old record's files are no longer referenced."""
    if existing is None:
        return
    try:
        delete_artifact_files(files, existing)
    except (AtollError, OSError) as exc:
        log.warning("could not remove the replaced files of %s: %s", _label(existing), exc)


def _stored_file(path: Path, src_dir: Path, algorithm: str, size: int, digest: str) -> StoredFile:
    return StoredFile(name=path.relative_to(src_dir).as_posix(), size=size, **{algorithm: digest})


def _hash_file(path: Path, algorithm: str) -> tuple[int, str]:
    return path.stat().st_size, digest_file(path, algorithm)


def _upload_hashing(files: FileStore, path: Path, key: str, algorithm: str) -> tuple[int, str]:
    """Upload and hash; in one read when the store can (LocalFileStore)."""
    upload_hashing = getattr(files, "upload_hashing", None)
    if callable(upload_hashing):
        size, digest = upload_hashing(path, key, algorithm)
        return int(size), str(digest)
    size, digest = _hash_file(path, algorithm)
    files.upload(path, key)
    return size, digest


class _HashingReader:
    """File wrapper that hashes what tarfile reads from it."""

    def __init__(self, handle: IO[bytes], algorithm: str) -> None:
        self._handle = handle
        self.digest = new_hash(algorithm)
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def _make_archive(src_dir: Path, paths: list[Path], archive: Path, algorithm: str) -> list[StoredFile]:
    """Write a gzip tarball of ``paths``, hashing each file as it is read."""
    stored = []
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path in paths:
            name = path.relative_to(src_dir).as_posix()
            info = tarfile.TarInfo(name)
            st = path.stat()
            info.size, info.mtime, info.mode = st.st_size, int(st.st_mtime), 0o644
            with open(path, "rb") as handle:
                reader = _HashingReader(handle, algorithm)
                tar.addfile(info, reader)  # type: ignore[arg-type]
            stored.append(StoredFile(name=name, size=reader.size, **{algorithm: reader.digest.hexdigest()}))
    return stored


# Fetching.


def fetch_artifact(files: FileStore, record: ArtifactRecord, dest: Path) -> Path:
    """Download the files of ``record`` into ``dest``, verified and read-only.

    A compressed artifact is extracted. On any failure the files written so
    far are removed (and ``dest`` itself when this call created it).

    Raises:
        NotFoundError: the record has no stored files, or one is missing.
        ValidationError: a file's size or digest does not match the record
            (``checksum mismatch for <file>``, naming the algorithm).
    """
    if not record.stored or not record.store_key:
        raise NotFoundError(f"{_label(record)} has no stored files (it was recorded without uploading them)")
    dest = Path(dest)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if record.compressed:
            _fetch_archive(files, record, dest, written)
        else:
            prefix = record.store_key.rstrip("/") + "/"
            for item in record.files:
                target = dest / _safe_name(item.name)
                written.append(target)
                files.download_verified(prefix + item.name, target, _checker(item), algorithm=item.algorithm)
        for path in written:
            path.chmod(path.stat().st_mode & _READ_ONLY)
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for path in written:
                path.unlink(missing_ok=True)
        raise
    return dest


def _safe_name(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise ValidationError(f"refusing stored file name {name!r}: it is not a relative path")
    return name


def _checker(item: StoredFile) -> Callable[[int, str], None]:
    """``verify`` for :meth:`FileStore.download_verified`: raises on a checksum mismatch."""
    return lambda size, digest: _check(item, size, digest)


def _check(item: StoredFile, size: int, digest: str) -> None:
    if size != item.size or digest != item.digest:
        raise ValidationError(
            f"checksum mismatch for {item.name}: the stored file differs from the published one "
            f"({item.algorithm} {digest[:12]}, expected {item.digest[:12]}; {size} bytes, expected {item.size})"
        )


def _fetch_archive(files: FileStore, record: ArtifactRecord, dest: Path, written: list[Path]) -> None:
    """Stream the archive's members to ``dest``, hashing each while writing it."""
    expected = {item.name: item for item in record.files}
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="atoll-fetch-") as tmp:
        archive = Path(tmp, ARCHIVE_NAME)
        files.download(str(record.store_key), archive)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    if member.isdir():
                        continue
                    item = expected.get(member.name)
                    if item is None or not member.isfile() or member.name in seen:
                        raise ValidationError(
                            f"checksum mismatch for {ARCHIVE_NAME}: unexpected entry {member.name!r} "
                            f"in the archive of {_label(record)}"
                        )
                    source = tar.extractfile(member)
                    if source is None:  # pragma: no cover - regular files always have data
                        raise ValidationError(f"checksum mismatch for {member.name}: no data in the archive")
                    target = dest / _safe_name(member.name)
                    written.append(target)
                    _check(item, *_write_hashing(source, target, item.algorithm))
                    seen.add(member.name)
        except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
            raise ValidationError(
                f"checksum mismatch for {ARCHIVE_NAME}: the stored archive of {_label(record)} "
                f"is corrupt ({exc})"
            ) from exc
    missing = sorted(expected.keys() - seen)
    if missing:
        raise ValidationError(f"checksum mismatch for {missing[0]}: missing from the stored archive")


def _write_hashing(source: IO[bytes], target: Path, algorithm: str) -> tuple[int, str]:
    """Copy ``source`` to ``target`` (replacing it), returning size and the digest of ``algorithm``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.atoll-part")
    digest, size = new_hash(algorithm), 0
    try:
        with open(tmp, "wb") as out:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return size, digest.hexdigest()


# Deleting.


def delete_artifact_files(files: FileStore, record: ArtifactRecord) -> int:
    """Remove the stored files of ``record``; return how many keys were removed.

    Missing files are not an error (a delete can be retried).
    """
    if not record.stored or not record.store_key:
        return 0
    if record.compressed:
        existed = files.exists(record.store_key)
        files.delete(record.store_key)
        return int(existed)
    return files.delete_prefix(record.store_key)
