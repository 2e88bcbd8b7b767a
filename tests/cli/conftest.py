"""Drive the real ``atoll`` console script in subprocesses, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.postgres import real_postgres

ATOLL = Path(sys.executable).parent / "atoll"


@dataclass
class Result:
    args: list[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout must be exactly one JSON document."""
        return json.loads(self.out)


@dataclass
class Atoll:
    """Runs ``atoll`` with its own ATOLL_HOME and working directory."""

    home: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
        env.update({"ATOLL_HOME": str(self.home), "COLUMNS": "250", "NO_COLOR": "1", **self.env, **(extra or {})})
        return env

    def __call__(
        self, *args: str, input: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Result:
        proc = subprocess.run(
            [str(ATOLL), *args],
            check=False,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            cwd=cwd or self.cwd,
            env=self.environ(env),
            timeout=120,
        )
        return Result(list(args), proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``atoll`` without waiting (for races); the caller waits and closes the pipes."""
        return subprocess.Popen(
            [str(ATOLL), *args], cwd=self.cwd, env=self.environ(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def ok(self, *args: str, **kw: Any) -> Result:
        res = self(*args, **kw)
        assert res.code == 0, f"atoll {' '.join(args)} -> {res.code}\n{res.err}"
        assert "Traceback" not in res.err
        return res

    def js(self, *args: str, **kw: Any) -> Any:
        """Run with ``-o json`` and parse stdout as one document."""
        return self.ok("-o", "json", *args, **kw).json()

    def fails(self, code: int, *args: str, **kw: Any) -> str:
        """Run, expect ``code`` and one line on stderr without a traceback; return that line."""
        res = self(*args, **kw)
        assert res.code == code, f"atoll {' '.join(args)} -> {res.code} (wanted {code})\n{res.out}\n{res.err}"
        assert "Traceback" not in res.err
        lines = [line for line in res.err.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got:\n{res.err}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


@pytest.fixture
def atoll(tmp_path: Path) -> Atoll:
    if not ATOLL.exists():
        pytest.fail(f"console script not installed at {ATOLL}: run `make test`")
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    return Atoll(home=home, cwd=work)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the store part (fails instead of skipping under CI=1)."""
    with real_postgres() as url:
        yield url

