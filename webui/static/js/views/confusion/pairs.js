// Confusion tab, pairs over time: the count of one clicked cell (true i ->
// predicted j) at every step, beside the cell's images, and the list of the
// confusion pairs whose count rose or fell most since the step before.
// The parent calls show([i, j]) from its one cell-click handler; a row of the
// list picks its cell through ctx.pickCell, which is that same handler.

import {getJSON} from '../../api.js';
import {h, clear, spinner} from '../../dom.js';
import {lineChart, panelError} from '../../charts.js';

const api = (ctx, path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}/${path}`;
const signed = (v) => (v > 0 ? `+${v}` : v < 0 ? `−${-v}` : '0');

export function mount(el, ctx) {
  const names = ctx.run.class_names;
  const chartEl = h('div', {class: 'pair-chart', 'data-testid': 'pair-history'});
  const changesEl = h('div', {class: 'pair-changes', 'data-testid': 'pair-changes'});
  const changesNote = h('p', {class: 'muted small'});
  clear(el).append(chartEl,
    h('h3', {}, 'Pairs that rose or fell most'), changesNote, changesEl);
  let cell = null; // [true, pred]
  let history = null; // the /confusion/pair answer for cell
  let gen = 0;

  function drawChart() {
    if (!history) return;
    const [i, j] = cell;
    const at = history.steps.indexOf(ctx.state.step);
    const now = at >= 0 ? history.counts[at] : null;
    const known = history.counts.filter((v) => v !== null);
    clear(chartEl).append(
      h('div', {class: 'small'}, h('b', {}, `${names[i]} → ${names[j]}`), ` over the steps: ${now === null ? '–' : now} at step ${ctx.state.step}`,
        known.length ? h('span', {class: 'muted'}, ` (lowest ${Math.min(...known)}, highest ${Math.max(...known)})`) : null),
      lineChart([{name: `true ${names[i]} predicted ${names[j]}`, values: history.counts, color: '#d9480f'}], {
        xs: history.steps, width: 360, height: 150, marker: ctx.state.step, yLabel: 'images', testid: 'pair-history-chart',
        yFormat: (v) => String(Math.round(v)), onClick: (x) => ctx.set({step: x}, {push: true}),
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

  async function loadChanges() {
    const step = ctx.state.step;
    spinner(changesEl, 'Loading…');
    clear(changesNote);
    try {
      const res = await getJSON(api(ctx, `steps/${step}/confusion/changes`), {limit: 10});
      if (ctx.state.step !== step) return;
      clear(changesEl);
      if (res.prev_error) { changesEl.append(h('div', {class: 'error small', role: 'alert'}, `Step ${res.prev_step} cannot be read: ${res.prev_error}`)); return; }
      if (res.prev_step === null) { changesNote.textContent = 'This is the first step: nothing to compare with.'; return; }
      changesNote.textContent = `Measure: the change in a pair's count (images of the true class predicted as the other) from step ${res.prev_step} to step ${step}, largest first. Click a row for its images and its count over the steps.`;
      if (!res.rows.length) { changesEl.append(h('p', {class: 'muted small', text: 'No confusion pair changed.'})); return; }
      const body = h('tbody', {});
      for (const r of res.rows) {
        body.append(h('tr', {class: 'clickable', tabindex: 0, 'data-testid': 'pair-change-row', 'data-true': r.true, 'data-pred': r.pred,
          onclick: () => ctx.pickCell(r.true, r.pred)},
        h('td', {}, h('span', {class: 'pair-name'}, names[r.true]), ' → ', h('span', {class: 'pair-name'}, names[r.pred])),
        h('td', {class: 'num'}, `${r.before} → ${r.after}`),
        h('td', {class: `num ${r.change > 0 ? 'bad' : 'good'}`}, signed(r.change))));
      }
      changesEl.append(h('table', {class: 'table compact'},
        h('thead', {}, h('tr', {}, h('th', {}, 'true → predicted'), h('th', {class: 'num'}, `images at ${res.prev_step} → ${step}`), h('th', {class: 'num'}, 'change'))), body));
    } catch (err) { if (ctx.state.step === step) panelError(changesEl, err, {step}); }
  }

  return {
    show,
    update(changed) {
      if (changed.has('step') || changed.has('view')) { loadChanges(); drawChart(); }
    },
    destroy() { gen += 1; clear(el); },
  };
}
