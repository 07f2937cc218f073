// What the 2-D context draws over the points: trails across steps and the
// rings that mark a point (the selected one, the hovered one).

// trails: {rows, xy: [Float32Array per step], current}; colourOf(row) -> CSS colour; sx, sy: data -> screen.
export function drawTrails(g, {rows, xy, current}, colourOf, sx, sy) {
  g.lineWidth = 1.2; g.globalAlpha = 0.8;
  for (const i of rows) {
    g.strokeStyle = colourOf(i);
    g.beginPath();
    xy.forEach((pos, t) => { const x = sx(pos[2 * i]); const y = sy(pos[2 * i + 1]); if (t) g.lineTo(x, y); else g.moveTo(x, y); });
    g.stroke();
    if (xy[current]) { // a ring at the current step
      g.beginPath(); g.arc(sx(xy[current][2 * i]), sy(xy[current][2 * i + 1]), 4, 0, 2 * Math.PI);
      g.strokeStyle = '#1d2330'; g.stroke();
    }
  }
  g.globalAlpha = 1;
}

// A ring of radius r around (x, y), with a white halo so it reads on any colour.
export function drawMark(g, x, y, r, color, lineWidth) {
  g.lineWidth = lineWidth; g.strokeStyle = '#fff';
  g.beginPath(); g.arc(x, y, r + lineWidth, 0, 2 * Math.PI); g.stroke();
  g.strokeStyle = color;
  g.beginPath(); g.arc(x, y, r, 0, 2 * Math.PI); g.stroke();
}
