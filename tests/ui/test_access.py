"""Who gets in, and the headers every answer carries."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from ui.conftest import TOKEN

PAGES = ["/", "/proj/iris", "/proj/iris/train/first", "/proj/iris/depl/iris-svc", "/models", "/model/iris-clf",
         "/model/iris-clf/version/first", "/model/iris-clf/ds/iris", "/datasets", "/chests",
         "/static/atoll.css"]


@pytest.mark.parametrize("path", PAGES + ["/proj/iris/train/first/notebook", "/proj/iris/depl/iris-svc/metrics"])
def test_a_request_without_the_token_is_refused(anonymous: TestClient, path: str) -> None:
    answer = anonymous.get(path)
    assert answer.status_code == 401
    assert "token" in answer.text and "Iris" not in answer.text


def test_a_wrong_token_is_forbidden_in_the_url_the_cookie_and_the_header(anonymous: TestClient) -> None:
    assert anonymous.get("/?token=nope").status_code == 403
    assert anonymous.get("/", headers={"Authorization": "Bearer nope"}).status_code == 403
    anonymous.cookies.set("atoll_ui_token", "nope")
    assert anonymous.get("/models").status_code == 403


def test_the_token_url_sets_a_strict_httponly_cookie_and_drops_the_token_from_the_address(
    anonymous: TestClient,
) -> None:
    answer = anonymous.get(f"/model/iris-clf?sort=name&token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/model/iris-clf?sort=name"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"atoll_ui_token={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert anonymous.get("/model/iris-clf?sort=name").status_code == 200  # the cookie now lets it in


def test_scripts_use_a_bearer_token(anonymous: TestClient) -> None:
    answer = anonymous.get("/models", headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})
    assert answer.status_code == 200
    assert [m["name"] for m in answer.json()["models"]] == ["iris-clf"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_the_security_headers(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"


def test_refusals_carry_the_security_headers_too(anonymous: TestClient) -> None:
    answer = anonymous.get("/")
    assert answer.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_a_test_prediction_from_another_origin_is_refused(client: TestClient) -> None:
    answer = client.post("/proj/iris/depl/iris-svc/predict", data={"body": "[1, 2, 3, 4]"},
                         headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403
