"""The Embedding scatter in headless Chromium (SwiftShader, as CI): today's WebGL2 scatter against
the 2-D canvas scatter it replaced (``git show <base>:webui/static/js/scatter.js``), side by side in
one run, on the same points.

For each N it prints, per scatter: the step change (``setPositions`` of a new layout until its first
frame is drawn), a redraw of every point (a wheel zoom, until its frame), a hover (one ``mousemove`` hit test) and a lasso (the
rows inside a drawn path), then the ratios old / new. The old scatter runs only up to --old-max
points (it needs seconds per frame beyond).

    python bench/scatter.py                    # N = 100,000 and 1,000,000
    python bench/scatter.py --n 20000 --base main
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "webui" / "static"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]

PAGE = """<!doctype html><body style="margin:0"><div id="box" style="position:relative;width:1000px;height:560px"></div>
<script type="module">
import {createScatter} from '%s';
const frame = () => new Promise((r) => requestAnimationFrame(() => r(performance.now())));
window.bench = async (n, seed) => {
  let s = seed; const rand = () => ((s = (s * 1103515245 + 12345) %% 2147483648) / 2147483648);
  const layout = (spread) => { const xy = new Float32Array(2 * n); for (let i = 0; i < n; i++) {
    const g = i %% 10; xy[2 * i] = Math.cos(g) * spread + rand() * 2; xy[2 * i + 1] = Math.sin(g) * spread + rand() * 2; } return xy; };
  const a = layout(6); const b = layout(9); let rows = null;
  const box = document.getElementById('box'); box.innerHTML = '';
  const sc = createScatter(box, {onArea: (r) => { rows = r; }});
  sc.setGroups(Int32Array.from({length: n}, (_, i) => i %% 10), (g) => ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'][g]);
  sc.setPositions(a, {step: 0}); await frame(); await frame();
  const t0 = performance.now(); sc.setPositions(b, {step: 1}); await frame(); const t1 = await frame();
  await new Promise((r) => setTimeout(r, 400)); await frame(); // the tween is over
  const canvas = box.querySelector('canvas'); const r = canvas.getBoundingClientRect();
  const at = (x, y) => ({clientX: r.left + x, clientY: r.top + y, bubbles: true});
  let redraws = 0; // a wheel zoom redraws every point: from the event to the frame that shows it
  for (let k = 0; k < 5; k++) { const w0 = performance.now(); canvas.dispatchEvent(new WheelEvent('wheel', {...at(500, 280), deltaY: k %% 2 ? 100 : -100, cancelable: true})); redraws += (await frame()) - w0; }
  const h0 = performance.now();
  for (let k = 0; k < 50; k++) canvas.dispatchEvent(new MouseEvent('mousemove', at(100 + 16 * k, 100 + 7 * k)));
  const h1 = performance.now();
  sc.setDragMode('lasso'); canvas.dispatchEvent(new MouseEvent('mousedown', at(500, 100)));
  for (let k = 0; k <= 60; k++) canvas.dispatchEvent(new MouseEvent('mousemove', at(500 + 250 * Math.sin(k / 60 * 6.283), 280 - 180 * Math.cos(k / 60 * 6.283))));
  const l0 = performance.now(); canvas.dispatchEvent(new MouseEvent('mouseup', at(500, 100))); const l1 = performance.now();
  sc.destroy();
  return {step_change_ms: t1 - t0, frame_ms: redraws / 5, hover_ms: (h1 - h0) / 50, lasso_ms: l1 - l0, inside: rows ? rows.length : null};
};
window.ready = true;
</script></body>"""


def serve(page, base: str) -> None:
    """The new modules from the working tree, the old scatter and lasso from git ``base``, by route (no server)."""
    old = {name: subprocess.run(["git", "show", f"{base}:webui/static/js/{name}"], cwd=ROOT, check=True, capture_output=True).stdout
           for name in ("scatter.js", "lasso.js")}

    def handle(route):
        path = route.request.url.split("bench.local", 1)[1]
        if path.startswith("/old/"):
            return route.fulfill(body=old[path[5:]], content_type="text/javascript")
        if path.startswith("/page/"):
            return route.fulfill(body=PAGE % ("/old/scatter.js" if path.endswith("old") else "/static/js/scatter.js"), content_type="text/html")
        return route.fulfill(body=(STATIC / path[len("/static/"):]).read_bytes(), content_type="text/javascript")

    page.route("http://bench.local/**", handle)


def measure(browser, base: str, which: str, n: int) -> dict:
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    serve(page, base)
    page.goto(f"http://bench.local/page/{which}")
    page.wait_for_function("() => window.ready")
    out = page.evaluate("([n]) => window.bench(n, 7)", [n])
    out["renderer"] = page.evaluate("() => document.getElementById('box').dataset.renderer || '2d (old)'") if which == "new" else "2d (old)"
    page.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--old-max", type=int, default=100_000, help="largest N the old 2-D scatter is run at")
    ap.add_argument("--base", default="e130ed2", help="the git revision of the old scatter (e130ed2: the last 2-D canvas one)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (2 cores)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for n in args.n:
            new = measure(browser, args.base, "new", n)
            print(f"n={n} new ({new['renderer']}):", json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in new.items()}))
            if n <= args.old_max:
                old = measure(browser, args.base, "old", n)
                print(f"n={n} old:", json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in old.items()}))
                print(f"n={n} ratio old/new: " + " ".join(f"{k}={old[k] / max(new[k], 1e-3):.1f}x" for k in ("step_change_ms", "frame_ms", "hover_ms", "lasso_ms")))
        browser.close()
    print(f"load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
