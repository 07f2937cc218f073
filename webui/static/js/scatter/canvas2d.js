// The points on a 2-D canvas, where WebGL2 is not available: the same colours,
// states and draw order as the WebGL path (./paint.js), one path per run of
// points that share a colour and a state. Fine up to tens of thousands of points.

import {DIMMED, LIT} from './paint.js';

// at(i) -> [x, y] on screen (CSS pixels).
export function drawPoints2d(g, {order, colours, states, at, radius, alpha, dim}) {
  const round = order.length <= 4000;
  let k = 0;
  while (k < order.length) {
    const first = order[k]; const b = colours.bucket[first]; const s = states[first];
    const lit = s === LIT; const r = lit ? radius * 1.4 : radius;
    g.globalAlpha = s === DIMMED ? dim : alpha;
    g.fillStyle = colours.css[b];
    g.beginPath();
    for (; k < order.length && colours.bucket[order[k]] === b && states[order[k]] === s; k++) {
      const [x, y] = at(order[k]);
      if (round) { g.moveTo(x + r, y); g.arc(x, y, r, 0, 2 * Math.PI); } else g.rect(x - r, y - r, 2 * r, 2 * r);
    }
    g.fill();
    if (lit) { g.lineWidth = 1; g.strokeStyle = 'rgba(20, 20, 20, 0.8)'; g.stroke(); }
  }
  g.globalAlpha = 1;
}
