"""Every ``__all__`` in the package is sorted (STYLE.md), so a reader finds a name at a glance.

The order is isort's (ruff RUF022): CONSTANTS, then Classes, then functions,
each alphabetical. Read from the source, so no module is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import atoll

PACKAGE = Path(atoll.__file__).parent


def _isort_key(name: str) -> tuple[int, str]:
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def _declared_all(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(element) for element in node.value.elts]  # type: ignore[attr-defined]
    return None


def test_every_all_is_sorted() -> None:
    unsorted = {}
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        names = _declared_all(path)
        if names is None:
            continue
        checked += 1
        if names != sorted(names, key=_isort_key):
            unsorted[str(path.relative_to(PACKAGE))] = sorted(names, key=_isort_key)
    assert checked > 20  # the walk found the package's modules
    assert unsorted == {}, "sort these __all__ lists (expected order shown)"
