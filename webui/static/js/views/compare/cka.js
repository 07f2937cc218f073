// Representation similarity: linear CKA of every layer of run A against every layer of run B at the current
// steps (a click picks a pair of layers), and the chosen pair's CKA over the matched steps.

import {getJSON} from '../../api.js';
import {h, fillPanel, fmt} from '../../dom.js';
import {heatmap, sequential, inkOn, lineChart, panelError} from '../../charts.js';

export function mount(el, ctx) {
  const grid = h('div'); const line = h('div');
  fillPanel(el, 'Representation similarity (CKA)', 'compare-cka', h('div', {class: 'pair'}, grid, line));
  let token = 0; let lineToken = 0;
  const chosen = () => {
    const s = ctx.summary;
    return [ctx.state.cka_a || s.layers_a[s.layers_a.length - 1], ctx.state.cka_b || s.layers_b[s.layers_b.length - 1]];
  };

  async function drawGrid() {
    const t = ++token; const {step_a, step_b} = ctx.steps();
    try {
      const r = await getJSON('/api/compare/cka', ctx.params({step_a, step_b}));
      if (t !== token) return;
      const [la, lb] = chosen();
      grid.replaceChildren(h('h3', {}, `A step ${r.step_a} × B step ${r.step_b}`), heatmap(r.cka, {
        rowLabels: r.layers_a, colLabels: r.layers_b, cell: 34, cellW: 54, rowTitle: 'run A', colTitle: 'run B', testid: 'cka-heatmap',
        color: (v) => sequential(v), ink: (v) => inkOn(v), text: (v) => (v === null ? '' : v.toFixed(2)),
        title: (v, i, j) => `${r.layers_a[i]} × ${r.layers_b[j]}: ${v === null ? 'undefined (a constant layer)' : fmt(v)}`,
        selected: [r.layers_a.indexOf(la), r.layers_b.indexOf(lb)],
        onClick: (i, j) => ctx.set({cka_a: r.layers_a[i], cka_b: r.layers_b[j]}, {push: true})}));
    } catch (err) { if (t === token) panelError(grid, err); }
  }

  async function drawLine() {
    const t = ++lineToken; const [la, lb] = chosen();
    try {
      const r = await getJSON('/api/compare/cka_timeline', ctx.params({layer_a: la, layer_b: lb, match: ctx.state.match}));
      if (t !== lineToken) return;
      const {pair} = ctx.steps();
      line.replaceChildren(h('h3', {}, `${la} (A) × ${lb} (B) over time`),
        lineChart([{name: 'CKA', color: '#3563e9', width: 2, values: r.points.map((p) => p.cka)}],
          {xs: r.points.map((p) => p.step_a), width: 420, height: 180, yDomain: [0, 1], marker: pair.step_a, testid: 'cka-line', xFormat: (v) => String(v)}),
        h('p', {class: 'note', 'data-testid': 'cka-last'}, `x axis: run A's step. Last matched step: CKA ${fmt(r.points[r.points.length - 1].cka)}.`));
    } catch (err) { if (t === lineToken) panelError(line, err); }
  }

  return {
    update(changed) {
      if (changed.has('at') || changed.has('cka_a') || changed.has('cka_b')) drawGrid();
      if (['summary', 'cka_a', 'cka_b', 'step'].some((k) => changed.has(k))) drawLine(); // the server caches each point
    },
    destroy() {},
  };
}
