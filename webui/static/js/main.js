// Wires the run page: loads the run, sets up the URL state, mounts the
// timeline, the tabs (one view module each) and the side panel, and hands
// every state change to them. A view is mounted the first time its tab is shown.

import {getJSON} from './api.js';
import {h, showError} from './dom.js';
import {state, init, set, subscribe} from './state.js';
import * as timeline from './timeline.js';
import {VIEWS} from './views/index.js';
import * as selection from './views/selection.js';
import * as picked from './views/selection/gallery.js';
import {selectIds} from './pick.js';

const ALL = new Set(['step', 'layer', 'sel', 'view']);

// update() may be async: a failure is logged, it never stops the other views.
function safeUpdate(mounted, changed) {
  Promise.resolve().then(() => mounted.update(changed)).catch((err) => console.error(err));
}

function mountSafely(view, el, ctx) {
  try { return view.mount(el, ctx); } catch (err) {
    showError(el, err);
    return {update() {}, destroy() {}};
  }
}

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
  // The one way any view makes a selection: ctx.select(probeIds, 'where it came from').
  ctx.select = (ids, source) => selectIds(ctx, ids, source);
  const line = timeline.mount(document.getElementById('timeline'), ctx);
  ctx.timeline = line;

  const tabs = document.getElementById('tabs');
  const viewEl = document.getElementById('view');
  const mounted = new Map(); // view id -> {el, view: what mount returned}
  for (const view of VIEWS) {
    tabs.append(h('button', {class: 'tab', role: 'tab', type: 'button', 'data-view': view.id, 'data-testid': `tab-${view.id}`,
      onclick: () => set({view: view.id}, {push: true})}, view.title));
  }

  function showView() {
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.view === state.view));
    for (const [id, entry] of mounted) entry.el.hidden = id !== state.view;
    if (!mounted.has(state.view)) {
      const el = h('div', {class: 'view-body', 'data-view': state.view});
      viewEl.append(el);
      mounted.set(state.view, {el, view: mountSafely(VIEWS.find((v) => v.id === state.view), el, ctx)});
    }
    const entry = mounted.get(state.view);
    entry.el.hidden = false;
    safeUpdate(entry.view, ALL);
  }

  const side = selection.mount(document.getElementById('side-one'), ctx);
  const set_ = picked.mount(document.getElementById('side-set'), ctx);
  subscribe((changed) => {
    line.update(changed);
    if (changed.has('view')) { showView(); } else {
      const entry = mounted.get(state.view);
      if (entry) safeUpdate(entry.view, changed);
    }
    safeUpdate(side, changed);
    safeUpdate(set_, changed);
  });
  showView();
  safeUpdate(side, new Set(['step', 'sel']));
  safeUpdate(set_, new Set(['step', 'pick']));

  // Leaving the page stops every poll; a page restored from the back-forward
  // cache is reloaded rather than left with stopped views.
  window.addEventListener('pagehide', () => {
    for (const entry of [...mounted.values()].map((e) => e.view).concat(side, set_, line)) entry.destroy();
  });
  window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); });
}

main();
