"""The Starlette app of ``atoll ui``: routes, HTML-or-JSON rendering, errors.

Every route gathers its data with :mod:`atoll.ui.pages` and answers it as
JSON when the request prefers ``application/json``, else as a page rendered
by a Jinja2 template with autoescaping on. The whole app sits behind
:class:`atoll.ui.security.TokenGate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from atoll import __version__
from atoll.api import versions as versions_api
from atoll.api.context import AtollContext
from atoll.errors import AtollError
from atoll.ui import pages, svg
from atoll.ui.notebook import executed_notebook_html
from atoll.ui.paging import Page
from atoll.ui.replica_metrics import MetricsScraper
from atoll.ui.security import SANDBOX_CSP, TokenGate

HERE = Path(__file__).parent
CHART_BARS = 50


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)


def wants_json(request: Request) -> bool:
    """``Accept: application/json`` (preferred over HTML) or ``?format=json``."""
    if request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


class UiApp:
    """The routes, bound to one :class:`AtollContext`."""

    def __init__(self, ctx: AtollContext) -> None:
        self.ctx = ctx
        self.scraper = MetricsScraper()
        self.templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
        self.templates.filters["bytes"] = _human_bytes
        self.templates.globals.update(version=__version__, query=_query)

    def _page(self, request: Request, template: str, data: dict[str, Any], status: int = 200,
              extra: dict[str, Any] | None = None) -> Response:
        if wants_json(request):
            return OrjsonResponse(data, status_code=status)
        html = self.templates.get_template(template).render(d=data, request=request, **(extra or {}))
        return HTMLResponse(html, status_code=status)

    def _error(self, request: Request, exc: AtollError) -> Response:
        return self._page(request, "error.html", {"error": str(exc)}, status=exc.http_status)

    async def _run(self, request: Request, template: str, gather: Any, *args: Any,
                   decorate: Any = None) -> Response:
        try:
            data = await run_in_threadpool(gather, self.ctx, *args)
            extra = await run_in_threadpool(decorate, data) if decorate and not wants_json(request) else None
        except AtollError as exc:
            return self._error(request, exc)
        return self._page(request, template, data, extra=extra)

    # -- pages ---------------------------------------------------------------

    async def projects(self, request: Request) -> Response:
        return await self._run(request, "projects.html", lambda ctx: pages.projects(ctx, _page_of(request)))

    async def project(self, request: Request) -> Response:
        return await self._run(request, "project.html", pages.project, request.path_params["proj"])

    async def models(self, request: Request) -> Response:
        return await self._run(request, "models.html", pages.models)

    async def model(self, request: Request) -> Response:
        q = request.query_params
        descending = q.get("order", "desc") != "asc"
        return await self._run(
            request, "model.html",
            lambda ctx: pages.model_versions(ctx, request.path_params["model"], _page_of(request),
                                             q.get("filter", ""), q.get("sort", "created_at"), descending),
            decorate=lambda data: self._model_charts(data, q.get("metric"), q.get("a"), q.get("b")),
        )

    def _model_charts(self, data: dict[str, Any], metric: str | None, a: str | None, b: str | None) -> dict[str, Any]:
        model = data["model"]["name"]
        metric = metric if metric in data["metrics"] else (data["metrics"][0] if data["metrics"] else None)
        bars = [
            svg.Bar(row["name"], float(row["metrics"][metric]), f"/model/{model}/version/{row['name']}")
            for row in data["versions"]["items"][:CHART_BARS]
            if metric and isinstance(row["metrics"].get(metric), (int, float))
        ]
        chart = svg.bar_chart(f"{metric} across versions (this page)", bars) if bars else Markup("")
        compare = Markup("")
        if a and b:
            va, vb = (versions_api.get_version(self.ctx, model, n) for n in (a, b))
            ma, mb = ((v.details or {}).get("metrics") or {} for v in (va, vb))
            numeric = {
                k: (_num(ma.get(k)), _num(mb.get(k))) for k in sorted(set(ma) | set(mb))
                if _num(ma.get(k)) is not None or _num(mb.get(k)) is not None
            }
            compare = svg.side_by_side(a, b, numeric)
        return {"chart": chart, "chart_metric": metric, "compare": compare, "a": a or "", "b": b or ""}

    async def version(self, request: Request) -> Response:
        p = request.path_params
        return await self._run(request, "version.html", pages.version, p["model"], p["version"],
                               decorate=_lineage)

    async def dataset(self, request: Request) -> Response:
        p = request.path_params
        return await self._run(request, "dataset.html", pages.dataset, p["model"], p["dataset"])

    async def datasets(self, request: Request) -> Response:
        return await self._run(request, "datasets.html", lambda ctx: pages.datasets(ctx, _page_of(request)))

    async def chests(self, request: Request) -> Response:
        return await self._run(request, "chests.html", pages.chests)

    async def training(self, request: Request) -> Response:
        p = request.path_params
        return await self._run(request, "training.html", pages.training, p["proj"], p["train"])

    async def notebook(self, request: Request) -> Response:
        p = request.path_params

        def gather(ctx: AtollContext) -> str:
            return executed_notebook_html(ctx, pages.training_record(ctx, p["proj"], p["train"]))

        try:
            html = await run_in_threadpool(gather, self.ctx)
        except AtollError as exc:
            html, status = f"<p>{Markup.escape(str(exc))}</p>", exc.http_status
        else:
            status = 200
        return HTMLResponse(html, status_code=status, headers={
            "content-security-policy": SANDBOX_CSP, "x-frame-options": "SAMEORIGIN"})

    async def deployment(self, request: Request) -> Response:
        p = request.path_params
        return await self._run(request, "deployment.html", pages.deployment, p["proj"], p["depl"])

    async def deployment_metrics(self, request: Request) -> Response:
        p = request.path_params
        try:
            data = await run_in_threadpool(pages.deployment, self.ctx, p["proj"], p["depl"])
            metrics = await run_in_threadpool(self.scraper.deployment, data["replicas"])
        except AtollError as exc:
            return OrjsonResponse({"error": str(exc)}, status_code=exc.http_status)
        return OrjsonResponse({"availability": data["deployment"]["availability"], "replicas": data["replicas"],
                               "metrics": metrics})

    async def predict(self, request: Request) -> Response:
        p = request.path_params
        if not _same_origin(request):
            return self._page(request, "error.html", {"error": "a test prediction must come from the UI's own pages"},
                              status=403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        body = form.get("body", [""])[0].encode()
        model_version = form.get("model_version", [""])[0]
        api_key = form.get("api_key", [""])[0].strip()
        try:
            answer = await run_in_threadpool(pages.predict, self.ctx, p["proj"], p["depl"], body, model_version,
                                             api_key)
            data = await run_in_threadpool(pages.deployment, self.ctx, p["proj"], p["depl"])
        except AtollError as exc:
            return self._error(request, exc)
        if wants_json(request):
            return OrjsonResponse(answer)
        data["prediction"] = answer
        data["sent"] = body.decode("utf-8", "replace")
        return self._page(request, "deployment.html", data)


def _page_of(request: Request) -> Page:
    return Page.parse(request.query_params.get("page"), request.query_params.get("size"))


def _same_origin(request: Request) -> bool:
    """No ``Origin`` (a script) or the UI's own (the cookie is SameSite=Strict too: defence in depth)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def _lineage(data: dict[str, Any]) -> dict[str, Any]:
    v = data["version"]
    columns: list[list[svg.Node]] = []
    if data["pretrained"]:
        model, _, name = data["pretrained"].partition(":")
        columns.append([svg.Node("pretrained", data["pretrained"], f"/model/{model}/version/{name}")])
    if data["dataset"]:
        ds = data["dataset"]
        columns.append([svg.Node("dataset", f"{ds['model']}:{ds['name']}", f"/model/{ds['model']}/ds/{ds['name']}")])
    if data["training"]:
        t = data["training"]
        columns.append([svg.Node("training", f"{t['proj']}:{t['name']}", f"/proj/{t['proj']}/train/{t['name']}")])
    columns.append([svg.Node("version", f"{v['model']}:{v['name']}", f"/model/{v['model']}/version/{v['name']}")])
    columns.append([svg.Node("deployment", f"{d['proj']}:{d['name']}", f"/proj/{d['proj']}/depl/{d['name']}")
                    for d in data["deployments"]])
    return {"lineage": svg.lineage(columns)}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _human_bytes(size: float | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _query(request: Request, **changes: Any) -> str:
    """The current query string with ``changes`` applied (None removes a key), for links."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def create_app(ctx: AtollContext, token: str) -> Starlette:
    """The UI for ``ctx``, refusing every request without ``token``."""
    ui = UiApp(ctx)
    routes = [
        Route("/", ui.projects),
        Route("/proj/{proj}", ui.project),
        Route("/proj/{proj}/train/{train}", ui.training),
        Route("/proj/{proj}/train/{train}/notebook", ui.notebook),
        Route("/proj/{proj}/depl/{depl}", ui.deployment),
        Route("/proj/{proj}/depl/{depl}/metrics", ui.deployment_metrics),
        Route("/proj/{proj}/depl/{depl}/predict", ui.predict, methods=["POST"]),
        Route("/models", ui.models),
        Route("/model/{model}", ui.model),
        Route("/model/{model}/version/{version}", ui.version),
        Route("/model/{model}/ds/{dataset}", ui.dataset),
        Route("/datasets", ui.datasets),
        Route("/chests", ui.chests),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.ui = ui
    return TokenGate(app, token)  # type: ignore[return-value]
