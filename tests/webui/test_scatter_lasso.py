"""Lasso and box selection (static/js/lasso.js) in Chromium: the rasterised test picks exactly the
points the even-odd rule puts inside, for a self-crossing path, at 200,000 points."""

from __future__ import annotations

SAME_ROWS = """async () => {
  const {rowsInside, inside} = await import('/static/js/lasso.js');
  let s = 11; const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const n = 200000; const xs = new Float64Array(n); const ys = new Float64Array(n);
  for (let i = 0; i < n; i++) { xs[i] = rand() * 1000; ys[i] = rand() * 560; }
  const star = []; // a five-pointed star drawn in one stroke: its middle is outside by the even-odd rule
  for (let k = 0; k <= 5; k++) star.push([500 + 250 * Math.sin(k * 4 * Math.PI / 5), 280 - 250 * Math.cos(k * 4 * Math.PI / 5)]);
  const keep = (i) => i % 7 !== 0;
  const got = rowsInside(star, {width: 1000, height: 560}, n, keep, (i) => xs[i], (i) => ys[i]);
  const want = []; for (let i = 0; i < n; i++) if (keep(i) && inside(star, xs[i], ys[i])) want.push(i);
  return {got: got.length, want: want.length, same: got.length === want.length && got.every((r, k) => r === want[k]),
    centre: inside(star, 500, 280), tip: inside(star, 500, 40), kept: got.every(keep)};
}"""


def test_the_rasterised_lasso_picks_exactly_the_points_inside(live_server, page):
    page.goto(f"{live_server.url}/")
    out = page.evaluate(SAME_ROWS)
    assert out["want"] > 10_000 and out["same"], out
    assert not out["centre"] and out["tip"] and out["kept"], out  # the even-odd rule, and keep() honoured
