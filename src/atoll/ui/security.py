"""Access token and security headers, as one ASGI middleware around the app.

The token works like the IDE's: ``atoll ui`` prints a URL with ``?token=T``;
the first request carrying it gets the token as an ``HttpOnly``,
``SameSite=Strict`` cookie and is redirected to the same URL without it (so
the token does not stay in the address bar, history or referrers). Scripts
send ``Authorization: Bearer T`` instead. Anything else is refused: 401
without a token, 403 with a wrong one. Tokens are compared in constant time.

Every response carries a strict Content-Security-Policy (``default-src
'self'``, no framing), ``X-Content-Type-Options: nosniff`` and

executed notebook is served with ``sandbox``: see :data:`SANDBOX_CSP`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.ui.tokens import token_matches

COOKIE = "atoll_ui_token"

#: Every page: same-origin assets only, inline SVG images allowed, never framed.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-src 'self'; frame-ancestors 'none'"
)
#: The executed notebook: an opaque origin where no script runs and nothing is fetched;
#: inline styles and data: images only; framed by the UI's own pages only.
SANDBOX_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
HEADERS = {
    "content-security-policy": PAGE_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" would make Chromium send "Origin: null" on our own POSTs
    "cache-control": "no-store",
}


class TokenGate:
    """ASGI middleware: refuse requests without the token, add the security headers to every answer.

    Args:
        app: the wrapped application.
        token: the secret every request must carry (query once, then cookie; or a bearer header).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        respond = _with_headers(send)
        query_token = request.query_params.get("token")
        if query_token is not None:
            if not token_matches(query_token, self.token):
                await _refuse(request, 403, "wrong token")(scope, receive, respond)
                return
            await self._set_cookie_and_redirect(request)(scope, receive, respond)
            return
        if token_matches(request.cookies.get(COOKIE), self.token) or token_matches(_bearer(request), self.token):
            await self.app(scope, receive, respond)
            return
        supplied = request.cookies.get(COOKIE) is not None or _bearer(request) is not None
        await _refuse(request, 403 if supplied else 401, "wrong token" if supplied else "token required")(
            scope, receive, respond
        )

    def _set_cookie_and_redirect(self, request: Request) -> Response:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        return answer


def _bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer T`` (or Jupyter's ``token T``, as the readiness probe sends)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") and value.strip() else None


def _refuse(request: Request, status: int, why: str) -> Response:
    message = f"{why}: open the URL `atoll ui` printed (it carries ?token=...)"
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": message}, status_code=status)
    return PlainTextResponse(message, status_code=status)


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in HEADERS.items():
                if name not in headers:
                    headers[name] = value
        await send(message)

    return wrapped
