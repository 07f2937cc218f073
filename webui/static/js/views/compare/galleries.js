// The images right in one run and wrong in the other at the current pair of steps. A click selects one.

import {h, fillPanel} from '../../dom.js';
import {gallery} from '../../charts.js';

export function mount(el, ctx) {
  const body = h('div', {class: 'pair'});
  fillPanel(el, 'Where the runs disagree on being right', 'compare-galleries', body);

  function side(key, title) {
    const g = ctx.at[key];
    const items = g.items.map((it) => ({probe_id: it.probe_id, caption: `${it.pred_a} · ${it.pred_b}`,
      title: `image ${it.probe_id}, class ${it.label}; A says ${it.pred_a}, B says ${it.pred_b}`}));
    // The shared gallery reads ctx.run, ctx.state.sel and ctx.set: run A's thumbnails (the images are shared).
    const shown = g.count > items.length ? ` (the first ${items.length})` : '';
    return h('div', {'data-testid': key, 'data-count': g.count}, h('h3', {}, `${title}: ${g.count}${shown}`),
      items.length ? gallery(items, {run: {run_id: ctx.at.run_a}, state: ctx.state, set: ctx.set}, {testid: `${key}-gallery`}) : h('p', {class: 'note'}, 'none'));
  }
  function draw() {
    if (!ctx.at) return;
    body.replaceChildren(side('right_a_wrong_b', 'Right in A, wrong in B'), side('wrong_a_right_b', 'Wrong in A, right in B'));
  }
  return { update(changed) { if (changed.has('at') || changed.has('sel')) draw(); }, destroy() {} };
}
