"""The executed notebook of a training, as sanitised HTML.

Two layers keep notebook output from running script in the UI's origin:
nbconvert's ``sanitize_html`` runs Markdown cells and HTML outputs through
bleach, which escapes scripts, event handlers, styles and any tag outside an
allow-list (nbconvert's own list escapes headings and paragraphs too, so
:data:`ALLOWED_TAGS` widens it with inert formatting tags), and the route serving the result
answers with ``Content-Security-Policy: sandbox`` (see
:data:`atoll.ui.security.SANDBOX_CSP`) inside an ``<iframe sandbox>``, so
even HTML that slipped through runs in an opaque origin with scripts off.
The template's own script tags (require.js and MathJax from a CDN) are
dropped: the page works offline and fetches nothing.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from atoll.api.context import AtollContext
from atoll.domain.records import Training
from atoll.errors import NotFoundError

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "span", "strong", "sub", "sup", "table", "tbody", "td",
    "th", "thead", "tr", "ul",
})


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    # Images only from data: URIs: the sandbox's CSP would block anything else anyway (img-src data:).
    if name in ("class", "id", "title"):
        return True
    if tag == "a":
        return name == "href"
    if tag == "img":
        return name in ("alt", "width", "height") or (name == "src" and value.startswith("data:image/"))
    return False

_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.IGNORECASE | re.DOTALL)


def clean_html(html: Any) -> str:
    """Escape every tag and attribute outside the allow-lists (``javascript:`` links dropped)."""
    import bleach

    text = html.decode() if isinstance(html, bytes) else str(html)
    return bleach.clean(text, tags=ALLOWED_TAGS, attributes=_allowed_attribute,
                        protocols={"http", "https", "mailto", "data"})


def render_notebook(source: str) -> str:
    """HTML of a notebook's JSON text, sanitised and without scripts."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.reads(source, as_version=4)
    exporter = HTMLExporter(template_name="lab", sanitize_html=True)
    exporter.register_filter("clean_html", clean_html)
    body, _ = exporter.from_notebook_node(notebook)
    # Output HTML was escaped by sanitize_html, so what is left of <script> is the template's own.
    return _SCRIPT.sub("", body)


def executed_notebook_html(ctx: AtollContext, training: Training) -> str:
    """The training's executed notebook, rendered.

    Raises:
        NotFoundError: the training stored no notebook (yet).
    """
    if not training.output_notebook:
        raise NotFoundError(f"training {training.ref} has no executed notebook (yet)")
    with tempfile.TemporaryDirectory(prefix="atoll-ui-") as tmp:
        local = Path(tmp) / "executed.ipynb"
        ctx.files.download(training.output_notebook, local)
        return render_notebook(local.read_text(encoding="utf-8"))
