"""``noronha.tools.publish``: ``Publisher()(...)`` with Noronha's arguments (:mod:`atoll.toolkit.publisher`).

``src_path``: files elsewhere than ``tmp_path()`` are copied there first and
published from there (with whatever else the notebook left in ``tmp_path()``).
``uses_dataset=False``: no dataset snapshot. ``uses_pretrained`` /
``pretrained_with``: Atoll's ``pretrained`` (the only staged version when not
named). Returns Atoll's version record (a dict).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from atoll.errors import NotFoundError, UsageError
from atoll.toolkit.paths import staged_versions, tmp_path
from atoll.toolkit.publisher import Publisher as _Publisher


class Publisher(_Publisher):
    """Atoll's publisher, called the way Noronha's was."""

    # Adapter until atoll.toolkit's Publisher takes src_path and uses_dataset itself (issue 13 item 4);
    # then only the pretrained mapping is left here.
    _uses_dataset = True

    def __call__(  # type: ignore[override]
        self,
        src_path: str | None = None,
        details: dict[str, Any] | None = None,
        version_name: str | None = None,
        model_name: str | None = None,
        uses_dataset: bool = True,
        dataset_name: str | None = None,
        uses_pretrained: bool = False,
        pretrained_with: str | None = None,
        lightweight: bool | None = None,
        **atoll_kwargs: Any,
    ) -> dict[str, Any]:
        if src_path is not None:
            _gather(Path(src_path))
        if lightweight is not None:
            self.lightweight = lightweight
        self._uses_dataset = uses_dataset
        pretrained = _pretrained(pretrained_with) if uses_pretrained else None
        return super().__call__(details=details, version_name=version_name, model_name=model_name,
                                dataset_name=dataset_name, pretrained=pretrained, **atoll_kwargs)

    def _dataset(self, metadata: Any, model: str, dataset_name: str | None, dataset_cls: Any) -> Any:  # type: ignore[override]
        if not self._uses_dataset:
            return None
        return super()._dataset(metadata, model, dataset_name, dataset_cls)


def _gather(source: Path) -> None:
    """Copy ``source`` (a file or a directory's files) into ``tmp_path()`` unless it is that directory."""
    target = Path(tmp_path())
    if not source.exists():
        raise NotFoundError(f"src_path {source} does not exist")
    if source.resolve() == target.resolve():
        return
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target / source.name)


def _pretrained(reference: str | None) -> str:
    """``MODEL:VERSION`` as Noronha's ``pretrained_with`` names it, else the only staged version."""
    model, _, version = (reference or ":").partition(":")
    if model and version:
        return f"{model}:{version}"
    found = [(m, v) for m, v in staged_versions() if (not model or m == model) and (not version or v == version)]
    if len(found) != 1:
        staged = ", ".join(f"{m}:{v}" for m, v in staged_versions()) or "none"
        raise UsageError(f"uses_pretrained: name one staged version as pretrained_with=MODEL:VERSION (staged: {staged})")
    return f"{found[0][0]}:{found[0][1]}"


__all__ = ["Publisher"]
