// Confusion tab: the confusion pairs whose count rose or fell most from the
// step before to the current step (the measure is named on the panel). A row
// picks its cell through ctx.pickCell, the parent's one cell-click handler.

import {getJSON} from '../../api.js';
import {h, clear, spinner} from '../../dom.js';
import {panelError} from '../../charts.js';

const api = (ctx, path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}/${path}`;
const signed = (v) => (v > 0 ? `+${v}` : v < 0 ? `−${-v}` : '0');

export function mount(el, ctx) {
  const names = ctx.run.class_names;
  const changesEl = h('div', {class: 'pair-changes', 'data-testid': 'pair-changes'});
  const changesNote = h('p', {class: 'muted small'});
  clear(el).append(h('h3', {}, 'Pairs that rose or fell most'), changesNote, changesEl);

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
    update(changed) { if (changed.has('step') || changed.has('view')) loadChanges(); },
    destroy() { clear(el); },
  };
}
