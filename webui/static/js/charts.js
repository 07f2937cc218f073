// Small SVG charts shared by the views: line charts over steps and heatmaps.
// No library: a few dozen points and a class x class grid need none.
// Also the thumbnail gallery the panels share.

import {h, clear, showError} from './dom.js';
import {thumbURL} from './api.js';

const NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (v !== null && v !== undefined && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  return [lo, hi];
}

// Round tick values for [lo, hi] (about n of them).
export function ticks(lo, hi, n = 4) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

// The x scale of a line chart: [map(x) -> 0..1 of the width, ticks(n), kind]. Steps of the log schedule (gaps that
// grow along the run: 0, 1, 2, 4, 8, ..., then every epoch) get a log axis, log10(1 + x), so early training is not a
// crowd at the left edge; evenly spaced steps a linear one. scale: 'auto' (default), 'linear' or 'log'.
export function xScale(xs, scale = 'auto') {
  const [x0, x1] = extent(xs);
  const kind = scale === 'auto' ? (growingGaps(xs) ? 'log' : 'linear') : scale;
  if (kind !== 'log' || x0 < 0) {
    return {kind: 'linear', at: (x) => (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)), ticks: (n) => ticks(x0, x1, n)};
  }
  const t = (x) => Math.log10(1 + x);
  const at = (x) => (x1 === x0 ? 0.5 : (t(x) - t(x0)) / (t(x1) - t(x0)));
  return {kind, at, ticks: (n) => logTicks(x0, x1, n)};
}

// The gaps between consecutive xs grow: the last third's median gap is 8x or more the first third's.
function growingGaps(xs) {
  const v = xs.filter(Number.isFinite).slice().sort((a, b) => a - b);
  const gaps = v.slice(1).map((x, i) => x - v[i]).filter((g) => g > 0);
  if (v.length < 5 || v[0] < 0 || gaps.length < 4) return false;
  const third = Math.ceil(gaps.length / 3);
  const median = (a) => a.slice().sort((p, q) => p - q)[Math.floor(a.length / 2)];
  return median(gaps.slice(-third)) >= 8 * median(gaps.slice(0, third));
}

// Ticks of a log axis within [lo, hi]: 0 when in range, then 1, 2, 5, 10, 20, 50... thinned to powers of 10 past n.
function logTicks(lo, hi, n) {
  const out = lo <= 0 ? [0] : [];
  for (let mag = 1; mag <= hi; mag *= 10) for (const m of [1, 2, 5]) if (m * mag >= lo && m * mag <= hi) out.push(m * mag);
  return out.length <= n + 1 ? out : out.filter((v) => v === 0 || Math.log10(v) % 1 === 0);
}

function short(v) {
  const a = Math.abs(v);
  if (a >= 1000) return `${(v / 1000).toFixed(a >= 10000 ? 0 : 1)}k`;
  if (a >= 10 || v === 0) return String(Math.round(v));
  return String(+v.toFixed(a >= 1 ? 1 : 2));
}

// Where each legend entry goes: [{s, x, row}], from x0 on the first row, wrapping within width.
function legendEntries(items, x0, width) {
  const out = [];
  let x = x0; let row = 0;
  for (const s of items) {
    const w = 22 + 6.2 * s.name.length;
    if (x + w - 7 > width && x > 4) { row += 1; x = 4; }
    out.push({s, x, row});
    x += w;
  }
  return out;
}

// A line chart. series: [{name, values (aligned with xs, null = gap), color, width, dash, dots, connect (draw across gaps)}].
// options: {xs, xScale ('auto' | 'linear' | 'log'), width, height, marker (an x to mark), yDomain [lo, hi], yLabel, legend,
//           onClick(x) (the nearest x), xFormat, yFormat, testid}.
export function lineChart(series, options) {
  const {xs, width = 420, height = 160, marker, yLabel, legend = true, onClick, testid} = options;
  const xFormat = options.xFormat || short;
  const yFormat = options.yFormat || short;
  const showLegend = legend && series.filter((q) => q.legend !== false).length > 1;
  // The axis label and the legend share the rows above the plot, off the data; the legend wraps to fit.
  const entries = showLegend ? legendEntries(series.filter((q) => q.legend !== false), yLabel ? 14 + 6.5 * yLabel.length : 38, width) : [];
  const rowsAbove = entries.length ? entries[entries.length - 1].row + 1 : 1;
  const m = {l: 38, r: 10, t: yLabel || showLegend ? 8 + 14 * rowsAbove : 8, b: 20};
  const w = width - m.l - m.r, hgt = height - m.t - m.b;
  const scale = xScale(xs, options.xScale);
  let [y0, y1] = options.yDomain || extent(series.flatMap((s) => s.values));
  if (!options.yDomain) {
    // widen to round ticks so the lowest and highest values sit on a grid line
    const t = ticks(y0, y1, 4);
    const stepY = t.length > 1 ? t[1] - t[0] : 0;
    if (stepY > 0) { y0 = Math.floor(y0 / stepY + 1e-9) * stepY; y1 = Math.ceil(y1 / stepY - 1e-9) * stepY; }
  }
  const X = (x) => m.l + scale.at(x) * w;
  const Y = (y) => m.t + hgt - ((y - y0) / (y1 - y0)) * hgt;
  const root = svg('svg', {class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-testid': testid});
  const grid = svg('g', {class: 'grid'});
  for (const t of ticks(y0, y1, 4)) {
    grid.append(svg('line', {x1: m.l, x2: m.l + w, y1: Y(t), y2: Y(t)}), svg('text', {x: m.l - 4, y: Y(t) + 3, 'text-anchor': 'end'}, yFormat(t)));
  }
  for (const t of scale.ticks(Math.max(2, Math.floor(w / 70)))) {
    grid.append(svg('text', {x: X(t), y: m.t + hgt + 14, 'text-anchor': 'middle'}, xFormat(t)));
  }
  root.append(grid);
  root.dataset.xScale = scale.kind;
  if (scale.kind === 'log') {
    root.append(svg('text', {class: 'axis-label', x: 2, y: height - 6}, 'log', svg('title', {}, 'steps on a log axis: the snapshots follow a log schedule')));
  }
  if (yLabel) root.append(svg('text', {class: 'axis-label', x: 4, y: 11}, yLabel));
  if (marker !== undefined && marker !== null && xs.length) {
    root.append(svg('line', {class: 'marker', x1: X(marker), x2: X(marker), y1: m.t, y2: m.t + hgt, 'data-testid': testid ? `${testid}-marker` : undefined}));
  }
  for (const s of series) {
    let d = '', pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined || !Number.isFinite(v)) { pen = pen && s.connect === true; return; }
      d += `${pen ? 'L' : 'M'}${X(xs[i]).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
    });
    const g = svg('g', {class: 'series'}, svg('title', {}, s.name));
    g.append(svg('path', {d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 1.5, 'stroke-dasharray': s.dash, opacity: s.opacity}));
    if (s.dots !== false) {
      s.values.forEach((v, i) => {
        if (v === null || v === undefined || !Number.isFinite(v)) return;
        g.append(svg('circle', {cx: X(xs[i]), cy: Y(v), r: s.dotRadius || 2.2, fill: s.color, opacity: s.opacity},
          svg('title', {}, `${s.name} · step ${xFormat(xs[i])}: ${yFormat(v)}`)));
      });
    }
    root.append(g);
  }
  if (showLegend) {
    const lg = svg('g', {class: 'legend'});
    for (const {s, x, row} of entries) {
      const y = 7 + 14 * row;
      lg.append(svg('line', {x1: x, x2: x + 12, y1: y, y2: y, stroke: s.color, 'stroke-width': 2, 'stroke-dasharray': s.dash}),
        svg('text', {x: x + 15, y: y + 4}, s.name));
    }
    root.append(lg);
  }
  if (onClick && xs.length) {
    // One transparent band per x, so a click anywhere near a step picks it.
    const band = svg('g', {class: 'hit'});
    xs.forEach((x, i) => {
      const left = i === 0 ? m.l : (X(xs[i - 1]) + X(x)) / 2;
      const right = i === xs.length - 1 ? m.l + w : (X(x) + X(xs[i + 1])) / 2;
      band.append(svg('rect', {x: left, y: m.t, width: Math.max(1, right - left), height: hgt, fill: 'transparent', 'data-x': x, onclick: () => onClick(x)},
        svg('title', {}, `step ${xFormat(x)}`)));
    });
    root.append(band);
  }
  return root;
}

// Colour scales: sequential (white -> accent) and diverging (red - white - green).
export function sequential(t) {
  t = Math.max(0, Math.min(1, t));
  const a = [255, 255, 255], b = [53, 99, 233];
  return `rgb(${a.map((v, i) => Math.round(v + (b[i] - v) * t)).join(',')})`;
}
export function diverging(t) {
  t = Math.max(-1, Math.min(1, t));
  const end = t < 0 ? [217, 72, 15] : [47, 158, 68];
  const k = Math.abs(t);
  return `rgb(${end.map((v) => Math.round(255 + (v - 255) * k)).join(',')})`;
}
// Text colour readable on a fill made by sequential/diverging at strength |t|.
export function inkOn(t) { return Math.abs(t) > 0.55 ? '#fff' : '#1d2330'; }

// A heatmap. values: rows x cols (null = no data). options: {rowLabels, colLabels, cell, color(v, i, j),
// text(v, i, j), title(v, i, j), onClick(i, j), rowTitle, colTitle, selected [i, j], testid, cellClass(v, i, j)}.
export function heatmap(values, options) {
  const {rowLabels = [], colLabels = [], color, text, title, onClick, rowTitle, colTitle, selected, testid, cellClass} = options;
  const rows = values.length, cols = rows ? values[0].length : 0;
  const cell = options.cell || 28;
  const cellW = options.cellW || cell;
  const labelW = options.labelW ?? Math.min(110, 12 + 7 * Math.max(1, ...rowLabels.map((l) => String(l).length)));
  const rotate = colLabels.some((l) => String(l).length * 7 > cellW);
  const labelH = options.labelH ?? (rotate ? Math.min(90, 12 + 6 * Math.max(...colLabels.map((l) => String(l).length))) : 18);
  const top = labelH + (colTitle ? 16 : 0);
  const left = labelW + (rowTitle ? 16 : 0);
  const width = left + cols * cellW + 4, height = top + rows * cell + 4;
  const root = svg('svg', {class: 'heatmap', width, height, viewBox: `0 0 ${width} ${height}`, 'data-testid': testid});
  if (colTitle) root.append(svg('text', {class: 'axis-label', x: left + (cols * cellW) / 2, y: 11, 'text-anchor': 'middle'}, colTitle));
  if (rowTitle) root.append(svg('text', {class: 'axis-label', transform: `translate(11 ${top + (rows * cell) / 2}) rotate(-90)`, 'text-anchor': 'middle'}, rowTitle));
  colLabels.forEach((l, j) => {
    const x = left + j * cellW + cellW / 2;
    root.append(rotate
      ? svg('text', {class: 'tick-label', transform: `translate(${x + 4} ${top - 4}) rotate(-60)`}, l)
      : svg('text', {class: 'tick-label', x, y: top - 5, 'text-anchor': 'middle'}, l));
  });
  rowLabels.forEach((l, i) => root.append(svg('text', {class: 'tick-label', x: left - 5, y: top + i * cell + cell / 2 + 4, 'text-anchor': 'end'}, l)));
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = values[i][j];
      const g = svg('g', {class: `cell${cellClass ? ' ' + (cellClass(v, i, j) || '') : ''}`, 'data-i': i, 'data-j': j,
        onclick: onClick ? () => onClick(i, j) : undefined});
      g.append(svg('rect', {x: left + j * cellW, y: top + i * cell, width: cellW - 1, height: cell - 1, fill: v === null || v === undefined ? '#f1f3f5' : color(v, i, j)}));
      const label = text ? text(v, i, j) : null;
      if (label !== null && label !== undefined && label !== '') {
        g.append(svg('text', {x: left + j * cellW + cellW / 2, y: top + i * cell + cell / 2 + 4, 'text-anchor': 'middle', fill: options.ink ? options.ink(v, i, j) : '#1d2330'}, label));
      }
      if (title) g.append(svg('title', {}, title(v, i, j)));
      root.append(g);
    }
  }
  if (selected) {
    const [i, j] = selected;
    root.append(svg('rect', {class: 'selected', x: left + j * cellW - 1, y: top + i * cell - 1, width: cellW + 1, height: cell + 1, fill: 'none'}));
  }
  return root;
}

// A gallery of probe thumbnails. items: [{probe_id, caption, title, correct (true/false/undefined)}].
// Clicking one selects it (a history entry, so Back returns to the previous selection).
export function gallery(items, ctx, {testid, size} = {}) {
  const el = h('div', {class: 'gallery', 'data-testid': testid});
  for (const it of items) {
    const cls = it.correct === true ? 'thumb right' : it.correct === false ? 'thumb wrong' : 'thumb';
    el.append(h('figure', {class: it.probe_id === ctx.state.sel ? 'selected' : null, title: it.title, 'data-probe': it.probe_id,
      onclick: () => ctx.set({sel: it.probe_id}, {push: true})},
    h('img', {class: size === 'big' ? `${cls} big` : cls, src: thumbURL(ctx.run.run_id, it.probe_id), alt: it.title || `image ${it.probe_id}`, loading: 'lazy'}),
    it.caption ? h('figcaption', {}, it.caption) : null));
  }
  return el;
}

// An error in a panel, kept short: a long store message (a corrupt or missing
// snapshot file, with its full path) becomes one line, the rest under "details".
export function panelError(el, err, {step} = {}) {
  const msg = err && err.message ? err.message : String(err);
  showError(el, err);
  if (msg.length <= 180) return;
  const file = msg.match(/(?:Cannot read|Missing file) \S*?([^/\s]+\.parquet)/);
  const inPath = msg.match(/step=(\d+)\//); // the step whose file failed, which may not be the current one
  const which = inPath ? inPath[1] : step;
  const where = which === undefined || which === null ? '' : `Step ${which}: `;
  const summary = file ? `${where}${file[1]} cannot be read (truncated, corrupt or missing). The other steps still work.` : `${msg.slice(0, 160)}…`;
  clear(el.querySelector('.error')).append(h('div', {}, summary),
    h('details', {}, h('summary', {class: 'small'}, 'details'), h('div', {class: 'small'}, msg)));
}
