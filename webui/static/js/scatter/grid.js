// Positions (Float32Array, x y x y ...): their bounds, a checksum, and a grid index.
//
// The grid is uniform over the points in data space, for hit-testing: the points of
// each cell lie together in one array (a counting sort, O(N) to build), so
// the point nearest the pointer is found among the few cells within reach,
// not by a scan of every point on every mousemove.

const PER_CELL = 4; // points per cell on average
const MAX_SIDE = 2048;

// FNV-1a over the positions rounded to 1e-3: cheap, and equal layouts give equal strings.
export function checksum(xy) {
  let h = 0x811c9dc5;
  for (let i = 0; i < xy.length; i++) {
    const v = Math.round(xy[i] * 1000) | 0;
    h ^= v & 0xffff; h = Math.imul(h, 0x01000193);
    h ^= v >>> 16; h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

// [x0, x1, y0, y1] of the finite positions.
export function bounds(xy) {
  let x0 = Infinity; let x1 = -Infinity; let y0 = Infinity; let y1 = -Infinity;
  for (let i = 0; i < xy.length; i += 2) {
    const x = xy[i]; const y = xy[i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return [x0, x1, y0, y1];
}

export function createGrid(xy) {
  const n = xy.length / 2;
  const [x0, x1, y0, y1] = bounds(xy);
  const side = Math.max(1, Math.min(MAX_SIDE, Math.round(Math.sqrt(n / PER_CELL))));
  const cw = Math.max(x1 - x0, 1e-9) / side; const ch = Math.max(y1 - y0, 1e-9) / side;
  const col = (x) => Math.min(side - 1, Math.max(0, Math.floor((x - x0) / cw)));
  const row = (y) => Math.min(side - 1, Math.max(0, Math.floor((y - y0) / ch)));
  const cellOf = new Uint32Array(n);
  const start = new Uint32Array(side * side + 1);
  for (let i = 0; i < n; i++) { const c = row(xy[2 * i + 1]) * side + col(xy[2 * i]); cellOf[i] = c; start[c + 1]++; }
  for (let c = 0; c < side * side; c++) start[c + 1] += start[c];
  const items = new Uint32Array(n);
  const fill = start.slice(0, side * side);
  for (let i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;

  return {
    // The point nearest (x, y) within `reach` (data units) that `skip` does not leave out, or -1.
    nearest(x, y, reach, skip) {
      if (!n || !Number.isFinite(x) || !Number.isFinite(y)) return -1;
      let best = -1; let bestD = reach * reach;
      const c0 = col(x - reach); const c1 = col(x + reach); const r0 = row(y - reach); const r1 = row(y + reach);
      for (let r = r0; r <= r1; r++) {
        for (let c = c0; c <= c1; c++) {
          const cell = r * side + c;
          for (let k = start[cell]; k < start[cell + 1]; k++) {
            const i = items[k];
            const dx = xy[2 * i] - x; const dy = xy[2 * i + 1] - y;
            const d = dx * dx + dy * dy;
            if (d < bestD && !skip(i)) { bestD = d; best = i; }
          }
        }
      }
      return best;
    },
  };
}
