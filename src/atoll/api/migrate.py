"""Move a whole installation to other stores: ``atoll migrate``.

Copies every record of the configured metadata store to another one
(``to_metadata``: a URL) and/or every stored file of the configured file
store to another one (``to_files``: file-store settings as in ``atoll.yaml``),
e.g. the embedded SQLite + local files of a laptop to the team's
PostgreSQL + S3, or to MongoDB + Artifactory.

How it stays safe:

- **files first, records last**: no copied record points at a file not yet
  copied;
- **verified**: every file is read back from the target and its sha256
  compared with the source's; afterwards the number of records of every kind
  and the set of keys are compared;
- **resumable**: progress is journaled in ``ATOLL_HOME/migrations/``; running
  the same command again after an interruption skips what was done (a file
  already copied is not sent again);
- **refuses a non-empty target** (records, blobs or files already there)
  unless ``force`` — except the target of an unfinished migration from the
  same source, which is resumed.

Lightweight files (``lightweight/`` keys) live in the metadata store, so they
move with ``to_metadata``. Records keep their names, contents and creation
times; their revision starts again at 1. Treasure chests are copied still
encrypted (the key file in ``ATOLL_HOME`` keeps opening them).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.api.context import AtollContext
from atoll.config import FileStoreSection, mask_url
from atoll.domain.records import RECORD_TYPES, Record
from atoll.errors import AlreadyExistsError, ConfigError, ConflictError, UsageError, ValidationError
from atoll.files.base import FileStore
from atoll.files.lightweight import LightweightFileStore, is_lightweight
from atoll.metadata.base import MetadataStore, get_metadata_store

Progress = Callable[[str], None]


@dataclass
class MigrationReport:
    """What a migration copied and checked."""

    source: dict[str, str]
    target: dict[str, str]
    records: dict[str, int] = field(default_factory=dict)  # kind -> records in the target
    files: int = 0  # keys in the target's scope (copied now or in an earlier, interrupted run)
    copied_files: int = 0  # sent by this run
    copied_bytes: int = 0
    resumed: bool = False
    verified: bool = False


def migrate(
    ctx: AtollContext,
    to_metadata: str | None = None,
    to_files: dict[str, Any] | None = None,
    *,
    to_metadata_tchest: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy the installation of ``ctx`` to the given stores, verify it, and report.

    Args:
        to_metadata: URL of the target metadata store (credentials in it, or
            from ``to_metadata_tchest``).
        to_files: target file-store settings (the keys of ``file_store`` in
            ``atoll.yaml``: type, url, bucket, repository, tchest...).
        force: copy into a target that already holds data (same names are
            overwritten).

    Raises:
        UsageError: neither target given, or a target is not empty (without
            ``force``), or it is the source itself.
        ValidationError: a copied file or a count does not match its source.
        BackendError / BackendUnavailableError: a store failed (run again to resume).
    """
    if to_metadata is None and to_files is None:
        raise UsageError("say where to: --to-metadata URL and/or --to-files SETTINGS")
    say = progress or (lambda _msg: None)
    src_meta, src_files = ctx.metadata, ctx.files
    dst_meta = _open_target_metadata(ctx, to_metadata, to_metadata_tchest) if to_metadata else src_meta
    try:
        inner_files = _open_target_files(ctx, to_files) if to_files is not None else _inner(src_files)
        dst_files = LightweightFileStore(inner_files, dst_meta, ctx.config.metadata.lightweight_max_mb)
        try:
            return _run(ctx, src_meta, src_files, dst_meta, dst_files, to_metadata, to_files, force, say)
        finally:
            if to_files is not None:
                dst_files.close()
    finally:
        if dst_meta is not src_meta:
            dst_meta.close()


def _run(
    ctx: AtollContext,
    src_meta: MetadataStore,
    src_files: FileStore,
    dst_meta: MetadataStore,
    dst_files: LightweightFileStore,
    to_metadata: str | None,
    to_files: dict[str, Any] | None,
    force: bool,
    say: Progress,
) -> MigrationReport:
    report = MigrationReport(
        source={"metadata": mask_url(src_meta.url), "files": repr(_inner(src_files))},
        target={"metadata": mask_url(dst_meta.url), "files": repr(dst_files.files)},
    )
    if to_metadata is not None and mask_url(dst_meta.url) == mask_url(src_meta.url):
        raise UsageError(f"--to-metadata {mask_url(to_metadata)} is the metadata store in use")
    if to_files is not None and repr(dst_files.files) == repr(_inner(src_files)):
        raise UsageError(f"--to-files names the file store in use ({dst_files.files!r})")
    journal = _Journal(ctx.config.home, report.source, report.target)
    report.resumed = journal.started and not journal.finished
    if not report.resumed and not force:
        _refuse_non_empty(dst_meta if to_metadata else None, dst_files.files if to_files is not None else None)
    journal.start()

    # Files first: which keys move depends on what changes.
    keys = [k for k in src_files.list() if _moves(k, to_metadata is not None, to_files is not None)]
    say(f"copying {len(keys)} files ({len(journal.files)} done before)")
    try:
        for key in keys:
            if key in journal.files:
                continue
            report.copied_bytes += _copy_verified(src_files, dst_files, key)
            report.copied_files += 1
            journal.file_done(key)
    finally:
        journal.save()  # even when interrupted: the next run resumes after the last copied file
    report.files = len(keys)

    # Records last, every kind, oldest first.
    if to_metadata is not None:
        for kind, cls in RECORD_TYPES.items():
            records = src_meta.list(cls)
            say(f"copying {len(records)} {kind} records")
            for record in records:
                _copy_record(dst_meta, record)
            report.records[kind] = len(records)

    _verify(dst_meta, dst_files, keys, report, exact=not force)
    journal.finish()
    report.verified = True
    say("verified: counts and checksums match")
    return report


def _moves(key: str, metadata_moves: bool, files_move: bool) -> bool:
    """Lightweight keys move with the metadata store, the others with the file store."""
    return metadata_moves if is_lightweight(key) else files_move


def _inner(files: FileStore) -> FileStore:
    return files.files if isinstance(files, LightweightFileStore) else files


def _open_target_metadata(ctx: AtollContext, url: str, tchest: str | None) -> MetadataStore:
    if tchest:
        from atoll.backends import with_credentials
        from atoll.credentials import read_chest

        user, password = read_chest(ctx.config, tchest, "--to-metadata-tchest", fallback=ctx.metadata)
        url = with_credentials(url, user, password)
    return get_metadata_store(url)


def _open_target_files(ctx: AtollContext, settings: dict[str, Any]) -> FileStore:
    """Open a file store from ``file_store``-style settings, chests read from the chest store
    (then the source store, where earlier versions created them)."""
    from pydantic import ValidationError as PydanticValidationError

    from atoll.backends import open_file_store

    try:
        section = FileStoreSection.model_validate(settings)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"--to-files: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from exc
    if section.native:
        raise UsageError("--to-files: give the target's address and credentials, not native: true")
    config = ctx.config.model_copy(update={"file_store": section})
    return _inner(open_file_store(config, ctx.metadata))


def _refuse_non_empty(metadata: MetadataStore | None, files: FileStore | None) -> None:
    if metadata is not None:
        held = {kind: metadata.count(cls) for kind, cls in RECORD_TYPES.items()}
        held = {kind: n for kind, n in held.items() if n}
        blobs = len(metadata.list_blobs())
        if held or blobs:
            what = ", ".join(f"{n} {kind}" for kind, n in held.items()) or f"{blobs} lightweight files"
            raise UsageError(
                f"the target metadata store {mask_url(metadata.url)} is not empty ({what}); "
                "use --force to copy into it anyway"
            )
    if files is not None:
        found = files.list()
        if found:
            raise UsageError(
                f"the target file store {files!r} is not empty ({len(found)} files, e.g. {found[0]}); "
                "use --force to copy into it anyway"
            )


def _copy_verified(src: FileStore, dst: FileStore, key: str) -> int:
    """Copy one key, read it back from the target and compare sha256; return its size."""
    with tempfile.TemporaryDirectory(prefix="atoll-migrate-") as tmp:
        original, back = Path(tmp, "original"), Path(tmp, "back")
        src.download(key, original)
        dst.upload(original, key)
        dst.download(key, back)
        expected, got = _sha256(original), _sha256(back)
        if expected != got:
            raise ValidationError(
                f"checksum mismatch for {key}: the target holds sha256 {got[:12]}, the source {expected[:12]}"
            )
        return original.stat().st_size


def _copy_record(dst: MetadataStore, record: Record) -> None:
    """Create the record in the target; on a resume or --force, bring an existing one up to date."""
    try:
        dst.create(record)
        return
    except AlreadyExistsError:
        pass
    current = dst.get(type(record), record.name, record.scope)
    if _content(current) == _content(record):
        return
    try:
        dst.update(record.model_copy(update={"revision": current.revision}))
    except ConflictError as exc:  # someone writes to the target meanwhile
        raise ConflictError(f"the target changed while migrating: {exc}") from exc


def _content(record: Record) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"revision", "modified_at"})


def _verify(
    dst_meta: MetadataStore, dst_files: FileStore, keys: list[str], report: MigrationReport, *, exact: bool
) -> None:
    """Counts of every kind and the copied keys; ``exact``: the target held nothing before."""
    for kind, expected in report.records.items():
        held = dst_meta.count(RECORD_TYPES[kind])
        if held < expected or (exact and held != expected):
            raise ValidationError(f"the target holds {held} {kind} records, the source {expected}")
    present = set(dst_files.list())
    missing = [key for key in keys if key not in present]
    if missing:
        raise ValidationError(f"{len(missing)} files are missing from the target, e.g. {missing[0]}")


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _Journal:
    """What a migration from one source to one target has done, kept in ATOLL_HOME."""

    def __init__(self, home: Path, source: dict[str, str], target: dict[str, str]) -> None:
        ident = hashlib.sha256(json.dumps([source, target], sort_keys=True).encode()).hexdigest()[:16]
        self.path = home / "migrations" / f"{ident}.json"
        self.files: set[str] = set()
        self.started = self.finished = False
        self._state = {"source": source, "target": target}
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            self.started, self.finished = True, bool(data.get("finished"))
            self.files = set(data.get("files", []))
        self._pending = 0

    def start(self) -> None:
        if self.finished:  # a new run (with --force) copies everything again
            self.files, self.finished = set(), False
        self.save()

    def file_done(self, key: str) -> None:
        self.files.add(key)
        self._pending += 1
        if self._pending >= 20:  # batched; save() also runs when the copy loop is interrupted
            self.save()

    def finish(self) -> None:
        self.finished = True
        self.save()

    def save(self) -> None:
        self._pending = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self._state, "finished": self.finished, "files": sorted(self.files)}))
        tmp.replace(self.path)


__all__ = ["MigrationReport", "migrate"]
