"""``atoll check [--repair]``: do the metadata store and the file store agree? (like ``git fsck``)"""

from __future__ import annotations

import typer

from atoll.api import check as api
from atoll.cli.common import confirm, get_context, get_state, render
from atoll.errors import AtollError

COLUMNS = ("problem", "what", "detail", "repair", "repaired")

app = typer.Typer(help="Check that records and stored files agree; repair what is safe.")


@app.callback(invoke_without_command=True)
def check(
    ctx: typer.Context,
    repair: bool = typer.Option(False, "--repair", help="Repair what is safe (asks first; -s answers yes)."),
    quick: bool = typer.Option(False, "--quick", help="Check that stored files exist, not their checksums."),
) -> None:
    """Report damaged records, records without files, files without records, checksum mismatches
    and an empty metadata store beside a full file store; exit 1 while any remains."""
    atoll = get_context(ctx)
    if repair:
        findings = api.check_and_repair(atoll, confirm, checksums=not quick)
    else:
        findings = api.check(atoll, checksums=not quick)
    rows = [
        {"problem": f.problem, "what": f.what, "detail": f.detail, "repair": f.repair, "repaired": f.repaired}
        for f in findings
    ]
    if rows or get_state(ctx).output != "table":
        render(rows, columns=list(COLUMNS))
    else:
        print("no problems found: every record has its files and every stored file its record")
    left = [f for f in findings if not f.repaired]
    if left:
        hint = " (run `atoll check --repair` for the repairable ones)" if not repair and any(
            f.repair for f in left) else ""
        raise AtollError(f"{len(left)} problem(s) found{hint}")
