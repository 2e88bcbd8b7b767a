"""The one table of the benchmarks: printed with rich, written to bench/results.md with the raw medians."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from bench.tools import NCPU, ROOT, console


@dataclass
class Row:
    """One line of the table: Atoll's figure beside its peer's, the ratio and the target."""

    measurement: str
    atoll: str
    peer: str
    ratio: float | None
    target: str
    met: bool | None  # None: no target, or not measured

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        met = {True: "yes", False: "NO", None: "-"}[self.met]
        return [self.measurement, self.atoll, self.peer, ratio, self.target, met]


@dataclass
class Report:
    """Rows, notes and raw medians collected by every section."""

    quick: bool
    load_start: str = field(default_factory=lambda: _loadavg())
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, list[str]] = field(default_factory=dict)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def raw_line(self, section: str, line: str) -> None:
        self.raw.setdefault(section, []).append(line)

    def table(self) -> Table:
        table = Table(title="Atoll benchmarks" + (" (--quick: indicative only)" if self.quick else ""))
        for name, justify in (("measurement", "left"), ("Atoll", "right"), ("peer", "right"),
                              ("ratio", "right"), ("target", "left"), ("met?", "center")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in self.rows:
            cells = row.cells()
            if row.met is False:
                cells[-1] = "[bold red]NO[/bold red]"
            elif row.met:
                cells[-1] = "[green]yes[/green]"
            table.add_row(*cells)
        return table

    def print(self) -> None:
        console.print(self.table())
        for text in self.notes:
            console.print(f"[yellow]note:[/yellow] {text}")

    def markdown(self, seconds: float) -> str:
        lines = [
            "# Atoll benchmark results",
            "",
            f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            (f"- machine: {platform.machine()}, nproc {NCPU}, {_cpu_model()}; load average (1/5/15 min) at the "
             f"start {self.load_start}, at the end {_loadavg()}"),
            f"- python {platform.python_version()} ({sys.executable}), kernel {platform.release()}",
            f"- git: {_git_head()}",
            (f"- mode: {'--quick (short runs: indicative only)' if self.quick else 'full'}; "
             f"total {seconds:.0f}s"),
            "",
            "| measurement | Atoll | peer | ratio | target | met? |",
            "|---|---:|---:|---:|---|:---:|",
        ]
        for row in self.rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {text}" for text in self.notes]
        lines += ["", "## Raw medians", ""]
        for section, items in self.raw.items():
            lines += [f"### {section}", "", "```"] + items + ["```", ""]
        return "\n".join(lines) + "\n"

    def write(self, path: Path, seconds: float) -> None:
        path.write_text(self.markdown(seconds))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _git_head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=10, check=False)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "n/a"
