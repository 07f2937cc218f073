"""Who gets in: with a token set, every route (HTML pages and static files included) refuses
requests without it and answers with it, from the query string, a header or the cookie."""

from __future__ import annotations

import pytest

from tests.webui.conftest import assert_api_error

from .routes import calls, send

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
        anonymous.set_cookie("deepviz_token_80", "wrong")
        assert anonymous.open(call.url, method=call.method, **call.body).status_code == 403

        by_header = send(locked.test_client(), call, headers={"Authorization": f"token {TOKEN}"})
        assert by_header.status_code == 200, (call.url, by_header.get_data(as_text=True)[:200])
        browser = locked.test_client()
        sep = "&" if "?" in call.url else "?"
        by_query = browser.open(call.url + f"{sep}token={TOKEN}", method=call.method, **call.body)
        assert by_query.status_code in (200, 202), call.url  # let in: answered, or its job accepted (202)
        # The first good request sets the cookie: later links and static files need no token.
        assert send(browser, call).status_code == 200, call.url


def test_the_cookie_is_named_for_the_port_http_only_and_strict(locked):
    res = locked.test_client().get(f"/?token={TOKEN}")
    cookie = res.headers["Set-Cookie"]
    assert cookie.startswith("deepviz_token_80=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    # A server on another port of the same host sets its own name: its cookie is not this one's token.
    other = locked.test_client()
    other.set_cookie("deepviz_token_5001", TOKEN)
    assert other.get("/api/runs").status_code == 403
    mine = locked.test_client()
    mine.set_cookie("deepviz_token_80", TOKEN)
    assert mine.get("/api/runs").status_code == 200


def test_unknown_paths_are_refused_before_anything_else(locked):
    # Without the token a caller cannot even learn which routes exist.
    assert locked.test_client().get("/no/such/page").status_code == 403
    assert locked.test_client().get("/api/runs/nope").status_code == 403


def test_no_token_means_open(app, run_id):
    assert app.test_client().get("/api/runs").status_code == 200


# --------------------------------------------------------------------------- the server trusts only its own origin


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_a_foreign_host_is_refused_on_every_route(app, run_id):
    store = app.extensions["deepviz_db"]
    for call in calls(app, store, run_id):
        res = app.test_client().open(call.url, method=call.method, **call.body, headers={"Host": "evil.example"})
        assert_api_error(res, 421, r"does not answer for Host 'evil.example'\. Allowed: .*localhost.*--allowed-host")
    client = app.test_client()
    for host in ("localhost", "localhost:5000", "127.0.0.1:8080", "[::1]:5000", "LOCALHOST"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example:5000", "127.0.0.1.evil.example", "localhost.evil.example", "[::2]"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 421, host


def test_allowed_hosts_extend_the_list(webui_db):
    from webui import create_app

    app = create_app(webui_db, allowed_hosts=["box.lan", "::5"], test_config={"TESTING": True})
    client = app.test_client()
    assert client.get("/", headers={"Host": "box.lan:8000"}).status_code == 200
    assert client.get("/", headers={"Host": "[::5]:8000"}).status_code == 200
    assert client.get("/", headers={"Host": "other.lan"}).status_code == 421


def test_a_cross_origin_post_to_every_post_route_is_refused_before_any_work(db_copy):
    from webui import create_app

    app = create_app(db_copy, test_config={"TESTING": True})
    store = app.extensions["deepviz_db"]
    posts = [c for c in calls(app, store, store.run_ids()[-1]) if c.method == "POST"]
    assert {c.endpoint for c in posts} >= {"sql.run_sql", "analysis.compute", "embedding.projection_status", "search.search_upload"}
    before = _files(db_copy)
    foreign = [
        ({"Origin": "http://evil.example"}, r"from origin 'http://evil.example', not this server \(http://localhost\)"),
        ({"Origin": "http://localhost:5001"}, r"from origin 'http://localhost:5001'"),
        ({"Origin": "null"}, r"from origin 'null'"),
        ({"Sec-Fetch-Site": "cross-site"}, r"from another site \(Sec-Fetch-Site: cross-site\)"),
        ({"Sec-Fetch-Site": "same-site"}, r"Sec-Fetch-Site: same-site"),  # another port of localhost is same-site
    ]
    for call in posts:
        for headers, match in foreign:
            assert_api_error(app.test_client().open(call.url, method="POST", **call.body, headers=headers), 403, match)
    assert _files(db_copy) == before, "a refused request wrote to the db"
    assert app.extensions["deepviz"].jobs.active() == [] and app.extensions["deepviz"].jobs.get(("quality", store.run_ids()[-1])) is None
    # The UI's own pages still may: same origin, or no browser headers at all (curl).
    sql = next(c for c in posts if c.endpoint == "sql.run_sql")
    for headers in ({"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}, {}):
        assert app.test_client().open(sql.url, method="POST", **sql.body, headers=headers).status_code == 200


def test_every_response_refuses_framing_and_referrers(app, run_id):
    store = app.extensions["deepviz_db"]
    requests = [(c.url, c.method, c.body) for c in calls(app, store, run_id)] + [("/no/such/page", "GET", {})]
    for url, method, body in requests:
        res = app.test_client().open(url, method=method, **body)
        assert res.headers["Referrer-Policy"] == "no-referrer", url
        assert res.headers["X-Frame-Options"] == "DENY", url
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"], url


def test_a_body_over_the_cap_is_refused_from_its_length(app, run_id):
    big = app.config["MAX_CONTENT_LENGTH"] + 1
    res = app.test_client().post(f"/api/runs/{run_id}/analysis/search", data=b"x" * big, content_type="multipart/form-data; boundary=x")
    assert_api_error(res, 413, rf"request body is {big:,} bytes; at most {big - 1:,}")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_a_200_mb_upload_without_a_token_is_refused_at_once_without_buffering(locked, run_id):
    import socket
    import time

    from tests.webui.conftest import Waitress

    declared = 200 * 1024 * 1024
    with Waitress(locked) as server:
        before = _rss_mb()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            head = (f"POST /api/runs/{run_id}/analysis/search HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {declared}\r\n\r\n")
            start = time.perf_counter()
            sock.sendall(head.encode() + b"x" * (1024 * 1024))  # 1 MB of the 200: the answer must not wait for the rest
            answer = sock.recv(65536).decode("latin-1")
            elapsed = time.perf_counter() - start
        assert answer.startswith("HTTP/1.1 413"), answer[:300]
        assert elapsed < 2.0, elapsed
        assert _rss_mb() - before < 20, (before, _rss_mb())


def test_deepviz_serve_answers_for_allowed_hosts_only(webui_db):
    import os
    import re
    import subprocess
    import sys
    import urllib.error
    import urllib.request
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, "-m", "deepviz", "serve", str(webui_db), "--port", "0", "--allowed-host", "box.lan"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"at (http://\S+)", proc.stdout.readline()).group(1).rstrip("/")

        def status(host: str) -> int:
            req = urllib.request.Request(f"{url}/api/runs", headers={"Host": host})
            try:
                with urllib.request.urlopen(req, timeout=30) as res:
                    return res.status
            except urllib.error.HTTPError as exc:
                return exc.code

        port = url.rsplit(":", 1)[1]
        assert status(f"127.0.0.1:{port}") == 200 and status(f"localhost:{port}") == 200 and status(f"box.lan:{port}") == 200
        assert status(f"evil.example:{port}") == 421
    finally:
        proc.terminate()
        proc.wait(timeout=30)
