"""``atoll ui``: a read-only web view of what Atoll recorded, plus a test-prediction form.

A Starlette app (:mod:`atoll.ui.app`) rendering Jinja2 templates from the
Python API (:mod:`atoll.api`), never from the stores directly; every page
also answers JSON (``Accept: application/json``). Access takes a random
token (:mod:`atoll.ui.security`); charts and the lineage graph are
server-side SVG (:mod:`atoll.ui.svg`), so the static assets are one CSS and
one small script of our own and the app works offline.

This package stays light on import (the island imports it without Starlette).
"""
