// Wires the run page: loads the run, sets up the URL state, mounts the
// timeline, the tabs (one view module each) and the side panel.

import {getJSON} from './api.js';
import {h, clear, showError} from './dom.js';
import {state, init, set, subscribe} from './state.js';
import {mountTimeline} from './timeline.js';
import {VIEWS} from './views/index.js';
import selection from './views/selection.js';

async function main() {
  const app = document.getElementById('app');
  const runId = app.dataset.run;
  let run;
  try {
    run = await getJSON(`/api/runs/${encodeURIComponent(runId)}`);
  } catch (err) {
    showError(app, err);
    return;
  }
  document.getElementById('run-name').textContent = run.name;
  document.getElementById('run-meta').textContent = ` ${run.model_class.split(':').pop()} · ${run.dataset || 'dataset?'} · ${run.n_probe} probe images`;
  const last = run.steps.length ? run.steps[run.steps.length - 1].step : 0;
  const defaultLayer = run.layers.length > 1 ? run.layers[run.layers.length - 2] : run.layers[0];
  init({step: last, layer: defaultLayer, view: VIEWS[0].id});
  if (!run.steps.some((s) => s.step === state.step)) set({step: last});
  if (!VIEWS.some((v) => v.id === state.view)) set({view: VIEWS[0].id});
  if (!run.layers.includes(state.layer)) set({layer: defaultLayer});

  const ctx = {run, state, set};
  ctx.timeline = mountTimeline(document.getElementById('timeline'), ctx);

  const tabs = document.getElementById('tabs');
  const viewEl = document.getElementById('view');
  const mounted = new Map();
  for (const view of VIEWS) {
    tabs.append(h('button', {class: 'tab', role: 'tab', type: 'button', 'data-view': view.id, 'data-testid': `tab-${view.id}`,
      onclick: () => set({view: view.id}, {push: true})}, view.title));
  }

  function showView() {
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.view === state.view));
    for (const [id, entry] of mounted) entry.el.hidden = id !== state.view;
    const view = VIEWS.find((v) => v.id === state.view);
    if (!mounted.has(view.id)) {
      const el = h('div', {class: 'view-body', 'data-view': view.id});
      viewEl.append(el);
      mounted.set(view.id, {el, view});
      try { view.mount(el, ctx); } catch (err) { showError(el, err); }
    }
    const entry = mounted.get(view.id);
    entry.el.hidden = false;
    safeUpdate(entry.view, entry.el, new Set(['step', 'layer', 'sel', 'view']));
  }

  function safeUpdate(view, el, changed) {
    Promise.resolve().then(() => view.update && view.update(ctx, changed)).catch((err) => console.error(err));
  }

  const side = document.getElementById('side');
  selection.mount(side, ctx);
  subscribe((changed) => {
    if (changed.has('view')) { showView(); } else {
      const entry = mounted.get(state.view);
      if (entry) safeUpdate(entry.view, entry.el, changed);
    }
    safeUpdate(selection, side, changed);
  });
  showView();
  safeUpdate(selection, side, new Set(['step', 'sel']));
}

main();
