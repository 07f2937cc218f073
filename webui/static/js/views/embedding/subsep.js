// When the sub-clusters of one class separate: the silhouette, at every step, of the sub-groups found
// at the current step (GET .../subclusters/separation), drawn as a line with the current step marked
// and one sentence that reads it; and the scatter's colouring by the sub-groups of one step (the URL's
// subref, set by the "colour the scatter" button), the other classes dimmed.

import {getJSON, getBinary} from '../../api.js';
import {h, clear, showError, spinner} from '../../dom.js';
import {lineChart} from '../../charts.js';
import {SEED} from './layouts.js';

const DIM = '#e4e6ea';
const LINE = '#1f3a93';
const fixed = (v) => (v === null ? '–' : v.toFixed(2));

// "The sub-groups found at step N separate from step M on", M the first step at or over the threshold.
export function reading(data) {
  const {steps, values, threshold: t} = data;
  const what = `The ${data.k} sub-groups of ${data.class_name} found at step ${data.step}`;
  const measure = `${data.metric} silhouette ≥ ${t}`;
  const first = values.findIndex((v) => v !== null && v >= t);
  if (first < 0) {
    const best = values.reduce((b, v, i) => (v !== null && (b < 0 || v > values[b]) ? i : b), -1);
    return `${what} never separate (${measure}) at any step; the highest is ${fixed(values[best] ?? null)} at step ${steps[best] ?? '–'}.`;
  }
  const fall = values.findIndex((v, i) => i > first && v !== null && v < t);
  if (fall < 0) return `${what} separate (${measure}) from step ${steps[first]} on.`;
  return `${what} first separate (${measure}) at step ${steps[first]}, but fall below it again at step ${steps[fall]}.`;
}

// Part of the clusters panel: chart, sentence and button. ctx.subgroup gives params() ({layer, cls, k}
// of the sub-clusters) and color(group id); ctx.emb the probes.
export function mount(root, ctx) {
  const api = (path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}${path}`;
  const {params, color: groupColor} = ctx.subgroup;
  const chart = h('div', {class: 'subsep-chart', 'data-testid': 'subsep'});
  const text = h('p', {class: 'small', 'data-testid': 'subsep-reading'});
  const button = h('button', {class: 'btn small', type: 'button', 'data-testid': 'subsep-colour',
    title: 'Colour these images by sub-group in the scatter, the other classes dimmed; the groups stay those of this step while you scrub',
    onclick: () => ctx.set({color: 'subgroup', subref: ctx.state.step}, {push: true})}, 'Colour the scatter by these sub-groups');
  clear(root).append(
    h('h3', {}, 'When do they separate?'),
    h('p', {class: 'muted small'}, 'Silhouette (cosine, −1..1) of these sub-groups in each step’s own activations: near 1 they lie apart, near 0 they overlap, below 0 they are mixed.'),
    chart, text, button);
  let seq = 0; let timer = null;

  async function draw() {
    const my = ++seq;
    const step = ctx.state.step;
    spinner(chart, 'Measuring every step…'); text.textContent = '';
    let data;
    try { data = await getJSON(api(`/steps/${step}/subclusters/separation`), {...params(), seed: SEED}); } catch (err) { if (my === seq) showError(chart, err); return; }
    if (my !== seq) return;
    const series = [{name: `${data.metric} silhouette`, values: data.values, color: LINE},
      {name: `threshold ${data.threshold}`, values: data.steps.map(() => data.threshold), color: '#999', dash: '4 3', dots: false}];
    // 0..1 at least, so the threshold and "no structure" (0) are always on the chart.
    const lo = Math.min(0, ...data.values.filter((v) => v !== null).map((v) => Math.floor(v * 10) / 10));
    clear(chart).append(lineChart(series, {xs: data.steps, marker: data.step, width: 560, height: 150, yLabel: 'silhouette', yDomain: [lo, 1],
      yFormat: fixed, testid: 'subsep-chart', onClick: (x) => ctx.set({step: x}, {push: true})}));
    chart.dataset.points = String(data.values.filter((v) => v !== null).length);
    chart.dataset.step = String(data.step);
    text.textContent = reading(data);
  }

  // The scatter's colouring ({groups, palette, items}) by the sub-groups of step subref (else the current one).
  const cache = new Map();
  function subgroups() {
    const ref = ctx.state.subref ?? ctx.state.step;
    const p = params();
    const key = `${p.layer}|${p.cls}|${p.k}|${ref}`;
    if (!cache.has(key)) {
      cache.set(key, getBinary(api(`/steps/${ref}/subclusters`), {...p, seed: SEED}).then(({arrays, meta}) => {
        const groups = new Int32Array(ctx.emb.probes().label.length).fill(-1);
        arrays.index.forEach((row, j) => { groups[row] = arrays.labels[j]; });
        const items = meta.clusters.map((c) => [groupColor(c.id), `group ${c.id} of ${meta.class_name} at step ${ref} (${c.size})`, c.id]);
        items.push([DIM, 'other classes (dimmed)', -1]);
        return {groups, palette: (g) => (g < 0 ? DIM : groupColor(g)), items};
      }).catch((e) => { cache.delete(key); throw e; }));
    }
    return cache.get(key);
  }

  return {
    subgroups,
    update(changed) {
      if (['layer', 'subcls', 'subk', 'view'].some((k) => changed.has(k))) { clearTimeout(timer); draw(); } else if (changed.has('step')) {
        clearTimeout(timer); timer = setTimeout(draw, 250); // while scrubbing, measure only where the timeline rests
      }
    },
    destroy() { seq += 1; clearTimeout(timer); clear(root); },
  };
}
