// Analysis panel: how much a layer changed (linear CKA): the chosen layer at
// every pair of steps, and every pair of layers at the current step.

import {getJSON} from '../../api.js';
import {h, clear, showError, spinner, fillPanel} from '../../dom.js';
import {heatmap, sequential, inkOn} from '../../charts.js';

function draw(ctx, el, res) {
  const n = res.labels.length;
  const cell = Math.max(10, Math.min(34, Math.floor(420 / Math.max(1, n))));
  const big = cell >= 30;
  const steps = res.mode === 'steps';
  const cur = steps ? res.labels.indexOf(ctx.state.step) : -1;
  clear(el).append(h('h3', {}, steps ? `${res.layer}: step × step` : `layer × layer at step ${res.step}`),
    heatmap(res.matrix, {
      rowLabels: res.labels, colLabels: res.labels, cell,
      color: (v) => sequential(v), ink: (v) => inkOn(v),
      text: big ? (v) => (v === null ? '' : v.toFixed(2)) : null,
      title: (v, i, j) => `${res.labels[i]} vs ${res.labels[j]}: CKA ${v === null ? 'undefined (constant)' : v.toFixed(3)}`,
      cellClass: (v, i, j) => (i === cur || j === cur ? 'current' : ''),
      onClick: steps ? (i, j) => ctx.set({step: res.labels[j]}, {push: true}) : null,
      rowTitle: steps ? 'step' : null, colTitle: steps ? 'step' : null,
      testid: steps ? 'cka-steps-map' : 'cka-layers-map',
    }),
    h('p', {class: 'muted small', text: `on ${res.rows} probe images`}));
}

export function mount(el, ctx) {
  const api = `/api/runs/${encodeURIComponent(ctx.run.run_id)}/analysis/cka`;
  const boxes = {steps: h('div', {class: 'cka-box', 'data-testid': 'cka-steps'}), layers: h('div', {class: 'cka-box', 'data-testid': 'cka-layers'})};
  const tokens = {steps: 0, layers: 0};
  fillPanel(el, 'How much a layer changed (linear CKA)', 'cka',
    h('p', {class: 'muted small', text: 'Linear CKA between representations of the same probe images: 1 = the same up to rotation and scale, '
      + 'near 0 = unrelated. Left: the chosen layer at every pair of steps (click a cell to jump to a step). Right: every pair of layers at the current step.'}),
    h('div', {class: 'cka-layout'}, boxes.steps, boxes.layers));

  async function load(mode) {
    const box = boxes[mode];
    const my = ++tokens[mode];
    spinner(box, 'Computing CKA…');
    try {
      const res = await getJSON(api, mode === 'steps' ? {mode, layer: ctx.state.layer} : {mode, step: ctx.state.step});
      if (my === tokens[mode]) draw(ctx, box, res);
    } catch (err) {
      if (my === tokens[mode]) showError(box, err);
    }
  }

  let loaded = false;
  return {
    update(changed) {
      const first = !loaded;
      loaded = true;
      if (first || changed.has('layer')) load('steps');
      if (first || changed.has('step')) load('layers');
    },
    destroy() { tokens.steps += 1; tokens.layers += 1; clear(el); },
  };
}
