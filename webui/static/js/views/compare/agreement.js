// The share of shared images on which the two runs predict the same class, over the matched steps, with both
// runs' accuracy on those images. A click on the chart moves the timeline there.

import {h, fillPanel, pct} from '../../dom.js';
import {lineChart} from '../../charts.js';

export function mount(el, ctx) {
  const body = h('div');
  const note = h('p', {class: 'note', 'data-testid': 'agreement-now'});
  fillPanel(el, 'Agreement over time', 'compare-agreement', body, note);

  function draw() {
    const m = ctx.summary.matched;
    const xs = m.map((r) => r.step_a);
    const {pair} = ctx.steps();
    const series = [
      {name: 'agreement', color: '#1d2330', width: 2, values: m.map((r) => r.agreement ?? null)},
      {name: 'acc A', color: '#3563e9', dash: '4 3', values: m.map((r) => r.acc_a ?? null)},
      {name: 'acc B', color: '#e8590c', dash: '4 3', values: m.map((r) => r.acc_b ?? null)},
    ];
    body.replaceChildren(lineChart(series, {xs, width: 560, height: 200, yDomain: [0, 1], marker: pair.step_a, testid: 'agreement-chart',
      xFormat: (v) => String(v), yFormat: (v) => `${Math.round(100 * v)}%`, onClick: (x) => ctx.set({step: x, pin_a: null, pin_b: null}, {push: true})}));
    const at = ctx.at;
    note.textContent = at
      ? `At A step ${at.step_a} and B step ${at.step_b}: they agree on ${pct(at.agreement)} of ${at.n_shared} images (A right on ${pct(at.acc_a)}, B on ${pct(at.acc_b)}). x axis: run A's step.`
      : '';
  }
  return {
    update(changed) { if (changed.has('summary') || changed.has('at') || changed.has('step')) draw(); },
    destroy() {},
  };
}
