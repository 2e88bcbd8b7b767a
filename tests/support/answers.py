"""Checks on what a prediction server answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any


def stamped(metadata: dict[str, Any], before: datetime) -> dict[str, Any]:
    """``metadata`` without its ``datetime``, checked to be ISO-8601 UTC, from ``before`` until now."""
    stamp = datetime.fromisoformat(metadata.pop("datetime"))
    assert stamp.utcoffset() == timedelta(0)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp <= datetime.now(timezone.utc)
    return metadata
