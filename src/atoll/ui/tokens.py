"""The UI's access token (standard library only: the island imports it without Starlette)."""

from __future__ import annotations

import hmac
import secrets


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_matches(supplied: str | None, token: str) -> bool:
    """Constant-time comparison; a missing value never matches."""
    return supplied is not None and hmac.compare_digest(supplied.encode(), token.encode())
