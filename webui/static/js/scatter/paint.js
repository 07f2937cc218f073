// What each point looks like, as arrays the GPU takes: its colour (RGB bytes),
// its state (plain, dimmed, highlighted) and the order points are drawn in.
// Points of one colour are drawn together, bigger colour groups first so the
// small ones (errors, rare classes) lie on top; dimmed points before the
// highlighted ones. The order is a counting sort: O(N) for any N.

export const PLAIN = 0; export const DIMMED = 1; export const LIT = 2;

let probe = null; // a 1x1 canvas context: the browser's own parser for CSS colours (hsl(), names)
function parse(css) {
  const hex = /^#([0-9a-f]{6})$/i.exec(css);
  if (hex) { const v = parseInt(hex[1], 16); return [v >> 16, (v >> 8) & 255, v & 255]; }
  const rgb = /^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/.exec(css);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  if (!probe) probe = document.createElement('canvas').getContext('2d');
  probe.fillStyle = '#000'; probe.fillStyle = css;
  const norm = probe.fillStyle;
  return norm === css ? [0, 0, 0] : parse(norm);
}

// groups: Int32Array (N) or shorter (then all in group 0); palette(g) -> CSS colour.
// -> {rgb: Uint8Array (3N), css: [colour of each bucket], bucket: Uint32Array (N), rank: Uint32Array (buckets)}
export function colourPoints(n, groups, palette) {
  const byGroup = new Map(); const byCss = new Map(); const css = []; const sizes = [];
  const bucket = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const g = groups.length === n ? groups[i] : 0;
    let b = byGroup.get(g);
    if (b === undefined) {
      const c = palette(g);
      b = byCss.get(c);
      if (b === undefined) { b = css.length; byCss.set(c, b); css.push(c); sizes.push(0); }
      byGroup.set(g, b);
    }
    bucket[i] = b; sizes[b]++;
  }
  const rgbOf = css.map(parse);
  const rgb = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) { const c = rgbOf[bucket[i]]; rgb[3 * i] = c[0]; rgb[3 * i + 1] = c[1]; rgb[3 * i + 2] = c[2]; }
  const rank = new Uint32Array(css.length);
  [...css.keys()].sort((a, b) => sizes[b] - sizes[a] || a - b).forEach((b, r) => { rank[b] = r; });
  return {rgb, css, bucket, rank};
}

// highlight: Uint8Array mask or null -> Uint8Array (N) of states.
export function statesOf(n, highlight) {
  const states = new Uint8Array(n);
  if (highlight) for (let i = 0; i < n; i++) states[i] = highlight[i] ? LIT : DIMMED;
  return states;
}

// The draw order: not hidden, by (highlighted last, colour rank), stable within a key.
export function drawOrder(colours, states, hidden) {
  const {bucket, rank} = colours; const n = bucket.length; const m = rank.length;
  const key = (i) => (states[i] === LIT ? m : 0) + rank[bucket[i]];
  const start = new Uint32Array(2 * m + 1);
  let shown = 0;
  for (let i = 0; i < n; i++) if (!hidden || hidden[i] !== 1) { start[key(i) + 1]++; shown++; }
  for (let k = 0; k < 2 * m; k++) start[k + 1] += start[k];
  const order = new Uint32Array(shown);
  for (let i = 0; i < n; i++) if (!hidden || hidden[i] !== 1) order[start[key(i)]++] = i;
  return order;
}
