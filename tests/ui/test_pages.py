"""What each page shows, in HTML and in JSON, on the memory backends."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from atoll.api.context import AtollContext
from atoll.domain.records import ModelVersion
from ui.conftest import json_of


def test_projects_show_builds_trainings_and_deployments_with_states(client: TestClient) -> None:
    data = json_of(client, "/")
    (project,) = data["projects"]["items"]
    assert project["builds"] == ["latest"]
    assert project["trainings"] == {"FINISHED": 1, "RUNNING": 1}
    assert project["deployments"] == [{"name": "iris-svc", "state": "RUNNING", "n_tasks": 2}]
    html = client.get("/").text
    assert 'href="/proj/iris/depl/iris-svc"' in html and "state-running" in html


def test_the_versions_table_has_a_column_per_metric_and_sorts_by_one(client: TestClient) -> None:
    data = json_of(client, "/model/iris-clf?sort=metric:accuracy&order=desc")
    assert data["metrics"] == ["accuracy", "f1"]
    # versions without the metric go last, whatever the order
    assert [v["name"] for v in data["versions"]["items"]] == ["first", "second", "by-hand"]
    ascending = json_of(client, "/model/iris-clf?sort=metric:accuracy&order=asc")
    assert [v["name"] for v in ascending["versions"]["items"]] == ["second", "first", "by-hand"]
    html = client.get("/model/iris-clf?sort=metric:accuracy").text
    headers = re.findall(r'data-sort="([^"]+)"', html)
    assert headers == ["name", "created_at", "metric:accuracy", "metric:f1"]
    cells = re.findall(r'data-metric="accuracy"( title="[^"]*")?>([^<]*)<', html)
    assert cells == [("", "0.97"), ("", "0.91"), (' title="by-hand has no accuracy"', "")]


def test_the_filter_box_takes_the_cli_filter_language(client: TestClient) -> None:
    flt = '{"details.metrics.accuracy": {"$gt": 0.95}}'
    data = json_of(client, "/model/iris-clf", params={"filter": flt})
    assert [v["name"] for v in data["versions"]["items"]] == ["first"]
    assert data["filter"] == flt
    bad = client.get("/model/iris-clf", params={"filter": '{"a": {"$bogus": 1}}'})
    assert bad.status_code == 400 and "$bogus" in bad.text


def test_the_chart_draws_the_chosen_metric_and_two_versions_side_by_side(client: TestClient) -> None:
    html = client.get("/model/iris-clf?metric=f1").text
    chart = re.search(r'<figure id="metric-chart">(.*?)</figure>', html, re.DOTALL)
    assert chart is not None and "<svg" in chart.group(1)
    assert "f1 across versions" in chart.group(1)
    assert len(re.findall(r"<rect ", chart.group(1))) == 2  # by-hand has no f1
    compare = client.get("/model/iris-clf?a=first&b=second").text
    block = re.search(r'<figure id="compare-chart">(.*?)</figure>', compare, re.DOTALL)
    assert block is not None
    assert block.group(1).count('class="bar bar-a"') == 2 and block.group(1).count('class="bar bar-b"') == 2
    assert client.get("/model/iris-clf?a=first&b=nope").status_code == 404


def test_the_version_page_shows_files_inputs_and_a_clickable_lineage(client: TestClient) -> None:
    data = json_of(client, "/model/iris-clf/version/first")
    assert data["files"] == [{"name": "clf.pkl", "size": 5321, "blake3": "b" * 64}]
    assert data["dataset"]["name"] == "iris" and data["training"]["name"] == "first"
    assert data["parameters"] == {"C": 1.0}
    assert data["deployments"] == [{"proj": "iris", "name": "iris-svc", "state": "RUNNING"}]
    html = client.get("/model/iris-clf/version/first").text
    lineage = re.search(r'<figure id="lineage">(.*?)</figure>', html, re.DOTALL)
    assert lineage is not None
    links = re.findall(r'<a href="([^"]+)"><g class="node', lineage.group(1))
    assert links == ["/model/iris-clf/ds/iris", "/proj/iris/train/first", "/model/iris-clf/version/first",
                     "/proj/iris/depl/iris-svc"]
    assert f"blake3 <code>{'b' * 64}</code>" in html and "5.2 KB" in html
    assert f"sha256 <code>{'a' * 64}</code>" in client.get("/model/iris-clf/ds/iris").text  # recorded before BLAKE3
    second = json_of(client, "/model/iris-clf/version/second")
    assert second["pretrained"] == "iris-clf:first" and second["deployments"] == []


def test_the_training_page_shows_progress_parameters_and_the_log_tail(client: TestClient) -> None:
    data = json_of(client, "/proj/iris/train/second")
    assert data["task"]["state"] == "RUNNING" and data["task"]["progress"] == 0.4
    assert data["ended"] is False
    assert data["parameters"] == {"C": 0.5, "kernel": "rbf"}
    assert data["log_tail"][0] == "epoch 40" and data["log_tail"][-1] == "epoch 99"
    html = client.get("/proj/iris/train/second").text
    assert 'data-poll="/proj/iris/train/second"' in html and '<progress id="progress" max="1" value="0.4">' in html


def test_the_executed_notebook_is_sanitised_and_served_in_a_sandbox(client: TestClient) -> None:
    page = client.get("/proj/iris/train/first").text
    assert re.search(r'<iframe id="notebook" title="executed notebook" sandbox\s+src="/proj/iris/train/first/notebook"',
                     page)
    answer = client.get("/proj/iris/train/first/notebook")
    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "allow-scripts" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'self'" in csp and answer.headers["x-frame-options"] == "SAMEORIGIN"
    assert "<script" not in answer.text.lower()
    assert "accuracy 0.97" in answer.text
    assert not re.search(r"<img[^>]*onerror", answer.text, re.IGNORECASE)  # only as escaped text
    assert "&lt;script&gt;parent.document.title" in answer.text
    assert '<h1 id="Iris-run">Iris run' in answer.text and "<em>today</em> &lt;script&gt;top.pwned" in answer.text
    missing = client.get("/proj/iris/train/second/notebook")
    assert missing.status_code == 404 and "no executed notebook" in missing.text


def test_datasets_and_chests_never_show_a_secret(client: TestClient) -> None:
    datasets = json_of(client, "/datasets")
    assert [(d["model"], d["name"], d["files"]) for d in datasets["datasets"]["items"]] == [("iris-clf", "iris", 1)]
    chests = json_of(client, "/chests")
    assert chests == {"chests": [{"name": "db", "user": "atoll", "desc": "database",
                                  "created_at": chests["chests"][0]["created_at"]}]}
    for path in ("/chests", "/"):
        assert "s3cr3t" not in client.get(path).text
    assert "s3cr3t" not in client.get("/chests", headers={"Accept": "application/json"}).text


def test_text_from_records_is_escaped(client: TestClient) -> None:
    html = client.get("/models").text
    assert "Iris &lt;classifier&gt;" in html and "<classifier>" not in html
    version = client.get("/model/iris-clf/version/by-hand").text
    assert "<i>no metrics</i>" not in version


@pytest.mark.parametrize("path,status", [("/model/nope", 404), ("/model/Bad_Name", 400), ("/proj/iris/train/nope", 404),
                                         ("/model/iris-clf?page=0", 400), ("/model/iris-clf?sort=size", 400)])
def test_bad_addresses_answer_one_clear_error(client: TestClient, path: str, status: int) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    as_json = client.get(path, headers={"Accept": "application/json"})
    assert as_json.status_code == status and as_json.json()["error"]


def test_the_versions_table_follows_changes_in_the_store(client: TestClient, ctx: AtollContext) -> None:
    assert json_of(client, "/model/iris-clf")["versions"]["total"] == 3
    second = ctx.metadata.get(ModelVersion, "second", "iris-clf")
    second.details = {"metrics": {"accuracy": 0.99}}
    ctx.metadata.update(second)
    top = json_of(client, "/model/iris-clf?sort=metric:accuracy")["versions"]["items"][0]
    assert top == {**top, "name": "second", "metrics": {"accuracy": 0.99}}
    ctx.metadata.delete(ModelVersion, "by-hand", "iris-clf")
    assert json_of(client, "/model/iris-clf")["versions"]["total"] == 2
