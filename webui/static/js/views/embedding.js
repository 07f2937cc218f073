// The Embedding tab: a 2-D projection of the chosen layer at the current step,
// aligned across steps so points move smoothly while scrubbing, and the
// clusters of that layer (galleries, sub-clusters of a class, purity over time).
//
// Projections are computed on the server in the background and cached in the
// db; this view starts the computation, shows its progress, and keeps every
// layout it has fetched, so scrubbing back and forth costs no request.

import {getJSON, postJSON, getBinary, thumbURL} from '../api.js';
import {h, clear, classColor, pct, showError} from '../dom.js';
import {createScatter} from '../scatter.js';

const COLORS = [['label', 'true class'], ['pred', 'predicted class'], ['correct', 'correct / wrong'], ['cluster', 'cluster']];
const GOOD = '#2f9e44'; const BAD = '#d9480f'; const NOISE = '#bbbbbb';
const POLL_MS = 600;
const GALLERY_PAGE = 24;
const SEED = 0;

const api = (ctx, path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}${path}`;

function select(attrs, options, value) {
  return h('select', attrs, options.map(([v, label, extra]) => h('option', {value: v, selected: String(v) === String(value), ...(extra || {})}, label)));
}

let V = null; // this view's DOM and caches (one run page = one mount)

export default {
  id: 'embedding',
  title: 'Embedding',

  mount(el, ctx) {
    const {run, state} = ctx;
    const layerSel = select({'aria-label': 'layer', 'data-testid': 'emb-layer'}, run.layers.map((l) => [l, l]), state.layer);
    const methodSel = select({'aria-label': 'projection method', 'data-testid': 'emb-method'}, [['pca', 'PCA'], ['tsne', 't-SNE'], ['umap', 'UMAP']], state.method || 'tsne');
    const colorSel = select({'aria-label': 'colour by', 'data-testid': 'emb-color'}, COLORS, state.color || 'label');
    const mosaicBox = h('input', {type: 'checkbox', 'data-testid': 'emb-mosaic'});
    const progress = h('div', {class: 'emb-progress', 'data-testid': 'emb-progress', hidden: true});
    const note = h('span', {class: 'muted small emb-note', 'data-testid': 'emb-note'});
    const box = h('div', {class: 'scatter-box', 'data-testid': 'scatter'});
    const overlay = h('div', {class: 'scatter-overlay', hidden: true});
    const legend = h('div', {class: 'emb-legend', 'data-testid': 'emb-legend'});
    const tooltip = h('div', {class: 'tooltip emb-tooltip', 'data-testid': 'emb-tooltip', hidden: true});

    layerSel.addEventListener('change', () => ctx.set({layer: layerSel.value}, {push: true}));
    methodSel.addEventListener('change', () => ctx.set({method: methodSel.value}, {push: true}));
    colorSel.addEventListener('change', () => ctx.set({color: colorSel.value}, {push: true}));
    mosaicBox.addEventListener('change', () => setMosaic(ctx, mosaicBox.checked));

    const clusters = mountClusters(ctx);
    clear(el).append(
      h('div', {class: 'panel emb-panel'},
        h('div', {class: 'controls'},
          h('label', {class: 'inline'}, 'Layer', layerSel),
          h('label', {class: 'inline'}, 'Projection', methodSel),
          h('label', {class: 'inline'}, 'Colour by', colorSel),
          h('label', {class: 'inline', title: 'Draw each image at its position'}, mosaicBox, 'Mosaic'),
          note),
        progress,
        h('div', {class: 'emb-main'}, h('div', {class: 'scatter-wrap'}, box, overlay), legend),
        h('p', {class: 'muted small emb-help'}, 'Hover a point to see its image; click to select it. Scroll to zoom, drag to pan, double-click to reset.')),
      clusters.el,
      tooltip);

    V = {
      el, layerSel, methodSel, colorSel, mosaicBox, progress, note, box, overlay, legend, tooltip, clusters,
      probes: null, index: new Map(), preds: new Map(), layouts: new Map(), statusKey: null, poll: null, seq: 0,
      shownStep: null, shownProvisional: false, sprite: null, clusterCache: new Map(),
    };
    V.scatter = createScatter(box, {
      onHover: (i, x, y) => showTooltip(ctx, i, x, y),
      onClick: (i) => ctx.set({sel: V.probes.probe_id[i]}, {push: true}),
    });
    loadMethods(ctx);
  },

  async update(ctx, changed) {
    if (!V) return;
    const {state} = ctx;
    if (changed.has('layer')) V.layerSel.value = state.layer;
    if (changed.has('method') && state.method) V.methodSel.value = state.method;
    if (changed.has('color')) V.colorSel.value = state.color || 'label';
    try {
      if (!V.probes) {
        V.probes = await getJSON(api(ctx, '/probes'));
        V.probes.probe_id.forEach((id, i) => V.index.set(id, i));
      }
      if (changed.has('layer') || changed.has('method') || changed.has('view')) await startProjection(ctx);
      if (['step', 'layer', 'method', 'color', 'k', 'view'].some((k) => changed.has(k))) await showStep(ctx);
      if (changed.has('sel') || changed.has('view')) V.scatter.setSelected(V.index.has(state.sel) ? V.index.get(state.sel) : null);
      V.clusters.update(changed);
    } catch (err) {
      showError(V.overlay, err); V.overlay.hidden = false;
    }
  },
};

// ---------------------------------------------------------------- projection

const method = (ctx) => ctx.state.method || 'tsne';
const projKey = (ctx, step) => `${ctx.state.layer}|${method(ctx)}|${SEED}|${step}`;
const projParams = (ctx) => ({layer: ctx.state.layer, method: method(ctx), seed: SEED});

async function loadMethods(ctx) {
  try {
    const {methods} = await getJSON(api(ctx, '/projection/methods'));
    for (const m of methods) {
      const opt = [...V.methodSel.options].find((o) => o.value === m.id);
      if (!opt) continue;
      opt.disabled = !m.available;
      if (!m.available) { opt.title = m.hint; opt.textContent = `${m.label} (not installed)`; }
    }
    const chosen = methods.find((m) => m.id === method(ctx));
    if (!chosen || !chosen.available) ctx.set({method: 'tsne'});
  } catch (err) { showError(V.note, err); }
}

async function startProjection(ctx) {
  const key = `${ctx.state.layer}|${method(ctx)}`;
  if (V.statusKey === key) return;
  V.statusKey = key;
  clearTimeout(V.poll);
  const status = await postJSON(api(ctx, '/projection'), {}, projParams(ctx));
  onStatus(ctx, key, status);
}

function onStatus(ctx, key, status) {
  if (V.statusKey !== key) return; // the user moved on to another layer or method
  const label = V.methodSel.selectedOptions[0] ? V.methodSel.selectedOptions[0].textContent : status.method;
  const failed = Object.keys(status.failed || {}).length;
  const finished = !status.running;
  V.progress.hidden = finished && !status.error && !failed;
  clear(V.progress);
  if (!V.progress.hidden) {
    const frac = status.total ? status.done / status.total : 1;
    V.progress.append(
      h('div', {class: 'progress', role: 'progressbar', 'aria-valuenow': status.done, 'aria-valuemax': status.total},
        finished ? null : h('span', {class: 'spin'}),
        `${label} of ${status.layer}: ${status.done} / ${status.total} steps ${finished ? 'computed' : 'computed, continuing in the background'}`),
      h('div', {class: 'bar'}, h('span', {style: `width:${(100 * frac).toFixed(1)}%`})));
    if (status.error) V.progress.append(h('div', {class: 'error', text: status.error}));
    if (failed) V.progress.append(h('div', {class: 'error', text: `${failed} step(s) could not be projected: ${Object.entries(status.failed).map(([s, m]) => `step ${s}: ${m}`).join('; ')}`}));
  }
  // The step on screen was pending or provisional and is now cached: show the real one.
  const cached = new Set(status.cached_steps);
  if ((V.shownProvisional || V.shownStep === null) && cached.has(ctx.state.step)) {
    V.layouts.delete(projKey(ctx, ctx.state.step));
    showStep(ctx).catch((err) => showError(V.overlay, err));
  }
  if (status.running) {
    V.poll = setTimeout(async () => {
      try { onStatus(ctx, key, await getJSON(api(ctx, '/projection'), projParams(ctx))); } catch (err) { showError(V.progress, err); }
    }, POLL_MS);
  } else {
    prefetch(ctx, status.cached_steps);
  }
}

// Once a sequence is cached, fetch every step's layout (8 bytes a point), so
// scrubbing never waits for the network.
async function prefetch(ctx, steps) {
  for (const step of steps) {
    const key = projKey(ctx, step);
    if (V.layouts.has(key)) continue;
    try {
      const res = await getBinary(api(ctx, `/steps/${step}/projection`), projParams(ctx));
      if (!res.meta.provisional) V.layouts.set(key, res.arrays.xy);
    } catch (_) { /* shown when that step is visited */ }
  }
}

async function layoutOf(ctx, step) {
  const key = projKey(ctx, step);
  if (V.layouts.has(key)) return {xy: V.layouts.get(key), provisional: false};
  const res = await getBinary(api(ctx, `/steps/${step}/projection`), projParams(ctx));
  if (res.meta.pending) return {xy: null, pending: true};
  if (!res.meta.provisional) V.layouts.set(key, res.arrays.xy);
  return {xy: res.arrays.xy, provisional: res.meta.provisional, alignedTo: res.meta.aligned_to};
}

async function predsOf(ctx, step) {
  if (!V.preds.has(step)) {
    V.preds.set(step, getBinary(api(ctx, `/steps/${step}/predictions`)).then((r) => r.arrays).catch((e) => { V.preds.delete(step); throw e; }));
  }
  return V.preds.get(step);
}

async function showStep(ctx) {
  const seq = ++V.seq;
  const step = ctx.state.step;
  const colorBy = ctx.state.color || 'label';
  const [layout, preds, clusters] = await Promise.all([
    layoutOf(ctx, step),
    predsOf(ctx, step),
    colorBy === 'cluster' ? V.clusters.labelsAt(step) : null,
  ]).catch((err) => { if (seq === V.seq) { showError(V.overlay, err); V.overlay.hidden = false; } return [null]; });
  if (seq !== V.seq || !layout) return; // a later step was asked for meanwhile
  V.overlay.hidden = true;
  if (layout.pending) {
    V.shownStep = null;
    clear(V.overlay).append(h('div', {class: 'progress'}, h('span', {class: 'spin'}), 'Computing the first layout…'));
    V.overlay.hidden = false;
    return;
  }
  V.preds.current = preds;
  V.shownStep = step; V.shownProvisional = !!layout.provisional;
  V.note.textContent = layout.provisional ? `step ${step}: provisional layout (aligned to step ${layout.alignedTo ?? '–'}), the aligned one is being computed` : '';
  colour(ctx, preds, clusters);
  V.scatter.setPositions(layout.xy, {step});
  V.scatter.setSelected(V.index.has(ctx.state.sel) ? V.index.get(ctx.state.sel) : null);
}

function colour(ctx, preds, clusters) {
  const names = ctx.run.class_names;
  const colorBy = ctx.state.color || 'label';
  const n = V.probes.label.length;
  let groups; let palette = classColor; let items;
  if (colorBy === 'pred') {
    groups = Int32Array.from(preds.pred);
    items = names.map((name, i) => [classColor(i), name]);
  } else if (colorBy === 'correct') {
    groups = Int32Array.from(preds.correct, (c) => (c ? 1 : 0));
    palette = (g) => (g ? GOOD : BAD);
    const right = groups.reduce((a, b) => a + b, 0);
    items = [[GOOD, `correct (${right})`], [BAD, `wrong (${n - right})`]];
  } else if (colorBy === 'cluster' && clusters) {
    groups = clusters.labels;
    palette = (g) => (g < 0 ? NOISE : classColor(g));
    items = clusters.meta.clusters.map((c) => [classColor(c.id), `cluster ${c.id} · mostly ${names[c.majority]} (${pct(c.purity)})`]);
    if (clusters.meta.noise) items.push([NOISE, `noise (${clusters.meta.noise})`]);
  } else {
    groups = Int32Array.from(V.probes.label);
    items = names.map((name, i) => [classColor(i), name]);
  }
  V.scatter.setGroups(groups, palette);
  clear(V.legend).append(...items.map(([c, text]) => h('div', {class: 'legend-item'}, h('span', {class: 'swatch', style: `background:${c}`}), text)));
}

function setMosaic(ctx, on) {
  if (!on) { V.scatter.setMosaic(null); return; }
  if (!V.sprite) {
    // One PNG holding every thumbnail on a grid (ceil(sqrt(N)) columns), fetched once per run.
    const n = ctx.run.n_probe || (V.probes ? V.probes.probe_id.length : 1);
    const cell = n > 2500 ? 24 : 32;
    const image = new Image();
    image.src = api(ctx, `/sprite.png?size=${cell}`);
    V.sprite = {image, cols: Math.ceil(Math.sqrt(V.probes ? V.probes.probe_id.length : n)), cell};
  }
  V.scatter.setMosaic(V.sprite);
}

function showTooltip(ctx, i, x, y) {
  const tip = V.tooltip;
  if (i === null || i === undefined || !V.probes) { tip.hidden = true; return; }
  const names = ctx.run.class_names;
  const id = V.probes.probe_id[i]; const label = V.probes.label[i];
  const p = V.preds.current;
  const pred = p ? p.pred[i] : null;
  clear(tip).append(
    h('img', {class: 'thumb big', src: thumbURL(ctx.run.run_id, id), alt: `probe ${id}`}),
    h('div', {class: 'tip-text'},
      h('div', {}, h('b', {}, names[label]), h('span', {class: 'muted'}, ` · #${id}`)),
      p ? h('div', {class: pred === label ? 'good' : 'bad'}, `predicted ${names[pred]}`) : null,
      p ? h('div', {class: 'muted'}, `confidence ${pct(p.confidence[i])}`) : null));
  tip.hidden = false;
  const w = 240; const left = x + 14 + w > window.innerWidth ? x - w - 10 : x + 14;
  tip.style.left = `${left}px`; tip.style.top = `${Math.min(y + 12, window.innerHeight - 140)}px`;
}

// ---------------------------------------------------------------- clusters

function mountClusters(ctx) {
  const {run} = ctx;
  let clusterMethod = 'kmeans';
  let subK = 3; let subCls = 0;
  const methodSel = select({'aria-label': 'cluster method', 'data-testid': 'cluster-method'}, [['kmeans', 'k-means'], ['hdbscan', 'HDBSCAN']], clusterMethod);
  // k-means defaults to one cluster per class: purity then reads as how well classes separate.
  const defaultK = Math.max(2, Math.min(50, ctx.run.class_names.length || 8));
  const kInput = h('input', {type: 'number', min: 2, max: 50, value: ctx.state.k || defaultK, 'aria-label': 'k', 'data-testid': 'cluster-k', class: 'k-input'});
  const summary = h('span', {class: 'muted small', 'data-testid': 'cluster-summary'});
  const chart = h('div', {class: 'purity-chart', 'data-testid': 'purity-chart'});
  const list = h('div', {class: 'cluster-list', 'data-testid': 'cluster-list'});
  const subSel = select({'aria-label': 'class', 'data-testid': 'subcluster-class'}, run.class_names.map((c, i) => [i, c]), subCls);
  const subKInput = h('input', {type: 'number', min: 2, max: 20, value: subK, 'aria-label': 'sub-cluster k', 'data-testid': 'subcluster-k', class: 'k-input'});
  const subList = h('div', {class: 'cluster-list', 'data-testid': 'subcluster-list'});
  const el = h('div', {class: 'panel clusters-panel', 'data-testid': 'clusters'},
    h('h2', {}, 'Clusters'),
    h('div', {class: 'controls'},
      h('label', {class: 'inline'}, 'Method', methodSel),
      h('label', {class: 'inline', title: 'number of k-means clusters'}, 'k', kInput),
      summary),
    h('h3', {}, 'Purity over the run'), chart,
    h('h3', {}, 'Clusters at this step'), list,
    h('h3', {}, 'Sub-clusters inside one class'),
    h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'Class', subSel), h('label', {class: 'inline'}, 'k', subKInput)),
    subList);

  const params = () => ({layer: ctx.state.layer, method: clusterMethod, k: ctx.state.k || defaultK, seed: SEED});
  const cacheKey = (step) => `${ctx.state.layer}|${clusterMethod}|${clusterMethod === 'kmeans' ? (ctx.state.k || defaultK) : ''}|${step}`;
  kInput.disabled = clusterMethod !== 'kmeans';

  async function labelsAt(step) {
    const key = cacheKey(step);
    if (!V.clusterCache.has(key)) {
      V.clusterCache.set(key, getBinary(api(ctx, `/steps/${step}/clusters`), params())
        .then((r) => ({labels: r.arrays.labels, meta: r.meta}))
        .catch((e) => { V.clusterCache.delete(key); throw e; }));
    }
    return V.clusterCache.get(key);
  }

  let purityKey = null; let purity = null;
  async function drawPurity() {
    const key = `${ctx.state.layer}|${clusterMethod}|${ctx.state.k || defaultK}`;
    if (key !== purityKey) {
      purityKey = key; purity = null;
      clear(chart).append(h('div', {class: 'progress'}, h('span', {class: 'spin'}), 'Clustering every step…'));
      try { purity = await getJSON(api(ctx, '/clusters/purity'), params()); } catch (err) { showError(chart, err); return; }
      if (purityKey !== key) return;
    }
    if (purity) renderPurity(chart, purity, ctx.state.step);
  }

  async function drawClusters() {
    const step = ctx.state.step;
    let res;
    try { res = await labelsAt(step); } catch (err) { showError(list, err); return; }
    if (step !== ctx.state.step) return;
    const {labels, meta} = res;
    summary.textContent = `${meta.clusters.length} clusters${meta.noise ? `, ${meta.noise} noise points` : ''} · purity ${pct(meta.purity)}`;
    clear(list).append(...meta.clusters.map((c) => clusterCard(ctx, c, labels, `cluster ${c.id}`,
      `${c.size} images · majority ${run.class_names[c.majority]} (${pct(c.purity)}) · accuracy ${pct(c.accuracy)}`, classColor(c.id))));
    if (meta.noise) list.append(clusterCard(ctx, {id: -1}, labels, 'noise', `${meta.noise} images in no cluster`, NOISE));
  }

  async function drawSub() {
    const step = ctx.state.step;
    clear(subList).append(h('div', {class: 'progress'}, h('span', {class: 'spin'}), 'Clustering…'));
    let r;
    try {
      r = await getBinary(api(ctx, `/steps/${step}/subclusters`), {layer: ctx.state.layer, cls: subCls, k: subK, seed: SEED});
    } catch (err) { showError(subList, err); return; }
    if (step !== ctx.state.step) return;
    const {index, labels} = r.arrays;
    // Map back to probe order: a full-length label array with -2 for other classes.
    const full = new Int32Array(V.probes.label.length).fill(-2);
    index.forEach((p, j) => { full[p] = labels[j]; });
    clear(subList).append(...r.meta.clusters.map((c) => clusterCard(ctx, c, full, `group ${c.id} of class ${r.meta.class_name}`,
      `${c.size} images · accuracy ${pct(c.accuracy)} · mostly predicted ${run.class_names[c.majority]}`, classColor(c.id))));
  }

  methodSel.addEventListener('change', () => { clusterMethod = methodSel.value; kInput.disabled = clusterMethod !== 'kmeans'; refresh(true); });
  kInput.addEventListener('change', () => {
    const k = Math.max(2, Math.min(50, Math.round(Number(kInput.value)) || defaultK));
    kInput.value = k; ctx.set({k}, {push: true});
  });
  subSel.addEventListener('change', () => { subCls = Number(subSel.value); drawSub(); });
  subKInput.addEventListener('change', () => { subK = Math.max(2, Math.min(20, Math.round(Number(subKInput.value)) || 3)); subKInput.value = subK; drawSub(); });

  let timer = null;
  function renderPurityMarker() { if (purity) renderPurity(chart, purity, ctx.state.step); }

  function refresh(all) {
    drawClusters(); drawPurity(); drawSub();
    if (all && (ctx.state.color === 'cluster')) showStep(ctx).catch(() => {});
  }

  return {
    el,
    labelsAt,
    update(changed) {
      if (changed.has('k')) kInput.value = ctx.state.k || defaultK;
      if (['layer', 'k', 'view'].some((k) => changed.has(k))) { clearTimeout(timer); refresh(false); } else if (changed.has('step')) {
        // While the timeline is scrubbed or played, cluster only where it rests.
        renderPurityMarker();
        clearTimeout(timer); timer = setTimeout(() => refresh(false), 250);
      }
    },
  };
}

function clusterCard(ctx, c, labels, title, text, color) {
  const members = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === c.id) members.push(i);
  const gallery = h('div', {class: 'gallery'});
  let shown = 0;
  const more = h('button', {class: 'btn small', type: 'button'}, 'more');
  function page() {
    const preds = V.preds.current;
    for (const i of members.slice(shown, shown + GALLERY_PAGE)) {
      const id = V.probes.probe_id[i];
      const right = preds ? preds.pred[i] === V.probes.label[i] : null;
      gallery.append(h('figure', {title: `#${id} · ${ctx.run.class_names[V.probes.label[i]]}${preds ? ` → ${ctx.run.class_names[preds.pred[i]]}` : ''}`,
        'data-probe': id, onclick: () => ctx.set({sel: id}, {push: true})},
      h('img', {class: `thumb${right === null ? '' : right ? ' right' : ' wrong'}`, loading: 'lazy', src: thumbURL(ctx.run.run_id, id), alt: `probe ${id}`})));
    }
    shown = Math.min(members.length, shown + GALLERY_PAGE);
    more.hidden = shown >= members.length;
    more.textContent = `more (${members.length - shown})`;
  }
  more.addEventListener('click', page);
  page();
  return h('div', {class: 'cluster-card', 'data-cluster': c.id},
    h('div', {class: 'cluster-head'}, h('span', {class: 'swatch', style: `background:${color}`}), h('b', {}, title), h('span', {class: 'muted small'}, text)),
    gallery, more);
}

function renderPurity(el, data, current) {
  const W = 600; const H = 120; const L = 42; const R = 10; const T = 8; const B = 22;
  const steps = data.steps; const values = data.purity;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = (tag, attrs, ...kids) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    e.append(...kids);
    return e;
  };
  const x = (i) => L + (steps.length > 1 ? (i * (W - L - R)) / (steps.length - 1) : (W - L - R) / 2);
  const y = (v) => T + (1 - v) * (H - T - B);
  const root = svg('svg', {viewBox: `0 0 ${W} ${H}`, class: 'purity-svg', role: 'img', 'aria-label': 'cluster purity per step'});
  for (const v of [0, 0.5, 1]) {
    root.append(svg('line', {x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid'}), svg('text', {x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis'}, `${v * 100}%`));
  }
  let d = ''; let pen = false;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`; pen = true;
  });
  root.append(svg('path', {d, class: 'line'}));
  const i = steps.indexOf(current);
  if (i >= 0) {
    root.append(svg('line', {x1: x(i), x2: x(i), y1: T, y2: H - B, class: 'now'}));
    if (values[i] !== null) root.append(svg('circle', {cx: x(i), cy: y(values[i]), r: 4, class: 'dot'}));
  }
  root.append(svg('text', {x: L, y: H - 6, class: 'axis'}, `step ${steps[0] ?? ''}`), svg('text', {x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis'}, `step ${steps[steps.length - 1] ?? ''}`));
  if (i >= 0 && values[i] !== null) {
    const right = x(i) > W / 2; // keep the label inside the chart
    root.append(svg('text', {x: x(i) + (right ? -6 : 6), y: T + 10, 'text-anchor': right ? 'end' : 'start', class: 'axis now-label'}, `${pct(values[i])} at step ${current}`));
  }
  clear(el).append(root);
  el.dataset.step = String(current);
}
