"""``atoll check``: the metadata store and the file store agree (like ``git fsck``).

What is looked for, and what ``--repair`` does about it (only what is safe:
nothing a user might still want is deleted)::

    metadata-store-missing   the SQLite file is gone while files are stored
                             → repair: start an empty store (the files then show
                               up as files without records)
    empty-metadata-store     no record at all, but the file store holds files
                             → report only (restore the metadata from a backup)
    damaged-record           a record that no longer reads (bad JSON, invalid value)
                             → repair: remove the record
    record-without-files     a dataset/version/training whose stored files are gone
                             → repair: remove the record (nothing can use it)
    checksum-mismatch        a stored file differs from its recorded size or digest
                             (BLAKE3, or sha256 for files recorded so)
                             → report only (re-publish it, or restore the file)
    file-without-record      a stored file no record points to
                             → repair: move it to ``lost+found/<key>`` (kept, not
                               deleted, and no longer reported)

Run ``--repair`` when nothing is publishing: a publish in flight has its files
stored before its record, so they look like files without a record.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from atoll.api.context import AtollContext
from atoll.config import mask_url
from atoll.domain.records import RECORD_TYPES, ArtifactRecord, Dataset, ModelVersion, Record, Training
from atoll.errors import AtollError, BackendUnavailableError, NotFoundError
from atoll.metadata.base import describe

LOST_AND_FOUND = "lost+found/"

#: problem -> what ``--repair`` does about it ("" : nothing, report only)
REPAIRS: dict[str, str] = {
    "metadata-store-missing": "start an empty metadata store",
    "empty-metadata-store": "",
    "damaged-record": "remove the record",
    "record-without-files": "remove the record",
    "checksum-mismatch": "",
    "file-without-record": f"move the file to {LOST_AND_FOUND}",
}


@dataclass
class Finding:
    """One problem: its kind, the record or key concerned, details, and what repair did."""

    problem: str
    what: str
    detail: str
    repair: str = ""
    repaired: bool = False
    # How to repair it: (kind, name, scope) of a record to remove, or a file key to move.
    _record: tuple[str, str, str] | None = None
    _key: str | None = None


def check(ctx: AtollContext, checksums: bool = True) -> list[Finding]:
    """Compare the stores; return what disagrees (an empty list when all is well).

    Args:
        checksums: download every stored file and check its recorded digest
            (BLAKE3 or sha256, each file its own; slow on a large store);
            without it only presence is checked.
    """
    lost = _lost_metadata_store(ctx)
    if lost is not None:
        return [lost]
    findings: list[Finding] = []
    records: list[Record] = []
    for kind in RECORD_TYPES.values():
        for damaged in ctx.metadata.damaged(kind):
            findings.append(_finding("damaged-record", describe(damaged.kind, damaged.name, damaged.scope),
                                     damaged.reason, record=(damaged.kind, damaged.name, damaged.scope)))
        records.extend(ctx.metadata.list(kind))
    stored = set(ctx.files.list(""))
    expected: set[str] = set()
    for record in records:
        keys = _keys_of(record)
        expected.update(keys)
        findings.extend(_check_record(ctx, record, keys, stored, checksums))
    orphans = sorted(k for k in stored - expected if not k.startswith(LOST_AND_FOUND))
    if not records and orphans:
        # The records were probably lost, not the files orphaned: moving the files away would
        # break the records a restored backup brings back, so they are only reported.
        findings.append(_finding("empty-metadata-store", mask_url(ctx.metadata.url),
                                 f"no record at all, but {len(orphans)} stored file(s): restore the metadata "
                                 "from a backup (the files are left where they are)"))
        findings.extend(Finding("file-without-record", key, "no record points to it") for key in orphans)
    else:
        findings.extend(_finding("file-without-record", key, "no record points to it", key=key) for key in orphans)
    return findings


def repair(ctx: AtollContext, findings: Iterable[Finding]) -> list[Finding]:
    """Do the safe repair of each finding (see the module docstring); return them all, marked."""
    out = []
    for finding in findings:
        if finding.problem == "metadata-store-missing":
            from atoll.backends import open_metadata_store

            ctx.use_metadata(open_metadata_store(ctx.config, allow_new=True))
            finding.repaired = True
        elif finding._record is not None:
            kind, name, scope = finding._record
            try:
                ctx.metadata.delete(RECORD_TYPES[kind], name, scope)
            except NotFoundError:
                pass  # already gone: the goal is reached
            finding.repaired = True
        elif finding._key is not None:
            _move_to_lost_and_found(ctx, finding._key)
            finding.repaired = True
        out.append(finding)
    return out


def check_and_repair(
    ctx: AtollContext, confirm: Callable[[str], bool], checksums: bool = True
) -> list[Finding]:
    """Check, then repair what can be repaired once ``confirm`` agrees.

    After a new empty metadata store was started the stores are checked again,
    so the findings then list the stored files (reported, not moved).
    """
    findings = check(ctx, checksums)
    fixable = [f for f in findings if f.repair]
    if not fixable:
        return findings
    counts = ", ".join(f"{sum(f.problem == p for f in fixable)} × {REPAIRS[p]}"
                       for p in dict.fromkeys(f.problem for f in fixable))
    if not confirm(f"repair: {counts}?"):
        return findings
    repair(ctx, fixable)
    if any(f.problem == "metadata-store-missing" for f in fixable):
        findings += check(ctx, checksums)
    return findings


# -- internals -----------------------------------------------------------------


def _finding(problem: str, what: str, detail: str, *, record: tuple[str, str, str] | None = None,
             key: str | None = None) -> Finding:
    return Finding(problem, what, detail, REPAIRS[problem], _record=record, _key=key)


def _lost_metadata_store(ctx: AtollContext) -> Finding | None:
    from atoll.backends import metadata_url, refuse_lost_sqlite

    try:
        refuse_lost_sqlite(ctx.config, metadata_url(ctx.config))
    except BackendUnavailableError:
        where = ctx.config.metadata_url.removeprefix("sqlite:///")
        return _finding("metadata-store-missing", where,
                        f"the SQLite file is gone while {ctx.config.file_store_path} holds files: "
                        "restore it from a backup, or repair to start an empty one")
    return None


def _keys_of(record: Record) -> list[str]:
    """File-store keys a record points to."""
    if isinstance(record, (Dataset, ModelVersion)):
        if not record.stored or not record.store_key:
            return []
        if record.compressed:
            return [record.store_key]
        prefix = record.store_key.rstrip("/") + "/"
        return [prefix + item.name for item in record.files]
    if isinstance(record, Training) and record.output_notebook:
        return [record.output_notebook]
    return []


def _check_record(
    ctx: AtollContext, record: Record, keys: list[str], stored: set[str], checksums: bool
) -> list[Finding]:
    what = describe(record.kind, record.name, record.scope)
    missing = [k for k in keys if k not in stored]
    if missing:
        if isinstance(record, Training):  # the training itself is fine; its output is lost
            return [Finding("record-without-files", what, f"executed notebook {missing[0]} is missing")]
        return [_finding("record-without-files", what,
                         f"{len(missing)} of {len(keys)} stored file(s) missing, e.g. {missing[0]}",
                         record=(record.kind, record.name, record.scope))]
    if checksums and isinstance(record, ArtifactRecord) and keys:
        from atoll.files.artifacts import fetch_artifact

        with tempfile.TemporaryDirectory(prefix="atoll-check-") as tmp:
            try:
                fetch_artifact(ctx.files, record, Path(tmp) / "files")
            except AtollError as exc:
                return [_finding("checksum-mismatch", what, exc.message)]
    return []


def _move_to_lost_and_found(ctx: AtollContext, key: str) -> None:
    with tempfile.TemporaryDirectory(prefix="atoll-check-") as tmp:
        local = Path(tmp) / "file"
        ctx.files.download(key, local)
        ctx.files.upload(local, LOST_AND_FOUND + key)
    ctx.files.delete(key)


__all__ = ["LOST_AND_FOUND", "REPAIRS", "Finding", "check", "check_and_repair", "repair"]
