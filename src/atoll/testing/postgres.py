"""A throwaway PostgreSQL server for tests and benchmarks.

:func:`running_postgres` runs Debian's PostgreSQL binaries (``initdb`` +
``pg_ctl``) on a fresh data directory, listening on 127.0.0.1 only, with
password authentication (scram-sha-256, generated password) for every
connection — a database without auth is a weak spot we do not repeat even in
tests. When run as root the server runs as the ``postgres`` OS user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atoll.errors import BackendUnavailableError

PG_BIN = Path(os.environ.get("ATOLL_PG_BIN", "/usr/lib/postgresql/15/bin"))
_USER = "atoll"
_DATABASE = "atoll"


def postgres_available() -> bool:
    """True when the PostgreSQL server binaries are installed."""
    return all((PG_BIN / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


@contextmanager
def running_postgres(durable: bool = False, start_timeout: float = 60) -> Iterator[str]:
    """Start a private PostgreSQL server and yield its URL; stop it and delete its files on exit.

    Args:
        durable: keep fsync on (benchmarks); tests run faster without it.
        start_timeout: seconds to wait for the server to accept connections.

    Raises:
        BackendUnavailableError: the binaries are missing or the server did not start.
    """
    if not postgres_available():
        raise BackendUnavailableError(
            f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql-15, "
            "or set ATOLL_PG_BIN)"
        )
    base = Path(tempfile.mkdtemp(prefix="atoll-pg-"))
    data = base / "data"
    password = secrets.token_urlsafe(24)
    started = False
    try:
        owner = _prepare(base, password)
        _run(
            owner,
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                _USER,
                f"--pwfile={base / 'pw'}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            base,
        )
        (base / "pw").unlink()
        port = _free_port()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{base}'\nmax_connections = 50\n"
                f"fsync = {'on' if durable else 'off'}\n"
            )
        started = True
        _run(
            owner,
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                str(int(start_timeout)),
                "start",
            ],
            base,
        )
        url = f"postgresql://{_USER}:{password}@127.0.0.1:{port}/{_DATABASE}"
        _create_database(port, password)
        yield url
    finally:
        if started:
            _stop(owner, data, base)
        shutil.rmtree(base, ignore_errors=True)


def _prepare(base: Path, password: str) -> str | None:
    """Write the password file and hand the directory to the server's OS user."""
    owner = "postgres" if os.geteuid() == 0 else None
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        for path in (base, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    base.chmod(0o700)
    return owner


def _run(owner: str | None, cmd: list[str], cwd: Path) -> None:
    full = ["runuser", "-u", owner, "--", *cmd] if owner else cmd
    proc = subprocess.run(full, check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        log = cwd / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise BackendUnavailableError(
            f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}"
            + (f"\nserver log:\n{tail}" if tail else "")
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _create_database(port: int, password: str) -> None:
    import psycopg

    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user=_USER,
            password=password,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{_DATABASE}"')
    except psycopg.Error as exc:
        raise BackendUnavailableError(f"cannot create the test database: {exc}") from exc


def _stop(owner: str | None, data: Path, base: Path) -> None:
    """Stop the server; if pg_ctl cannot, kill the postmaster we started by its PID."""
    try:
        _run(owner, [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"], base)
        return
    except (BackendUnavailableError, subprocess.TimeoutExpired):
        pass
    pidfile = data / "postmaster.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
