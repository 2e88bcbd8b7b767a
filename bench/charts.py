"""PNG charts of the cost-growth sections (matplotlib, no display needed).

One function per chart shape: :func:`lines` (a measure against a size, one
line per series, optionally a second measure on a right-hand axis) and
:func:`bars` (seconds per case, one bar per store). The metadata chart keeps
its own (log-log, several questions per backend) in ``metadata_growth.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lines(path: Path, title: str, xlabel: str, ylabel: str, series: Mapping[str, Sequence[tuple[float, float]]],
          right: tuple[str, Mapping[str, Sequence[tuple[float, float]]]] | None = None, logx: bool = False) -> None:
    """One PNG: each series a line of (x, y) points; ``right`` = (label, series) drawn dashed on a second axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    colour = 0
    for label, points in series.items():
        ax.plot([x for x, _ in points], [y for _, y in points], "-o", color=f"C{colour}", label=label)
        colour += 1
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        other = ax.twinx()
        right_label, right_series = right
        for label, points in right_series.items():
            other.plot([x for x, _ in points], [y for _, y in points], "--s", color=f"C{colour}", label=label)
            colour += 1
        other.set_ylabel(right_label)
        other.set_ylim(bottom=0)
        more_handles, more_labels = other.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if logx:
        ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, linewidth=0.3)
    ax.legend(handles, labels, fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def bars(path: Path, title: str, ylabel: str, groups: Mapping[str, Mapping[str, float]], log: bool = False) -> None:
    """One PNG: a group of bars per case (``groups[case][bar] = value``), the same bars in every group."""
    plt = _pyplot()
    names = list(dict.fromkeys(bar for group in groups.values() for bar in group))
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [group.get(name, 0.0) for group in groups.values()], width, label=name, color=f"C{i}")
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
