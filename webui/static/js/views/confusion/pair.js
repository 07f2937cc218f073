// Confusion tab, one cell over time: the count of the clicked cell (true i ->
// predicted j) at every step, drawn beside the cell's images, with the current
// step marked. The parent calls show([i, j]) from its one cell-click handler.

import {getJSON} from '../../api.js';
import {h, clear, spinner} from '../../dom.js';
import {lineChart, panelError} from '../../charts.js';

const api = (ctx, path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}/${path}`;

export function mount(el, ctx) {
  const names = ctx.run.class_names;
  const chartEl = h('div', {class: 'pair-chart', 'data-testid': 'pair-history'});
  clear(el).append(chartEl);
  let cell = null; // [true, pred]
  let history = null; // the /confusion/pair answer for cell
  let gen = 0;

  function drawChart() {
    if (!history) return;
    const [i, j] = cell;
    const at = history.steps.indexOf(ctx.state.step);
    const now = at >= 0 ? history.counts[at] : null;
    const known = history.counts.filter((v) => v !== null);
    const top = Math.max(1, ...known);
    clear(chartEl).append(
      h('div', {class: 'small'}, h('b', {}, `${names[i]} → ${names[j]}`), ` over the steps: ${now === null ? '–' : now} at step ${ctx.state.step}`,
        known.length ? h('span', {class: 'muted'}, ` (lowest ${Math.min(...known)}, highest ${Math.max(...known)})`) : null),
      lineChart([{name: `true ${names[i]} predicted ${names[j]}`, values: history.counts, color: '#d9480f'}], {
        xs: history.steps, width: 340, height: 140, marker: ctx.state.step, yLabel: 'images', testid: 'pair-history-chart',
        yDomain: [0, top], yFormat: (v) => (Number.isInteger(v) ? String(v) : ''), onClick: (x) => ctx.set({step: x}, {push: true}),
      }));
    if (history.errors.length) chartEl.append(h('div', {class: 'error small', role: 'alert'}, `Unreadable step${history.errors.length > 1 ? 's' : ''} ${history.errors.map((e) => e.step).join(', ')} (left out): ${history.errors[0].error}`));
  }

  async function show(next) {
    cell = next;
    history = null;
    const my = ++gen;
    spinner(chartEl, 'Loading the cell over the steps…');
    try {
      const res = await getJSON(api(ctx, 'confusion/pair'), {true: next[0], pred: next[1]});
      if (my !== gen) return;
      history = res;
      drawChart();
    } catch (err) { if (my === gen) panelError(chartEl, err, {step: ctx.state.step}); }
  }

  return {
    show,
    update(changed) { if (changed.has('step') || changed.has('view')) drawChart(); },
    destroy() { gen += 1; clear(el); },
  };
}
