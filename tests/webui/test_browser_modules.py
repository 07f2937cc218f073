"""The front end's house rules: every view and panel module has one shape
(mount(el, ctx) returning {update, destroy}), checked in Chromium; modules stay
small, only api.js calls fetch, nothing is put on window, nothing from a CDN."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "webui" / "static"
JS = STATIC / "js"
VIEWS = JS / "views"

SHAPES = """async (paths) => {
    const out = {};
    for (const path of paths) {
        const m = await import(path);
        out[path] = {mount: typeof m.mount, arity: m.mount ? m.mount.length : null, id: m.id ?? null, title: m.title ?? null};
    }
    const {VIEWS} = await import('/static/js/views/index.js');
    out.tabs = VIEWS.map((v) => v.id);
    return out;
}"""

MOUNTED = """async () => {
    const {mount} = await import('/static/js/views/sql.js');
    const el = document.createElement('div');
    const view = mount(el, {run: {run_id: 'x'}, state: {}, set() {}});
    const filled = el.childElementCount;
    view.destroy();
    return {update: typeof view.update, destroy: typeof view.destroy, filled, after: el.childElementCount};
}"""


def test_every_view_and_panel_module_has_one_shape(live_server, page, run_id):
    panels = sorted(p for p in VIEWS.rglob("*.js") if p.parent != VIEWS or p.name not in {"index.js"})
    modules = [p for p in panels if re.search(r"^export function mount\(", p.read_text(), re.M)]
    helpers = {p.relative_to(VIEWS).as_posix() for p in panels} - {p.relative_to(VIEWS).as_posix() for p in modules}
    assert helpers == {"inspect/shared.js", "embedding/layouts.js", "embedding/purity.js"}, helpers
    page.goto(f"{live_server.url}/runs/{run_id}?view=sql")
    page.wait_for_selector("[data-testid=sql]")
    paths = [f"/static/js/views/{p.relative_to(VIEWS).as_posix()}" for p in modules]
    shapes = page.evaluate(SHAPES, paths)
    assert shapes.pop("tabs") == ["embedding", "confusion", "metrics", "inspect", "analysis", "sql"]
    for path, shape in shapes.items():
        assert shape["mount"] == "function" and shape["arity"] == 2, (path, shape)
        top = path.count("/") == 4  # /static/js/views/x.js: a tab has an id and a title
        assert (shape["id"] is not None and shape["title"] is not None) == (top and not path.endswith("selection.js")), (path, shape)
    assert page.evaluate(MOUNTED) == {"update": "function", "destroy": "function", "filled": 1, "after": 0}
    assert page.js_errors == []


def test_modules_stay_small_only_api_fetches_and_nothing_goes_on_window():
    sources = {p.relative_to(JS).as_posix(): p.read_text() for p in JS.rglob("*.js")}
    long = {name: src.count("\n") for name, src in sources.items() if src.count("\n") > 300}
    assert not long, f"JS modules over 300 lines: {long}"
    assert [name for name, src in sources.items() if re.search(r"\bfetch\(", src)] == ["api.js"]
    assert not [name for name, src in sources.items() if re.search(r"\bwindow\.\w+\s*=[^=]", src)]
    templates = (STATIC.parent / "templates").glob("*.html")
    remote = [p.name for p in templates if re.search(r"(src|href)=\"(https?:)?//", p.read_text())]
    assert not remote and not [name for name, src in sources.items() if re.search(r"import .* from '(https?:)?//", src)]
