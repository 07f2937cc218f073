// Lasso and box selection on a canvas: the path the pointer drew (screen
// pixels) and which points fall inside it.

// The rows whose screen position (x(i), y(i), CSS pixels) falls inside the polygon [[x, y], ...]
// and that keep(i) keeps. The browser rasterises the polygon (the even-odd rule) at one bit per
// pixel, then each point is one look-up: O(N) whatever the polygon's length, a million points in
// tens of milliseconds.
export function rowsInside(poly, {width, height}, n, keep, x, y) {
  const w = Math.max(1, Math.ceil(width)); const h = Math.max(1, Math.ceil(height));
  const g = new OffscreenCanvas(w, h).getContext('2d', {willReadFrequently: true});
  g.beginPath(); g.moveTo(poly[0][0], poly[0][1]);
  for (const [px, py] of poly.slice(1)) g.lineTo(px, py);
  g.closePath(); g.fillStyle = '#000'; g.fill('evenodd');
  const mask = g.getImageData(0, 0, w, h).data;
  const rows = [];
  for (let i = 0; i < n; i++) {
    const cx = Math.floor(x(i)); const cy = Math.floor(y(i));
    if (cx >= 0 && cy >= 0 && cx < w && cy < h && mask[4 * (cy * w + cx) + 3] >= 128 && keep(i)) rows.push(i);
  }
  return rows;
}

// The polygon of a drag: the pointer's path (lasso) or the rectangle of its ends (box).
export function area(mode, path) {
  if (mode !== 'box' || path.length < 2) return path;
  const [x0, y0] = path[0]; const [x1, y1] = path[path.length - 1];
  return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
}

export function drawArea(g, poly) {
  if (poly.length < 2) return;
  g.save();
  g.setLineDash([5, 4]); g.lineWidth = 1.5; g.strokeStyle = '#1d2330'; g.fillStyle = 'rgba(53, 99, 233, 0.08)';
  g.beginPath(); g.moveTo(poly[0][0], poly[0][1]);
  for (const [x, y] of poly.slice(1)) g.lineTo(x, y);
  g.closePath(); g.fill(); g.stroke();
  g.restore();
}
