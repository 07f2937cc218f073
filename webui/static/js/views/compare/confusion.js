// Both runs' confusion matrices on the shared images at the current steps, their difference (B - A) and the
// confusion pairs whose counts differ most.

import {h, fillPanel} from '../../dom.js';
import {heatmap, sequential, diverging, inkOn} from '../../charts.js';

export function mount(el, ctx) {
  const body = h('div');
  fillPanel(el, 'Confusions', 'compare-confusion', body);

  function matrix(values, title, names, testid, signed) {
    const max = Math.max(1, ...values.flat().map(Math.abs));
    const t = (v) => v / max;
    return h('div', {}, h('h3', {}, title), heatmap(values, {rowLabels: names, colLabels: names, cell: 24, testid,
      rowTitle: 'true', colTitle: 'predicted', color: (v) => (signed ? diverging(-t(v)) : sequential(t(v))),
      ink: (v) => inkOn(t(v)), text: (v) => (v ? String(v) : ''), title: (v, i, j) => `${names[i]} → ${names[j]}: ${v}`}));
  }
  function draw() {
    const at = ctx.at; if (!at) return;
    const c = at.confusion; const names = c.class_names;
    const rows = at.pairs.map((p) => h('tr', {}, h('td', {}, p.label_name), h('td', {}, p.pred_name), h('td', {class: 'num'}, p.count_a),
      h('td', {class: 'num'}, p.count_b), h('td', {class: 'num'}, p.diff > 0 ? `+${p.diff}` : p.diff)));
    body.replaceChildren(
      h('div', {class: 'toolbar'}, matrix(c.a, `A (step ${at.step_a})`, names, 'confusion-a', false), matrix(c.b, `B (step ${at.step_b})`, names, 'confusion-b', false),
        matrix(c.diff, 'B − A (red: more in B)', names, 'confusion-diff', true)),
      h('h3', {}, 'Confusions whose counts differ most'),
      rows.length ? h('table', {class: 'table pairs', 'data-testid': 'confusion-pairs'},
        h('thead', {}, h('tr', {}, h('th', {}, 'true'), h('th', {}, 'predicted'), h('th', {}, 'A'), h('th', {}, 'B'), h('th', {}, 'B − A'))),
        h('tbody', {}, rows)) : h('p', {class: 'note'}, 'The two runs make the same confusions.'));
  }
  return { update(changed) { if (changed.has('at')) draw(); }, destroy() {} };
}
