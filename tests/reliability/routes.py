"""Every route of the app, with valid values for its path and query parameters taken from a live db.

The reliability tests walk ``app.url_map`` rather than a hand-kept list, so a
route added later is polled, fuzzed and access-checked without editing them.
A route whose path parameter has no known value fails loudly: add it here.
"""

from __future__ import annotations

import time

import io
from dataclasses import dataclass, field
from urllib.parse import urlencode

from deepviz import StatsDB

#: Query parameters some routes need to answer 200 (the rest have defaults).
EXTRA: dict[str, dict] = {
    "embedding.projection_step": {"method": "pca"},
    "embedding.projection_status": {"method": "pca"},
    "inspect.attribution": {"method": "saliency"},
    "inspect.maximize": {"target": 0, "steps": 3},
    "confusion.pair_history": {"true": 0, "pred": 1},
    "tiles.tile": {"size": 8, "rows": "0-9"},
}
SQL_BODY = {"query": "SELECT step, probe_acc FROM steps ORDER BY step"}
STATIC_FILE = "js/api.js"


@dataclass
class Call:
    method: str
    endpoint: str
    rule: str
    path: str
    query: dict = field(default_factory=dict)
    json: dict | None = None
    upload: bytes | None = None  # a multipart file field `image` (search by uploaded image)

    @property
    def body(self) -> dict:
        """Request-body keyword arguments, made fresh each time (a file stream is read once)."""
        if self.upload is not None:
            return {"data": {"image": (io.BytesIO(self.upload), "query.png")}, "content_type": "multipart/form-data"}
        return {"json": self.json}

    @property
    def url(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")


def rules(app):
    """(rule, method) for every route, HEAD and OPTIONS left out."""
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def values(store: StatsDB, run: str, step: int | None = None) -> dict:
    """Valid values for each kind of path/query parameter: a run, a committed step, a probe image, a layer."""
    steps = store.steps(run)
    step = steps[-1] if step is None else step
    probe = int(store.probes(run)["probe_id"].iloc[0])
    return {"run": run, "step": step, "probe": probe, "probe_id": probe, "filename": STATIC_FILE}


def calls(app, store: StatsDB, run: str, step: int | None = None) -> list[Call]:
    """One valid request per (route, method)."""
    known = values(store, run, step)
    out = []
    for rule, method in rules(app):
        missing = set(rule.arguments) - set(known)
        if missing:
            raise AssertionError(f"tests/reliability/routes.py knows no value for {sorted(missing)} of {rule.rule}: add one.")
        path = rule.build({k: known[k] for k in rule.arguments}, append_unknown=False)[1]
        query = {}
        if path.startswith("/api/runs/"):
            # Read by the routes that need them, ignored by the others.
            query = {"probe": known["probe"], "step": known["step"], "cls": 0, "unit": 0, "a": known["step"], "b": known["step"]} | EXTRA.get(rule.endpoint, {})
        if rule.endpoint.startswith("compare."):  # a run compared with itself
            query = {"runs": f"{run},{run}", "step_a": known["step"], "step_b": known["step"]}
        body = SQL_BODY if rule.endpoint == "sql.run_sql" else None
        upload = store.thumbnail(known["probe"], run) if rule.endpoint == "search.search_upload" else None
        out.append(Call(method, rule.endpoint, rule.rule, path, query, body, upload))
    return out


def send(client, call: Call, timeout: float = 120.0, **kwargs):
    """Send ``call`` with a Flask test client; a 202 (a background job at work: clusters, purity) is asked
    again until it is done, as the UI polls, so the answer checked is the job's."""
    deadline = time.monotonic() + timeout
    while True:
        res = client.open(call.url, method=call.method, **call.body, **kwargs)
        if res.status_code != 202:
            return res
        if time.monotonic() > deadline:
            raise AssertionError(f"{call.url} still pending after {timeout:g} s")
        time.sleep(0.05)
