// The clusters' purity over the run: one line, the current step marked.

import {clear, pct} from '../../dom.js';
import {svg} from '../../charts.js';

const W = 600, H = 120, L = 42, R = 10, T = 8, B = 22;

export function renderPurity(el, data, current) {
  const steps = data.steps, values = data.purity;
  const x = (i) => L + (steps.length > 1 ? (i * (W - L - R)) / (steps.length - 1) : (W - L - R) / 2);
  const y = (v) => T + (1 - v) * (H - T - B);
  const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: 'purity-svg', role: 'img', 'aria-label': 'cluster purity per step'});
  for (const v of [0, 0.5, 1]) {
    root.append(svg('line', {x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid'}), svg('text', {x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis'}, `${v * 100}%`));
  }
  let d = ''; let pen = false;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`; pen = true;
  });
  root.append(svg('path', {d, class: 'line'}));
  const i = steps.indexOf(current);
  if (i >= 0) {
    root.append(svg('line', {x1: x(i), x2: x(i), y1: T, y2: H - B, class: 'now'}));
    if (values[i] !== null) root.append(svg('circle', {cx: x(i), cy: y(values[i]), r: 4, class: 'dot'}));
  }
  root.append(svg('text', {x: L, y: H - 6, class: 'axis'}, `step ${steps[0] ?? ''}`), svg('text', {x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis'}, `step ${steps[steps.length - 1] ?? ''}`));
  if (i >= 0 && values[i] !== null) {
    const right = x(i) > W / 2; // keep the label inside the chart
    root.append(svg('text', {x: x(i) + (right ? -6 : 6), y: T + 10, 'text-anchor': right ? 'end' : 'start', class: 'axis now-label'}, `${pct(values[i])} at step ${current}`));
  }
  clear(el).append(root);
  el.dataset.step = String(current);
}
