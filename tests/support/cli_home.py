"""An ATOLL_HOME driven through the ``atoll`` command, as a user drives it (JSON output)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CliHome:
    path: Path
    namespace: str
    port: int
    env: dict[str, str]

    def atoll(self, *args: str, timeout: float = 900) -> Any:
        """``atoll -o json ARGS`` in this home; its JSON answer (None when it printed nothing)."""
        done = subprocess.run([sys.executable, "-m", "atoll.cli.main", "-o", "json", *args], capture_output=True,
                              text=True, timeout=timeout, cwd=self.path, env=self.env, check=False)
        assert done.returncode == 0, f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return json.loads(done.stdout) if done.stdout.strip() else None
