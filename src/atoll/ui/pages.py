"""What each page shows, as JSON-ready dicts gathered through the Python API.

One function per page; :mod:`atoll.ui.app` renders the dict with a template
or answers it as JSON, so a script sees exactly what a person sees. Nothing
here writes except :func:`predict` (the test-prediction form), and no page
ever shows a treasure chest's secret.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from atoll._http.keys import REPLICA_SECRET_HEADER
from atoll.api import datasets as datasets_api
from atoll.api import deployments as deployments_api
from atoll.api import models as models_api
from atoll.api import projects as projects_api
from atoll.api import tchests as tchests_api
from atoll.api import trainings as trainings_api
from atoll.api import versions as versions_api
from atoll.api.context import AtollContext
from atoll.api.records import get_record, list_records
from atoll.api.replica_secrets import known_replica_secret
from atoll.domain.query import parse_filter
from atoll.domain.records import BuildVersion, Dataset, Deployment, ModelVersion, Project, Training
from atoll.errors import AtollError, BackendUnavailableError, NotFoundError
from atoll.ui.paging import Page, metric_columns, records_page, version_page

LOG_TAIL = 60
PREDICT_TIMEOUT = 30.0
MAX_PREDICT_BODY = 1_000_000


def _states(records: list[Training] | list[Deployment]) -> dict[str, int]:
    return dict(collections.Counter(r.task.state.value for r in records))


def projects(ctx: AtollContext, page: Page) -> dict[str, Any]:
    """One page of the projects, each with its builds, trainings and deployments at a glance."""
    found, total = records_page(ctx, Project, page)
    rows = []
    for project in found:
        builds = list_records(ctx, BuildVersion, project.name)
        trainings = list_records(ctx, Training, project.name)
        deployments = list_records(ctx, Deployment, project.name)
        rows.append({
            "name": project.name,
            "desc": project.desc,
            "models": project.models,
            "builds": [b.name for b in builds],
            "trainings": _states(trainings),
            "deployments": [{"name": d.name, "state": d.task.state.value, "n_tasks": d.n_tasks} for d in deployments],
        })
    return {"projects": page.listing(rows, total)}


def project(ctx: AtollContext, name: str) -> dict[str, Any]:
    """One project: its builds, trainings (state, progress) and deployments."""
    record = projects_api.get_project(ctx, name)
    return {
        "project": record.public_dump(),
        "builds": [
            {"tag": b.name, "built_from": b.built_from, "created_at": b.created_at.isoformat(),
             "code_hash": b.code_hash[:12], "git_commit": b.git_commit, "digest": b.digest}
            for b in list_records(ctx, BuildVersion, record.name)
        ],
        "trainings": [
            {"name": t.name, "notebook": t.notebook, "state": t.task.state.value, "progress": t.task.progress,
             "created_at": t.created_at.isoformat()}
            for t in _trainings(ctx, record.name)
        ],
        "deployments": [
            {"name": d.name, "state": d.task.state.value, "n_tasks": d.n_tasks,
             "movers": [v.ref for v in d.movers]}
            for d in deployments_api.list_deployments(ctx, record.name)
        ],
    }


def models(ctx: AtollContext) -> dict[str, Any]:
    """Every model with how many versions and datasets it has."""
    store = ctx.metadata
    return {"models": [
        {"name": m.name, "desc": m.desc, "versions": store.count(ModelVersion, scope=m.name),
         "model_files": [f.name for f in m.model_files], "data_files": [f.name for f in m.data_files]}
        for m in models_api.list_models(ctx)
    ]}


def model_versions(
    ctx: AtollContext,
    model: str,
    page: Page,
    filter_text: str = "",
    sort: str = "created_at",
    descending: bool = True,
) -> dict[str, Any]:
    """A model and one page of its versions (filtered, sorted and cut by the store), with the metric columns.

    ``metrics`` are the columns: the metrics found on this page (see :mod:`atoll.ui.paging`).

    Raises:
        UsageError: a malformed filter or an unknown sort key.
    """
    record = models_api.get_model(ctx, model)
    flt = parse_filter(filter_text) if filter_text.strip() else None
    rows, total = version_page(ctx, record.name, flt, page, sort, descending)
    return {
        "model": record.public_dump(),
        "filter": filter_text,
        "sort": sort,
        "order": "desc" if descending else "asc",
        "metrics": metric_columns(rows, sort),
        "versions": page.listing(rows, total),
    }


def _deployments_serving(ctx: AtollContext, version: ModelVersion) -> list[Deployment]:
    candidates = list_records(ctx, Deployment, None, {"movers.name": version.name})
    return [d for d in candidates if any(v.model == version.model and v.name == version.name for v in d.movers)]


def version(ctx: AtollContext, model: str, name: str) -> dict[str, Any]:
    """One version: files, dataset, training, parameters, pretrained parent and deployments serving it."""
    record = versions_api.get_version(ctx, model, name)
    serving = _deployments_serving(ctx, record)
    train = record.train
    return {
        "version": {
            "model": record.model, "name": record.name, "created_at": record.created_at.isoformat(),
            "details": record.details, "stored": record.stored, "compressed": record.compressed,
            "store_key": record.store_key,
        },
        "files": [f.model_dump() for f in record.files],
        "dataset": {"model": record.dataset.model, "name": record.dataset.name,
                    "files": [f.model_dump() for f in record.dataset.files]} if record.dataset else None,
        "training": {"proj": train.proj, "name": train.name, "notebook": train.notebook,
                     "state_when_published": train.task.state.value, "build": train.bvers.name} if train else None,
        "parameters": train.params if train else {},
        "pretrained": record.pretrained,
        "deployments": [{"proj": d.proj, "name": d.name, "state": d.task.state.value} for d in serving],
    }


def dataset(ctx: AtollContext, model: str, name: str) -> dict[str, Any]:
    """One dataset: its files and the versions trained on it."""
    record = datasets_api.get_dataset(ctx, model, name)
    made = versions_api.list_versions(ctx, model, dataset=name)
    return {
        "dataset": {"model": record.model, "name": record.name, "created_at": record.created_at.isoformat(),
                    "details": record.details, "compressed": record.compressed, "stored": record.stored},
        "files": [f.model_dump() for f in record.files],
        "versions": [v.name for v in made],
    }


def datasets(ctx: AtollContext, page: Page) -> dict[str, Any]:
    """One page of the datasets of every model."""
    found, total = records_page(ctx, Dataset, page)
    rows = [
        {"model": d.model, "name": d.name, "files": len(d.files), "size": sum(f.size for f in d.files),
         "created_at": d.created_at.isoformat(), "compressed": d.compressed}
        for d in found
    ]
    return {"datasets": page.listing(rows, total)}


def chests(ctx: AtollContext) -> dict[str, Any]:
    """Treasure chests: names, users and descriptions, never the secret."""
    return {"chests": [
        {"name": c.name, "user": c.user, "desc": c.desc, "created_at": c.created_at.isoformat()}
        for c in tchests_api.list_tchests(ctx)
    ]}


def _log_tail(ctx: AtollContext, record: Training) -> tuple[list[str], str]:
    """The last lines of the training's log, and why there are none when the runtime cannot say."""
    if not record.task_id:
        return [], ""
    try:
        return list(collections.deque(trainings_api.training_logs(ctx, record.name, record.proj),
                                      maxlen=LOG_TAIL)), ""
    except NotFoundError:
        return [], ""
    except AtollError as exc:  # no container manager here (the ui island), or it is down: the record still shows
        return [], str(exc)


def _trainings(ctx: AtollContext, proj: str, name: str | None = None) -> list[Training]:
    """Trainings as the API reconciles them with their tasks, or as recorded where the runtime cannot be asked."""
    try:
        if name is None:
            return trainings_api.list_trainings(ctx, proj)
        return [trainings_api.get_training(ctx, name, proj)]
    except NotFoundError:
        raise
    except AtollError:  # no container manager here (the ui island), or it is down
        if name is None:
            return list_records(ctx, Training, proj)
        return [get_record(ctx, Training, name, proj)]


def training_record(ctx: AtollContext, proj: str, name: str) -> Training:
    """One training, reconciled with its task where the runtime can be asked."""
    return _trainings(ctx, proj, name)[0]


def training(ctx: AtollContext, proj: str, name: str) -> dict[str, Any]:
    """One training: state, progress, parameters, log tail, and what it produced."""
    record = training_record(ctx, proj, name)
    produced = versions_api.list_versions(ctx, proj=record.proj, train=record.name)
    log_tail, log_note = _log_tail(ctx, record)
    return {
        "training": {
            "proj": record.proj, "name": record.name, "notebook": record.notebook,
            "created_at": record.created_at.isoformat(), "build": record.bvers.name,
            "datasets": [d.ref for d in record.datasets], "pretrained": record.pretrained,
            "env_keys": record.env_keys,
        },
        "task": record.task.model_dump(mode="json"),
        "ended": record.task.state.ended,
        "parameters": record.params,
        "log_tail": [line.rstrip("\n") for line in log_tail],
        "log_note": log_note,
        "has_notebook": bool(record.output_notebook),
        "versions": [v.ref for v in produced],
    }


def deployment(ctx: AtollContext, proj: str, name: str) -> dict[str, Any]:
    """One deployment: replicas and their health, the versions it serves, where it answers.

    Where the container manager cannot be asked (the ui island, or the runtime
    is down), the record shows with no replica, availability ``?`` and a ``note`` saying why.
    """
    record = deployments_api.get_deployment(ctx, name, proj)
    note = ""
    try:
        info = deployments_api.deployment_info(ctx, record.name, record.proj)
    except AtollError as exc:
        note = str(exc)
        info = {**record.public_dump(), "availability": f"?/{record.n_tasks}", "replicas": [],
                "router_url": ""}
    return {
        "note": note,
        "deployment": {
            "proj": info["proj"], "name": info["name"], "notebook": info["notebook"],
            "n_tasks": info["n_tasks"], "state": info["task"]["state"], "build": info["bvers"]["name"],
            "created_at": info["created_at"], "availability": info["availability"],
            "router_url": info["router_url"] or info.get("router") or "", "balanced_url": info.get("balanced_url"),
        },
        "replicas": info["replicas"],
        "movers": [{"model": v["model"], "name": v["name"]} for v in info["movers"]],
    }


def predict(ctx: AtollContext, proj: str, name: str, body: bytes, model_version: str = "",
            api_key: str = "") -> dict[str, Any]:
    """Send ``body`` to the deployment through the router (a healthy replica when the router is down).

    ``api_key`` goes to the router only (``Authorization: Bearer``), as any
    client sends it; the UI neither keeps nor shows it, and never mints one.
    A replica is sent the deployment's replica secret (which it requires),
    known to the UI when it runs where the deployment was made.

    Returns the answer's status, content type and text; a refused prediction
    (400 from the notebook, 401 from the router without a valid key) is an
    answer, not an error.

    Raises:
        BackendUnavailableError: neither the router nor a replica answered.
    """
    if len(body) > MAX_PREDICT_BODY:
        raise AtollError(f"the test body is larger than {MAX_PREDICT_BODY:,} bytes")
    info = deployments_api.deployment_info(ctx, name, proj)
    suffix = f"&model_version={urllib.parse.quote(model_version)}" if model_version else ""
    router = info["router_url"] + suffix if info["router_url"] else None
    replicas = [f"{r['url']}/predict" + (f"?{suffix[1:]}" if suffix else "")
                for r in info["replicas"] if r.get("url") and r.get("state") == "healthy"]
    failures = [f"router: {info['router']}"] if info.get("router") else []
    secret = known_replica_secret(ctx, info["proj"], info["name"]) if replicas else None
    for url in ([router] if router else []) + replicas:
        headers = {"Content-Type": "application/json"}
        if url == router:
            if api_key:
                headers["Authorization"] = f"Bearer {api_key}"
        elif secret:
            headers[REPLICA_SECRET_HEADER.decode()] = secret
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=PREDICT_TIMEOUT, context=_tls(ctx, url)) as answer:
                return _answer(url, answer.status, answer.headers.get("content-type", ""), answer.read())
        except urllib.error.HTTPError as exc:
            return _answer(url, exc.code, exc.headers.get("content-type", ""), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            failures.append(f"{url.split('?')[0]}: {getattr(exc, 'reason', exc)}")
    raise BackendUnavailableError("no answer from the router or a replica: " + "; ".join(failures or ["no replica"]))


def _tls(ctx: AtollContext, url: str) -> ssl.SSLContext | None:
    """For the router over HTTPS: the system's CAs plus its configured certificate (self-signed)."""
    if not url.startswith("https://"):
        return None
    context = ssl.create_default_context()
    if ctx.config.router.tls_cert:
        with contextlib.suppress(OSError, ssl.SSLError):
            context.load_verify_locations(cafile=ctx.config.router.tls_cert)
    return context


def _answer(url: str, status: int, content_type: str, data: bytes) -> dict[str, Any]:
    return {"url": url.split("?")[0], "status": status, "content_type": content_type,
            "text": data.decode("utf-8", "replace")}
