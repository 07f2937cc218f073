// Analysis panel: the data map (Swayamdipta et al. 2020): each probe image by
// its training dynamics over all steps; click a point to select the image.

import {getBinary, thumbURL} from '../../api.js';
import {h, clear, showError, spinner, fmt, fillPanel} from '../../dom.js';
import {svg} from '../../charts.js';
import {pickButton} from '../selection/gallery.js';

const W = 460, H = 340, M = {l: 44, r: 12, t: 12, b: 34};
const X_MAX = 0.5; // the std of a probability is at most 0.5
const X = (v) => M.l + (v / X_MAX) * (W - M.l - M.r);
const Y = (v) => M.t + (1 - v) * (H - M.t - M.b);

// Fraction of steps correct -> red (never) … amber … green (always).
function correctnessColor(c) {
  const stops = [[217, 72, 15], [240, 140, 0], [47, 158, 68]];
  const t = Math.max(0, Math.min(1, c)) * 2;
  const i = Math.min(1, Math.floor(t));
  const f = t - i;
  const rgb = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${rgb.join(',')})`;
}

// Axes, and the regions' boundaries (data_map_region's thresholds).
function frame(meta) {
  const grid = svg('g', {class: 'grid'});
  for (const t of [0, 0.25, 0.5, 0.75, 1]) grid.append(svg('line', {x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t)}), svg('text', {x: M.l - 4, y: Y(t) + 3, 'text-anchor': 'end'}, t));
  for (const t of [0, 0.1, 0.2, 0.3, 0.4, 0.5]) grid.append(svg('text', {x: X(t), y: H - M.b + 14, 'text-anchor': 'middle'}, t));
  const av = meta.ambiguous_variability, ec = meta.easy_confidence;
  return [grid,
    svg('text', {class: 'axis-label', x: (W + M.l) / 2, y: H - 4, 'text-anchor': 'middle'}, 'variability'),
    svg('text', {class: 'axis-label', transform: `translate(11 ${(H - M.b) / 2}) rotate(-90)`, 'text-anchor': 'middle'}, 'confidence'),
    svg('line', {class: 'region-line', x1: X(av), x2: X(av), y1: M.t, y2: H - M.b}),
    svg('line', {class: 'region-line', x1: M.l, x2: X(av), y1: Y(ec), y2: Y(ec)})];
}

// Region names go on top of the points, so they are drawn after them.
const regionLabels = (meta) => [
  svg('text', {class: 'region-label', x: M.l + 6, y: M.t + 14}, `easy (${meta.counts.easy})`),
  svg('text', {class: 'region-label', x: M.l + 6, y: H - M.b - 6}, `hard to learn (${meta.counts.hard})`),
  svg('text', {class: 'region-label', x: W - M.r - 6, y: M.t + 14, 'text-anchor': 'end'}, `ambiguous (${meta.counts.ambiguous})`)];

function plot(ctx, dm, selIdx) {
  const {probe_id: ids, confidence: conf, variability: vari, correctness: corr, forgetting_events: forg, label} = dm.arrays;
  const names = ctx.run.class_names;
  const root = svg('svg', {class: 'chart datamap', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-testid': 'datamap-plot'});
  const pts = svg('g', {class: 'points'});
  for (let i = 0; i < ids.length; i++) {
    pts.append(svg('circle', {cx: X(vari[i]).toFixed(1), cy: Y(conf[i]).toFixed(1), r: 3.2, fill: correctnessColor(corr[i]), 'data-i': i}));
  }
  root.append(...frame(dm.meta), pts, ...regionLabels(dm.meta));
  if (selIdx >= 0) root.append(svg('circle', {class: 'selected-point', cx: X(vari[selIdx]), cy: Y(conf[selIdx]), r: 6, 'data-testid': 'datamap-selected'}));
  pts.addEventListener('click', (ev) => {
    const i = Number(ev.target.getAttribute('data-i'));
    if (Number.isInteger(i) && ev.target.tagName === 'circle') ctx.set({sel: ids[i]}, {push: true});
  });
  pts.addEventListener('mouseover', (ev) => {
    const i = Number(ev.target.getAttribute('data-i'));
    if (!Number.isInteger(i) || ev.target.tagName !== 'circle' || ev.target.querySelector('title')) return;
    ev.target.append(svg('title', {}, `image ${ids[i]} · ${names[label[i]]}\nconfidence ${fmt(conf[i])} · variability ${fmt(vari[i])}\n`
      + `correct at ${(100 * corr[i]).toFixed(0)} % of steps · forgotten ${forg[i]}×`));
  });
  return root;
}

function details(ctx, dm, selIdx) {
  const {probe_id: ids, confidence: conf, variability: vari, correctness: corr, forgetting_events: forg, label} = dm.arrays;
  const names = ctx.run.class_names;
  const forgotten = forg.reduce((n, f) => n + (f > 0 ? 1 : 0), 0);
  const parts = [h('div', {class: 'datamap-legend'}, 'correct at ', [0, 0.5, 1].map((c) => h('span', {},
    h('i', {style: `background:${correctnessColor(c)}`}), `${c * 100} %`)), ' of steps'),
  h('p', {}, `${ids.length} images over ${dm.meta.n_steps} steps.`),
  h('p', {}, `${forgotten} forgotten at least once (correct at one step, wrong at the next).`), regionButtons(ctx, dm)];
  if (selIdx >= 0) {
    parts.push(h('div', {class: 'datamap-sel', 'data-testid': 'datamap-sel-info'},
      h('img', {class: 'thumb big', src: thumbURL(ctx.run.run_id, ids[selIdx]), alt: `image ${ids[selIdx]}`}),
      h('div', {}, h('b', {}, `image ${ids[selIdx]} · ${names[label[selIdx]]}`),
        h('div', {}, `confidence ${fmt(conf[selIdx])}, variability ${fmt(vari[selIdx])}`),
        h('div', {}, `correct at ${(100 * corr[selIdx]).toFixed(0)} % of steps, forgotten ${forg[selIdx]}×`))));
  }
  return parts;
}

// One "select these" per region (data_map_region's thresholds).
function regionButtons(ctx, dm) {
  const {probe_id: ids, confidence: conf, variability: vari} = dm.arrays;
  const {ambiguous_variability: av, easy_confidence: ec} = dm.meta;
  const regionOf = (i) => (vari[i] >= av ? 'ambiguous' : conf[i] >= ec ? 'easy' : 'hard');
  const inRegion = (r) => Array.from(ids).filter((_, i) => regionOf(i) === r);
  return h('div', {class: 'datamap-pick'}, ['easy', 'ambiguous', 'hard'].map((r) => [r, inRegion(r)]).map(([r, members]) => h('div', {'data-region': r}, `${r}: `,
    members.length ? pickButton(ctx, members, `data map: ${r}`) : h('span', {class: 'muted small'}, 'no images'))));
}

export function mount(el, ctx) {
  const box = h('div', {class: 'datamap-box'});
  const info = h('div', {class: 'datamap-info small'});
  fillPanel(el, 'Data map', 'datamap',
    h('p', {class: 'muted small', text: 'Each probe image by its training dynamics over all steps (Swayamdipta et al. 2020): mean probability '
      + 'of its true class (confidence) against how much that probability varied (variability), coloured by the fraction of steps it was '
      + 'classified correctly. Click a point to select the image and see its trajectory.'}),
    h('div', {class: 'datamap-layout'}, box, info));
  let dm = null;
  let loaded = false;

  function draw() {
    if (!dm) return;
    const selIdx = dm.arrays.probe_id.indexOf(ctx.state.sel);
    clear(box).append(plot(ctx, dm, selIdx));
    clear(info).append(...details(ctx, dm, selIdx));
  }

  async function load() {
    spinner(box, 'Loading…');
    try {
      dm = await getBinary(`/api/runs/${encodeURIComponent(ctx.run.run_id)}/analysis/datamap`);
      draw();
    } catch (err) { showError(box, err); }
  }

  return {
    update(changed) {
      if (!loaded) { loaded = true; load(); } else if (changed.has('sel') || changed.has('view')) draw();
    },
    destroy() { loaded = true; dm = null; clear(el); },
  };
}
