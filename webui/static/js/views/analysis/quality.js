// Analysis panel: how well each captured layer separates the classes at each
// step. The layer_quality table is filled by a background job on the server;
// this panel starts it once per page and polls its progress while it runs.
// The answer is shared: ctx.shared.quality, announced as the change 'quality'.

import {getJSON, postJSON} from '../../api.js';
import {h, clear, showError, fmt, fillPanel} from '../../dom.js';
import {lineChart} from '../../charts.js';

const QUALITY = [['knn_accuracy', 'k-NN accuracy (leave-one-out)'], ['linear_probe_accuracy', 'linear-probe accuracy (3-fold CV)'],
  ['silhouette', 'silhouette of the classes'], ['class_purity', 'k-means purity']];
const ACCURACIES = new Set(['knn_accuracy', 'linear_probe_accuracy', 'class_purity']);
const LAYER_COLORS = ['#3563e9', '#f08c00', '#2f9e44', '#ae3ec9', '#e8590c', '#1098ad', '#5c940d', '#c2255c'];
const POLL_MS = 1500;

function drawProgress(el, prog) {
  clear(el);
  if (prog.error) { el.append(h('div', {class: 'error', role: 'alert', text: `Computing the layer quality failed: ${prog.error}`})); return; }
  if (!prog.running) return;
  const frac = prog.total ? prog.done / prog.total : 0;
  el.append(h('div', {class: 'progress', role: 'progressbar', 'aria-valuenow': prog.done, 'aria-valuemax': prog.total},
    h('span', {class: 'spin'}), `Computing ${prog.done}/${prog.total}: ${prog.message}`),
  h('div', {class: 'bar'}, h('span', {style: `width:${(100 * frac).toFixed(1)}%`})));
}

// Layers, plus the pixel and mean-image baselines dashed.
function seriesOf(q, m) {
  const values = q.values[m];
  const series = q.layers.map((layer, i) => ({name: layer, values: values[layer], color: LAYER_COLORS[i % LAYER_COLORS.length]}));
  const base = q.baselines[m] || {};
  if (base.pixels !== undefined && base.pixels !== null) series.push({name: 'pixels', values: q.steps.map(() => base.pixels), color: '#868e96', dash: '5 4', dots: false});
  if (base.mean_image !== undefined && base.mean_image !== null) series.push({name: 'mean image', values: q.steps.map(() => base.mean_image), color: '#212529', dash: '2 3', dots: false});
  return series;
}

// The best layer at the current step, in words.
function bestLayer(q, m, step) {
  const i = q.steps.indexOf(step);
  const here = q.layers.map((l) => [l, q.values[m][l][i]]).filter(([, v]) => v !== null && v !== undefined);
  if (!here.length) return null;
  const show = (v) => (ACCURACIES.has(m) ? `${(100 * v).toFixed(1)} %` : fmt(v));
  const [bl, bv] = here.reduce((a, b) => (b[1] > a[1] ? b : a));
  const pixels = (q.baselines[m] || {}).pixels;
  return h('p', {class: 'small', 'data-testid': 'quality-best'}, `At step ${step} the best layer is `, h('b', {}, bl), ` (${show(bv)})`,
    pixels !== undefined && pixels !== null ? `; raw pixels: ${show(pixels)}.` : '.');
}

export function mount(el, ctx) {
  const api = (path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}/analysis/${path}`;
  let metric = 'knn_accuracy';
  let started = false; // the job is started once per page; a failed job is shown, not retried in a loop
  let loaded = false;
  let poll = null;
  const metricSel = h('select', {'aria-label': 'quality metric', 'data-testid': 'quality-metric',
    onchange: () => { metric = metricSel.value; draw(); }}, QUALITY.map(([v, l]) => h('option', {value: v}, l)));
  const progressEl = h('div', {class: 'quality-progress', 'data-testid': 'quality-progress'});
  const chart = h('div', {class: 'quality-chart'});
  fillPanel(el, 'Representation quality per layer', 'quality',
    h('p', {class: 'muted small', text: 'How well each captured layer separates the classes of the probe images at each step '
      + '(fixed seed). Dashed: the same measure on raw pixels, and the class-mean-image classifier. Click a point to jump to that step.'}),
    h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'measure', metricSel)), progressEl, chart);

  async function load() {
    clearTimeout(poll);
    try {
      const q = await getJSON(api('quality'));
      ctx.shared.quality = q;
      let prog = q.progress;
      if (prog.missing > 0 && !prog.running && !prog.error && !started) {
        started = true;
        prog = await postJSON(api('compute'));
      }
      drawProgress(progressEl, prog);
      draw();
      ctx.announce('quality');
      if (prog.running) poll = setTimeout(load, POLL_MS);
    } catch (err) {
      showError(chart, err);
    }
  }

  function draw() {
    const q = ctx.shared.quality;
    if (!q) return;
    const series = seriesOf(q, metric);
    clear(chart);
    if (!series.some((s) => s.values.some((v) => v !== null))) { chart.append(h('p', {class: 'muted', text: 'Nothing computed yet.'})); return; }
    const width = Math.max(360, Math.min(980, (chart.clientWidth || 760) - 8));
    chart.append(lineChart(series, {xs: q.steps, width, height: 240, marker: ctx.state.step, testid: 'quality-chart',
      yLabel: QUALITY.find(([v]) => v === metric)[1], onClick: (x) => ctx.set({step: x}, {push: true}),
      yFormat: ACCURACIES.has(metric) ? (v) => `${Math.round(v * 100)}%` : undefined}));
    const best = bestLayer(q, metric, ctx.state.step);
    if (best) chart.append(best);
  }

  return {
    update(changed) {
      if (!loaded) { loaded = true; load(); }
      if (changed.has('step')) draw();
    },
    destroy() { clearTimeout(poll); loaded = true; clear(el); },
  };
}
