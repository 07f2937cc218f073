"""Bad input on every route: malformed, missing, huge and wrong-typed parameters never give a 5xx,
and every error has the one JSON shape.

Hypothesis builds requests for each rule of ``app.url_map``: each path
parameter is either valid (the run, a committed step, a probe image of the
trained run) or arbitrary text; query parameters are the valid ones with some
replaced by hostile values or dropped, plus every parameter name any route
reads; POST bodies are valid, arbitrary JSON or not JSON at all. The db is
healthy, so no 500 is legitimate.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .routes import calls

WEBUI = Path(__file__).resolve().parents[2] / "webui"

# Every query parameter any route reads, found in the source so new ones are fuzzed too.
_READ = re.compile(r"""(?:get_int|get_float|get_choice|get_str|_bounded_int|step_param\(rid,|request\.args\.get\(|request\.args\[)\(?\s*["'](\w+)["']""")
PARAM_NAMES = sorted({m for f in WEBUI.glob("*.py") for m in _READ.findall(f.read_text())} | {"step", "layer", "probe", "token"})

HOSTILE = st.sampled_from(
    [
        "", " ", "-1", "0", "-0", "1.5", "1e309", "-1e309", "nan", "NaN", "inf", "-inf", "true", "null", "[]", "{}",
        "9" * 400, "-" + "9" * 40, "a" * 5000, "../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f",
        "%252e%252e%252f", "/etc/passwd", "\x00", "é✓😀", "1;DROP TABLE steps", "' OR 1=1 --", "<script>", "0x10", "1_000",
    ]
)
VALUE = st.one_of(
    HOSTILE,
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def check_shape(res, what: str) -> None:
    assert res.status_code < 500, f"{what} -> {res.status_code}: {res.get_data(as_text=True)[:300]}"
    if res.status_code == 404 and res.mimetype == "text/html" and what.split()[1].startswith("/runs/"):
        # The run page answers people with an HTML page that links back to the runs list.
        assert b"Not found" in res.data and b'href="/"' in res.data, what
        return
    if res.status_code >= 400:
        body = res.get_json(silent=True)
        assert isinstance(body, dict), f"{what} -> {res.status_code}, not the JSON error shape: {res.get_data(as_text=True)[:200]}"
        assert body.get("ok") is False and body.get("status") == res.status_code and isinstance(body.get("error"), str), (what, body)


def fuzz_route(client, call, examples: int) -> int:
    """Send ``examples`` generated variations of ``call``; returns how many were sent."""
    sent = []
    segments = re.findall(r"<(?:[^:>]+:)?([^>]+)>", call.rule)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data):
        path = call.rule
        valid_parts = dict(zip(segments, [None] * len(segments)))
        for name in segments:
            if name == "filename":
                value = data.draw(st.one_of(st.just("js/api.js"), VALUE), label=name)
            else:
                value = data.draw(st.one_of(st.none(), VALUE), label=name)
            valid_parts[name] = value
        for name, value in valid_parts.items():
            pattern = re.compile(r"<(?:[^:>]+:)?" + re.escape(name) + ">")
            if value is None:
                real = _segment_of(call, name)
                path = pattern.sub(lambda _: real, path)
            else:
                path = pattern.sub(lambda _: quote(value, safe="") or "%20", path)
        query = dict(call.query)
        for name in data.draw(st.lists(st.sampled_from(sorted(set(PARAM_NAMES) | set(query))), max_size=4, unique=True), label="params"):
            if data.draw(st.booleans(), label=f"drop {name}"):
                query.pop(name, None)
            else:
                query[name] = data.draw(VALUE, label=name)
        url = path + ("?" + urlencode(query) if query else "")
        kwargs = {}
        if call.method == "POST":
            kind = data.draw(st.sampled_from(["valid", "json", "text", "none"]), label="body")
            if kind == "valid" and call.json is not None:
                kwargs["json"] = {k: data.draw(st.one_of(st.just(v), JSON, VALUE), label=k) for k, v in call.json.items()}
            elif kind == "json":
                kwargs["json"] = data.draw(JSON, label="json")
            elif kind == "text":
                kwargs["data"] = data.draw(st.one_of(VALUE, st.binary(max_size=100)), label="data")
        res = client.open(url, method=call.method, **kwargs)
        sent.append(url)
        check_shape(res, f"{call.method} {url}")

    one()
    return len(sent)


def _segment_of(call, name: str) -> str:
    """The valid value of path parameter ``name`` in ``call.path`` (both have the same segments)."""
    rule_parts, path_parts = call.rule.split("/"), call.path.split("/")
    for r, p in zip(rule_parts, path_parts):
        if re.fullmatch(r"<(?:[^:>]+:)?" + re.escape(name) + ">", r):
            return p
    if name == "filename":
        return "js/api.js"
    raise AssertionError(f"no segment {name} in {call.rule}")


def _fuzz_all(app, client, run_id, examples: int):
    store = app.extensions["deepviz_db"]
    total, routes = 0, calls(app, store, run_id)
    for call in routes:
        total += fuzz_route(client, call, examples)
    print(f"fuzz: {total} requests over {len(routes)} routes, no 5xx")
    return total


def test_fuzz_every_route(app, client, run_id):
    # 40 requests per route keep this near 15 s; the slow test below sends 5x more.
    assert _fuzz_all(app, client, run_id, 40) >= 40 * 30


@pytest.mark.slow
def test_fuzz_every_route_at_length(app, client, run_id):
    assert _fuzz_all(app, client, run_id, 200) >= 200 * 30


@pytest.mark.slow
def test_hostile_values_of_every_query_parameter(app, client, run_id):
    """Each known parameter with each fixed hostile value, on every API route: a deterministic sweep."""
    store = app.extensions["deepviz_db"]
    sent = 0
    hostile = ["", "-1", "1e309", "nan", "9" * 400, "a" * 5000, "../../etc/passwd", "\x00", "é✓😀"]
    for call in calls(app, store, run_id):
        if not call.path.startswith("/api/"):
            continue
        for name in PARAM_NAMES:
            for value in hostile:
                url = call.path + "?" + urlencode(call.query | {name: value})
                check_shape(client.open(url, method=call.method, **call.body), f"{call.method} {url}")
                sent += 1
    assert sent > 1000
    print(f"hostile sweep: {sent} requests, no 5xx")
