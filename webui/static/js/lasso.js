// Lasso and box selection on a canvas: the path the pointer drew (screen
// pixels) and which points fall inside it.

// Even-odd rule: is (x, y) inside the polygon [[x, y], ...]?
export function inside(poly, x, y) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]; const [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
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
