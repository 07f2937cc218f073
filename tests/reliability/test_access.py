"""Who gets in: with a token set, every route (HTML pages and static files included) refuses
requests without it and answers with it, from the query string, a header or the cookie."""

from __future__ import annotations

import pytest

from .routes import calls

TOKEN = "s3cret-token"


@pytest.fixture()
def locked(webui_db):
    from webui import create_app

    return create_app(webui_db, token=TOKEN, test_config={"TESTING": True})


def test_every_route_refuses_without_the_token_and_works_with_it(locked, run_id):
    store = locked.extensions["deepviz_db"]
    routes = calls(locked, store, run_id)
    assert any(c.path.startswith("/static/") for c in routes) and any(c.path == "/" for c in routes)
    for call in routes:
        anonymous = locked.test_client()
        for headers, query in (({}, ""), ({"Authorization": "token wrong"}, ""), ({}, "token=wrong"), ({"Authorization": "Bearer " + TOKEN}, "")):
            url = call.url + (("&" if "?" in call.url else "?") + query if query else "")
            res = anonymous.open(url, method=call.method, **call.body, headers=headers)
            assert res.status_code == 403, (call.url, headers, query, res.status_code)
            body = res.get_json()
            assert body["ok"] is False and "access token is required" in body["error"]
        anonymous.set_cookie("deepviz_token", "wrong")
        assert anonymous.open(call.url, method=call.method, **call.body).status_code == 403

        by_header = locked.test_client().open(call.url, method=call.method, **call.body, headers={"Authorization": f"token {TOKEN}"})
        assert by_header.status_code == 200, (call.url, by_header.get_data(as_text=True)[:200])
        browser = locked.test_client()
        sep = "&" if "?" in call.url else "?"
        by_query = browser.open(call.url + f"{sep}token={TOKEN}", method=call.method, **call.body)
        assert by_query.status_code == 200, call.url
        # The first good request sets the cookie: later links and static files need no token.
        assert browser.open(call.url, method=call.method, **call.body).status_code == 200, call.url


def test_the_cookie_is_http_only_and_strict(locked):
    res = locked.test_client().get(f"/?token={TOKEN}")
    cookie = res.headers["Set-Cookie"]
    assert "deepviz_token=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_unknown_paths_are_refused_before_anything_else(locked):
    # Without the token a caller cannot even learn which routes exist.
    assert locked.test_client().get("/no/such/page").status_code == 403
    assert locked.test_client().get("/api/runs/nope").status_code == 403


def test_no_token_means_open(app, run_id):
    assert app.test_client().get("/api/runs").status_code == 200
