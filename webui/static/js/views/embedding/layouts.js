// The Embedding tab's layouts: the server computes a projection sequence in
// the background and caches it in the db; this starts it, shows its progress,
// and keeps every layout it has fetched, so scrubbing back and forth costs no
// request. Once a sequence is cached, every step's layout (4 bytes a point:
// format=lean, uint16 per axis) is prefetched, so scrubbing never waits for the network.

import {getJSON, postJSON, getBinary} from '../../api.js';
import {h, clear, showError} from '../../dom.js';

const POLL_MS = 600;
// While the run is still training, a finished sequence is asked again this often: the server
// extends it to the steps that landed since (webui/projections.py:status), and they appear here.
const FOLLOW_MS = 3000;
export const SEED = 0;

export const methodOf = (ctx) => ctx.state.method || 'tsne';

// progress: the element for the job's progress; methodLabel(): the chosen
// method's name; onCached(steps): the steps whose layout is now cached.
export function layouts(ctx, {progress, methodLabel, onCached}) {
  const api = (path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}${path}`;
  const keyOf = (step) => `${ctx.state.layer}|${methodOf(ctx)}|${SEED}|${step}`;
  const params = () => ({layer: ctx.state.layer, method: methodOf(ctx), seed: SEED});
  const layoutParams = () => ({...params(), format: 'lean'});
  const cache = new Map();
  const inflight = new Map(); // key -> the request of a layout not yet received
  // Prefetching waits for the step on screen to be drawn (drawn()), so the first paint
  // fetches one layout, not the whole sequence; then the steps nearest it come first.
  let markDrawn;
  const drawnOnce = new Promise((resolve) => { markDrawn = resolve; });
  let statusKey = null;
  let poll = null;

  function drawProgress(status) {
    const failed = Object.keys(status.failed || {}).length;
    const finished = !status.running;
    progress.hidden = finished && !status.error && !failed;
    clear(progress);
    if (progress.hidden) return;
    const frac = status.total ? status.done / status.total : 1;
    progress.append(
      h('div', {class: 'progress', role: 'progressbar', 'aria-valuenow': status.done, 'aria-valuemax': status.total},
        finished ? null : h('span', {class: 'spin'}),
        `${methodLabel() || status.method} of ${status.layer}: ${status.done} / ${status.total} steps ${finished ? 'computed' : 'computed, continuing in the background'}`),
      h('div', {class: 'bar'}, h('span', {style: `width:${(100 * frac).toFixed(1)}%`})));
    if (status.error) progress.append(h('div', {class: 'error', text: status.error}));
    if (failed) progress.append(h('div', {class: 'error', text: `${failed} step(s) could not be projected: ${Object.entries(status.failed).map(([s, m]) => `step ${s}: ${m}`).join('; ')}`}));
  }

  function onStatus(key, status) {
    if (statusKey !== key) return; // the user moved on to another layer or method
    drawProgress(status);
    onCached(new Set(status.cached_steps));
    if (!status.running) prefetch(status.cached_steps);
    if (status.running || !ctx.run.ended_at) {
      poll = setTimeout(async () => {
        try { onStatus(key, await getJSON(api('/projection'), params())); } catch (err) { showError(progress, err); }
      }, status.running ? POLL_MS : FOLLOW_MS);
    }
  }

  // {xy, provisional, alignedTo}, or {pending: true} before the first layout exists.
  async function at(step) {
    const key = keyOf(step);
    if (cache.has(key)) return {xy: cache.get(key), provisional: false};
    // One request per layout in flight, however many callers ask for it meanwhile.
    if (!inflight.has(key)) inflight.set(key, getBinary(api(`/steps/${step}/projection`), layoutParams()).finally(() => inflight.delete(key)));
    const res = await inflight.get(key);
    if (res.meta.pending) return {xy: null, pending: true};
    if (!res.meta.provisional) cache.set(key, res.arrays.xy);
    return {xy: res.arrays.xy, provisional: res.meta.provisional, alignedTo: res.meta.aligned_to};
  }

  async function prefetch(steps) {
    await drawnOnce;
    const here = ctx.state.step;
    for (const step of [...steps].sort((a, b) => Math.abs(a - here) - Math.abs(b - here))) {
      try { await at(step); } catch (_) { /* shown when that step is visited */ }
    }
  }

  return {
    // Start (or join) the sequence of the chosen layer and method.
    async start() {
      const key = `${ctx.state.layer}|${methodOf(ctx)}`;
      if (statusKey === key) return;
      statusKey = key;
      clearTimeout(poll);
      onStatus(key, await postJSON(api('/projection'), {}, params()));
    },
    at,
    // A provisional layout on screen, now cached: the next at() asks again (a request in flight may be provisional).
    forget(step) { cache.delete(keyOf(step)); inflight.delete(keyOf(step)); },
    drawn() { markDrawn(); },
    destroy() { statusKey = null; clearTimeout(poll); },
  };
}

// Trails: each point's path across every step of the aligned layout
// sequence, for the highlighted images (or the one selected image), the
// current step marked. At most MAX_TRAILS paths, so a big selection stays legible.
export const MAX_TRAILS = 300;

// mask: the highlighted rows (or null); selRow: the selected image's row (or -1).
// at(step) -> {xy} from the layout cache. Returns what scatter.setTrails takes.
export async function trailsFor(steps, at, step, mask, selRow) {
  const rows = [];
  if (mask) { for (let i = 0; i < mask.length && rows.length < MAX_TRAILS; i++) if (mask[i]) rows.push(i); } else if (selRow >= 0) rows.push(selRow);
  if (!rows.length) return {rows, xy: [], current: -1, cut: false};
  const layouts = await Promise.all(steps.map((s) => at(s)));
  if (layouts.some((l) => !l.xy)) return {rows: [], xy: [], current: -1, cut: false}; // the first layout is still being computed
  const cut = !!mask && mask.reduce((a, b) => a + b, 0) > rows.length;
  return {rows, xy: layouts.map((l) => l.xy), current: steps.indexOf(step), cut};
}
