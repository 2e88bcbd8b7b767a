"""Printing results per ``--output table|json|yaml``.

``json`` and ``yaml`` print exactly one document on stdout (an array for a
list, an object for one record) so scripts can parse it; ``table`` is for
people: a Rich table for lists, a key/value table for one record.

Without ``--expand`` a list collapses embedded snapshots (a training's build,
a version's dataset...) to their names; ``info``/``new``/``update`` always show
the whole record.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from atoll.cli.state import current_state
from atoll.domain.records import Record

# Summary columns of list tables, per record kind (dotted paths into the JSON form).
DEFAULT_COLUMNS: dict[str, list[str]] = {
    "model": ["name", "desc", "model_files", "data_files", "modified_at"],
    "project": ["name", "desc", "models", "home_dir", "git_repo", "docker_repo"],
    "ds": ["model", "name", "files", "stored", "compressed", "created_at"],
    "movers": ["model", "name", "dataset", "train", "pretrained", "created_at"],
    "bvers": ["proj", "name", "built_from", "image", "code_hash", "created_at"],
    "train": ["proj", "name", "notebook", "task.state", "task.progress", "bvers", "created_at"],
    "depl": ["proj", "name", "notebook", "n_tasks", "task.state", "bvers", "created_at"],
    "tchest": ["name", "desc", "user", "modified_at"],
    "apikey": ["name", "proj", "deploy", "prefix", "expires_at", "created_at"],
}


def _is_record_dict(value: Any) -> bool:
    return isinstance(value, dict) and "name" in value and "revision" in value and "created_at" in value


def _collapse(data: dict[str, Any]) -> dict[str, Any]:
    """Replace embedded record snapshots by their names (``scope:name`` when scoped)."""

    def short(doc: dict[str, Any]) -> str:
        scope = doc.get("model") or doc.get("proj")
        return f"{scope}:{doc['name']}" if isinstance(scope, str) and scope else str(doc["name"])

    out: dict[str, Any] = {}
    for key, value in data.items():
        if _is_record_dict(value):
            out[key] = short(value)
        elif isinstance(value, list) and value and all(_is_record_dict(v) for v in value):
            out[key] = [short(v) for v in value]
        else:
            out[key] = value
    return out


def to_data(obj: Any) -> Any:
    """JSON-ready form of records, pydantic models, dataclasses, enums and containers."""
    if isinstance(obj, Record):
        return obj.public_dump()
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_data(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_data(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    return obj


def _dump(data: Any, fmt: str, pretty: bool) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")
    return json.dumps(data, indent=2 if pretty else None, ensure_ascii=False, default=str)


def _get_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _cell(value: Any) -> str:
    """Short human text of one table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        if len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":  # ISO timestamp
            return value[:19].replace("T", " ")
        return value
    if isinstance(value, dict):
        if _is_record_dict(value) or ("name" in value and len(value) > 1 and ("blake3" in value or "sha256" in value)):
            return str(value["name"])
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _console() -> Console:
    return Console(soft_wrap=False, highlight=False)


def _print_one_table(data: dict[str, Any], title: str | None) -> None:
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            text = ", ".join(value)
        elif isinstance(value, (dict, list)) and value:
            text = json.dumps(value, ensure_ascii=False, default=str)
            if len(text) > 60:
                text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        else:
            text = _cell(value)
        table.add_row(key, text)
    _console().print(table)


# Rich's Table lays out every cell (about 2 ms a row here), so a list of
# thousands of records would take seconds; past this many rows the same
# columns are aligned by hand and printed as plain lines.
RICH_TABLE_MAX_ROWS = 200


def _print_list_table(rows: list[Any], columns: Sequence[str], title: str | None) -> None:
    headers = [col.split(".")[-1] if col != "task.state" else "state" for col in columns]
    cells = [[_cell(_get_path(row, col)) for col in columns] for row in rows]
    if len(cells) > RICH_TABLE_MAX_ROWS:
        _print_aligned(headers, cells, title)
        return
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row_cells in cells:
        table.add_row(*row_cells)
    _console().print(table)


def _print_aligned(headers: list[str], cells: list[list[str]], title: str | None) -> None:
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    console = _console()
    if title:
        console.print(title, style="italic")
    console.print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), style="bold", markup=False)
    console.print("  ".join("-" * w for w in widths), markup=False)
    out = console.file
    for row_cells in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row_cells, widths)).rstrip() + "\n")
    out.flush()
    console.print(f"{len(cells)} rows", style="dim", markup=False)


def render(
    obj: Any,
    *,
    kind: str | None = None,
    columns: Sequence[str] | None = None,
    expand: bool | None = None,
    title: str | None = None,
) -> None:
    """Print ``obj`` (record, list of records, dict, dataclass...) per ``--output``.

    Args:
        obj: what to print; a list prints as an array / a table.
        kind: record kind, to pick default list columns (guessed from records).
        columns: dotted paths shown as list-table columns.
        expand: for lists, keep embedded snapshots whole (``--expand``); a
            single record is always whole. In table mode an expanded list
            prints every record in full.
        title: optional table title.
    """
    state = current_state()
    is_list = isinstance(obj, (list, tuple))
    if is_list and kind is None and obj and isinstance(obj[0], Record):
        kind = obj[0].kind
    data = to_data(obj)
    if is_list and not expand:
        data = [_collapse(d) if isinstance(d, dict) else d for d in data]

    if state.output in ("json", "yaml"):
        print(_dump(data, state.output, state.pretty), flush=True)
        return
    if not is_list:
        if isinstance(data, dict):
            _print_one_table(data, title)
        else:
            print(data if isinstance(data, str) else _dump(data, "json", True), flush=True)
        return
    if expand:
        for item in data:
            if isinstance(item, dict):
                _print_one_table(item, None)
            else:
                print(item)
            print()
        return
    if columns is None:
        if kind in DEFAULT_COLUMNS:
            columns = DEFAULT_COLUMNS[kind]
        else:
            keys: list[str] = []
            for item in data:
                for key in item if isinstance(item, dict) else []:
                    if key not in keys:
                        keys.append(key)
            columns = keys or ["value"]
    rows = [d if isinstance(d, dict) else {"value": d} for d in data]
    _print_list_table(rows, columns, title)


def render_done(message: str, **data: Any) -> None:
    """Report a finished action (``rm``, ``cancel``...).

    ``table`` prints the message; ``json``/``yaml`` print ``data`` (plus the
    message) as one object.
    """
    state = current_state()
    if state.output in ("json", "yaml"):
        print(_dump(to_data({**data, "message": message}), state.output, state.pretty), flush=True)
    else:
        print(message, flush=True)
