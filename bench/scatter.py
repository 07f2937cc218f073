"""The Embedding scatter in headless Chromium (SwiftShader, as CI): the working tree's scatter against
the one at git ``--base`` (``git show <base>:webui/static/js/...``; main by default), side by side in
one run, on the same points.

For each N it prints, per scatter: the step change (the median of STEP_CHANGES changes between two
layouts, each made as the Embedding view makes it: the same groups again, the new positions, no
selection, no highlight, nothing hidden; from those calls until the second animation frame after
them, so the first frame at the new step has been drawn; and, where the scatter measures it
(User Timing 'scatter:draw'), how long that frame's drawing of the points took), a redraw of every point (a wheel zoom,
until its frame), a hover (one ``mousemove`` hit test, the first one after a step change apart) and
a lasso (the rows inside a drawn path), then the ratios old / new. The old scatter runs only up to
--old-max points (the 2-D canvas one, e130ed2, needs seconds per frame beyond 100,000).

    python bench/scatter.py                    # N = 10,000, 100,000 and 1,000,000, against main, 2 rounds
    python bench/scatter.py --n 100000 --base e130ed2 --old-max 100000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "webui" / "static"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]

STEP_CHANGES = 7
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

PAGE = """<!doctype html><body style="margin:0"><div id="box" style="position:relative;width:1000px;height:560px"></div>
<script type="module">
import {createScatter} from '%s';
const frame = () => new Promise((r) => requestAnimationFrame(() => r(performance.now())));
const rest = async () => { await new Promise((r) => setTimeout(r, 400)); await frame(); }; // a tween is over
window.bench = async (n, seed, steps, colours) => {
  let s = seed; const rand = () => ((s = (s * 1103515245 + 12345) %% 2147483648) / 2147483648);
  const layout = (spread) => { const xy = new Float32Array(2 * n); for (let i = 0; i < n; i++) {
    const g = i %% 10; xy[2 * i] = Math.cos(g) * spread + rand() * 2; xy[2 * i + 1] = Math.sin(g) * spread + rand() * 2; } return xy; };
  const a = layout(6); const b = layout(9); let rows = null;
  const groups = Int32Array.from({length: n}, (_, i) => i %% 10); const palette = (g) => colours[g];
  const box = document.getElementById('box'); box.innerHTML = '';
  const sc = createScatter(box, {onArea: (r) => { rows = r; }});
  sc.setGroups(groups, palette); sc.setPositions(a, {step: 0}); await frame(); await frame(); await rest();
  const canvas = box.querySelector('canvas'); const r = canvas.getBoundingClientRect();
  const at = (x, y) => ({clientX: r.left + x, clientY: r.top + y, bubbles: true});
  const changes = []; const draws = []; let firstHover = 0;
  for (let k = 1; k <= steps; k++) { // a step as views/embedding.js shows it
    const t0 = performance.now();
    sc.setGroups(Int32Array.from(groups), palette); sc.setPositions(k %% 2 ? b : a, {step: k});
    sc.setSelected(null); sc.setHighlight(null); sc.setHidden(null);
    await frame(); const d = performance.getEntriesByName('scatter:draw').at(-1); // its first frame's drawing (new only)
    if (d) draws.push(d.duration);
    changes.push((await frame()) - t0);
    await rest();
    const f0 = performance.now(); canvas.dispatchEvent(new MouseEvent('mousemove', at(500, 280))); firstHover += performance.now() - f0;
  }
  let redraws = 0; // a wheel zoom redraws every point: from the event to the frame that shows it
  for (let k = 0; k < 5; k++) { const w0 = performance.now(); canvas.dispatchEvent(new WheelEvent('wheel', {...at(500, 280), deltaY: k %% 2 ? 100 : -100, cancelable: true})); redraws += (await frame()) - w0; }
  const h0 = performance.now();
  for (let k = 0; k < 50; k++) canvas.dispatchEvent(new MouseEvent('mousemove', at(100 + 16 * k, 100 + 7 * k)));
  const h1 = performance.now();
  sc.setDragMode('lasso'); canvas.dispatchEvent(new MouseEvent('mousedown', at(500, 100)));
  for (let k = 0; k <= 60; k++) canvas.dispatchEvent(new MouseEvent('mousemove', at(500 + 250 * Math.sin(k / 60 * 6.283), 280 - 180 * Math.cos(k / 60 * 6.283))));
  const l0 = performance.now(); canvas.dispatchEvent(new MouseEvent('mouseup', at(500, 100))); const l1 = performance.now();
  sc.destroy();
  const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
  return {step_change_ms: median(changes), step_changes: changes.map(Math.round), draw_ms: draws.length ? median(draws) : null, frame_ms: redraws / 5,
    first_hover_ms: firstHover / steps, hover_ms: (h1 - h0) / 50, lasso_ms: l1 - l0, inside: rows ? rows.length : null};
};
window.ready = true;
</script></body>"""


def serve(page, base: str) -> None:
    """The modules under /static/ from the working tree, under /old/ from git ``base``, by route (no server)."""

    def handle(route):
        path = route.request.url.split("bench.local", 1)[1]
        if path.startswith("/page/"):
            return route.fulfill(body=PAGE % ("/old/js/scatter.js" if path.endswith("old") else "/static/js/scatter.js"), content_type="text/html")
        if path.startswith("/old/"):
            body = subprocess.run(["git", "show", f"{base}:webui/static/{path[5:]}"], cwd=ROOT, check=True, capture_output=True).stdout
        else:
            body = (STATIC / path[len("/static/"):]).read_bytes()
        return route.fulfill(body=body, content_type="text/javascript")

    page.route("http://bench.local/**", handle)


def measure(browser, base: str, which: str, n: int) -> dict:
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    serve(page, base)
    page.goto(f"http://bench.local/page/{which}")
    page.wait_for_function("() => window.ready")
    out = page.evaluate("([n, steps, colours]) => window.bench(n, 7, steps, colours)", [n, STEP_CHANGES, PALETTE])
    out["renderer"] = page.evaluate("() => document.getElementById('box').dataset.renderer || '2d (e130ed2)'")
    page.close()
    return out


def pooled(runs: list[dict]) -> dict:
    """Several measurements of one scatter as one: the median of all their step changes, the mean of the rest."""
    steps = sorted(t for r in runs for t in r["step_changes"])
    out = {k: statistics.fmean(r[k] for r in runs) for k in ("frame_ms", "first_hover_ms", "hover_ms", "lasso_ms")}
    draws = [r["draw_ms"] for r in runs if r["draw_ms"] is not None]
    return {"step_change_ms": statistics.median(steps), "step_change_p90_ms": steps[int(0.9 * (len(steps) - 1))],
            "draw_ms": statistics.median(draws) if draws else None, **out}


def show(out: dict) -> str:
    return json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--old-max", type=int, default=1_000_000, help="largest N the old scatter is run at")
    ap.add_argument("--rounds", type=int, default=2, help="times each scatter is measured, old and new alternating")
    ap.add_argument("--base", default="main", help="the git revision of the old scatter (e130ed2: the last 2-D canvas one)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    base = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    print(f"old: {args.base} ({base}); new: the working tree; {STEP_CHANGES} step changes each")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (2 cores)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for n in args.n:
            which = ("old", "new") if n <= args.old_max else ("new",)
            runs = {w: [] for w in which}
            for _ in range(args.rounds):  # old and new alternate: the shared cores' load falls on both alike
                for w in which:
                    runs[w].append(measure(browser, base, w, n))
                    print(f"n={n} {w} ({runs[w][-1]['renderer']}):", show(runs[w][-1]), flush=True)
            new = pooled(runs["new"])
            print(f"n={n} new, {args.rounds} rounds:", show(new))
            if n <= args.old_max:
                old = pooled(runs["old"])
                print(f"n={n} old, {args.rounds} rounds:", show(old))
                keys = ("step_change_ms", "frame_ms", "first_hover_ms", "hover_ms", "lasso_ms")
                print(f"n={n} ratio old/new: " + " ".join(f"{k}={old[k] / max(new[k], 1e-3):.1f}x" for k in keys))
        browser.close()
    print(f"load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
