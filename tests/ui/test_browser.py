"""Headless Chromium against ``atoll ui`` over a real recorded flow on the local runtime.

iris as ``make demo`` does it: a model, a dataset, a build, two trainings
(two versions with metrics), a deployment of two replicas; then a third,
slow training whose notebook also prints hostile HTML, watched live. The UI
runs as ``atoll ui --port 0`` in a subprocess; everything started is stopped.
Run under ``flock /tmp/atoll-heavy.lock`` on shared machines.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from e2e.test_iris import ATOLL, EXAMPLE, ROW, Atoll, _add_notebook
from support.processes import free_port, processes_of, wait_for
from ui.browser import chromium, png_size

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

LIVE_CELLS = ["import time\nfrom IPython.display import HTML, display", *["time.sleep(1.5)"] * 6,
              ("display(HTML(\"<b id='bold'>bold output</b><script>parent.document.title='pwned'; top.pwned=1</script>"
               "<img src=x onerror=\\\"top.pwned=2\\\">\"))")]
PAGES = ["/", "/proj/iris", "/models", "/model/iris-clf", "/model/iris-clf/version/first",
         "/model/iris-clf/ds/iris", "/datasets", "/chests", "/proj/iris/train/first", "/proj/iris/depl/iris-svc"]


@dataclass
class Ui:
    atoll: Atoll
    url: str  # with ?token=

    @property
    def base(self) -> str:
        return self.url.split("/?token=")[0]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    tmp = tmp_path_factory.mktemp("ui-e2e")
    project_dir = tmp / "iris"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    _add_notebook(project_dir / "notebooks" / "live.ipynb", LIVE_CELLS)
    a = Atoll(tmp / "home", project_dir, free_port())
    server = None
    try:
        a.run("model", "new", "--name", "iris-clf", "--model-file", '{"name": "clf.pkl", "required": true}',
              "--data-file", '{"name": "measures.csv", "required": true}',
              "--data-file", '{"name": "species.csv", "required": true}')
        a.run("ds", "new", "--model", "iris-clf", "--name", "iris", "--path", "datasets/iris")
        a.run("proj", "new", "--name", "iris", "--model", "iris-clf", "--home-dir", ".")
        a.run("proj", "build", "--name", "iris", "--from-home")
        a.run("train", "new", "--proj", "iris", "--name", "first", "--nb", "notebooks/train.ipynb",
              "--dataset", "iris-clf:iris")
        a.run("train", "new", "--proj", "iris", "--name", "second", "--nb", "notebooks/train.ipynb",
              "--dataset", "iris-clf:iris", "--params", '{"C": 0.05, "kernel": "rbf"}')
        a.run("depl", "new", "--proj", "iris", "--name", "iris-svc", "--nb", "notebooks/predict.ipynb",
              "--movers", "iris-clf:first", "-n", "2")
        a.key = a.json("key", "new", "--proj", "iris", "--name", "ui-form")["key"]
        server = subprocess.Popen([str(ATOLL), "ui", "--port", "0"], cwd=a.cwd, env=a.env(), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("Atoll UI: "), line
        yield Ui(a, line.split(": ", 1)[1].strip())
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
        a.run("depl", "rm", "--proj", "iris", "--name", "iris-svc", check=False)
        a.run("isle", "router", "stop", check=False)
        leftovers = processes_of(a.home)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert leftovers == [], "processes were left running"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, ui: Ui) -> Iterator[Any]:
    """A tab that followed the token URL (so it holds the cookie) and records console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    assert tab.goto(ui.url).status == 200
    yield tab
    context.close()


def test_every_page_loads_without_console_errors(page: Any, ui: Ui) -> None:
    for path in PAGES:
        answer = page.goto(ui.base + path)
        assert answer.status == 200, path
        page.wait_for_load_state("networkidle")
        assert page.errors == [], (path, page.errors)
        assert page.locator("h1").count() == 1, path


def test_the_versions_table_shows_the_metrics_and_sorts(page: Any, ui: Ui) -> None:
    page.goto(ui.base + "/model/iris-clf")
    headers = page.locator("#versions thead th").all_inner_texts()
    assert "accuracy" in " ".join(headers) and "f1_macro" in " ".join(headers)
    accuracies = [float(t) for t in page.locator('#versions td[data-metric="accuracy"]').all_inner_texts()]
    assert len(accuracies) == 2 and all(0.2 < a <= 1 for a in accuracies)
    page.click('a[data-sort="metric:accuracy"]')
    page.wait_for_load_state()
    after = [float(t) for t in page.locator('#versions td[data-metric="accuracy"]').all_inner_texts()]
    assert after == sorted(accuracies, reverse=True)
    page.fill("#filter", '{"name": "second"}')
    page.click("form.filter button")
    page.wait_for_load_state()
    assert page.locator("#versions tbody a[href$='/version/second']").count() == 1
    assert page.locator("#versions tbody tr").count() == 1
    assert page.errors == []


def test_the_chart_and_the_lineage_graph_render(page: Any, ui: Ui) -> None:
    page.goto(ui.base + "/model/iris-clf?metric=accuracy")
    chart = page.locator("#metric-chart svg")
    assert chart.locator("rect").count() == 2
    width, height = png_size(chart.screenshot())
    assert width >= 500 and height >= 60
    page.goto(ui.base + "/model/iris-clf?a=first&b=second")
    assert page.locator("#compare-chart svg rect").count() == 4
    page.goto(ui.base + "/model/iris-clf/version/first")
    graph = page.locator("#lineage svg")
    assert graph.locator("a").count() == 4  # dataset, training, version, deployment
    assert graph.locator("line.edge").count() == 3
    width, height = png_size(graph.screenshot())
    assert width >= 700 and height >= 40
    graph.locator("a[href='/proj/iris/depl/iris-svc']").click()
    page.wait_for_load_state()
    assert page.url.endswith("/proj/iris/depl/iris-svc")
    assert page.errors == []


def test_the_live_training_view_advances_without_a_reload(page: Any, ui: Ui) -> None:
    ui.atoll.run("train", "new", "--proj", "iris", "--name", "live", "--nb", "notebooks/live.ipynb", "--detach")
    page.goto(ui.base + "/proj/iris/train/live")
    page.evaluate("window.atollMarker = 'same page'")
    seen: list[float] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        value = float(page.locator("#progress").evaluate("el => el.value"))
        if not seen or value != seen[-1]:
            seen.append(value)
        if page.locator("#live").get_attribute("data-ended") == "true":
            break
        page.wait_for_timeout(300)
    assert page.locator("#live").get_attribute("data-ended") == "true", f"the training did not end: {seen}"
    final = float(page.locator("#progress").evaluate("el => el.value"))  # the tick that ended it set both
    if final != seen[-1]:
        seen.append(final)
    assert page.locator('#live [data-field="state"]').inner_text() == "FINISHED"
    assert seen[-1] == 1.0 and len(seen) >= 3 and seen == sorted(seen), seen
    assert page.evaluate("window.atollMarker") == "same page"  # updated in place, never reloaded
    assert page.errors == []


def test_notebook_output_cannot_run_script_in_the_ui_origin(page: Any, ui: Ui) -> None:
    page.goto(ui.base + "/proj/iris/train/live")
    title = page.title()
    frame = page.frame_locator("#notebook")
    assert "bold output" in frame.locator("body").inner_text(timeout=30_000)
    page.wait_for_timeout(500)
    assert page.evaluate("document.getElementById('notebook').contentDocument") is None  # opaque origin
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.title() == title != "pwned"
    assert page.errors == []  # nothing was even attempted: no blocked script, no blocked image


def _number(text: str | None) -> float:
    """JavaScript's ``Number(text)``, enough for a counter: empty is 0, anything else not a number is NaN.

    The tests poll the page from here: ``page.wait_for_function`` with a string predicate evaluates it
    with ``eval`` as soon as it has to poll, which the UI's Content-Security-Policy (rightly) refuses."""
    try:
        return float((text or "").strip() or 0)
    except ValueError:
        return float("nan")


def test_the_test_prediction_form_answers_setosa(page: Any, ui: Ui) -> None:
    page.goto(ui.base + "/proj/iris/depl/iris-svc")
    wait_for(lambda: page.locator("#traffic").get_attribute("data-updated"), timeout=30)
    assert page.locator('[data-field="availability"]').inner_text() == "2/2"
    page.fill("#body", ROW)
    page.click("#predict button")  # no key: the router refuses, and the page says so
    page.wait_for_selector("#prediction")
    assert "HTTP 401" in page.locator("#prediction").inner_text()
    page.fill("#api_key", ui.atoll.key)
    page.click("#predict button")
    page.wait_for_selector("#prediction")
    assert "HTTP 200" in page.locator("#prediction").inner_text()
    assert ui.atoll.key not in page.content()  # sent to the router, never shown back
    assert '"setosa"' in page.locator("#prediction pre").inner_text()
    # the traffic table counts it (scraped from the replicas' /metrics)
    wait_for(lambda: _number(page.locator("#totals [data-metric=requests_total]").text_content()) >= 1, timeout=15)
    assert page.errors == []


def test_a_browser_without_the_token_is_refused(browser: Any, ui: Ui) -> None:
    context = browser.new_context()
    try:
        tab = context.new_page()
        answer = tab.goto(ui.base + "/model/iris-clf")
        assert answer.status == 401
        assert "token required" in tab.locator("body").inner_text()
        assert "accuracy" not in tab.content()
    finally:
        context.close()
