// The Embedding tab's clusters panel: the clusters of the chosen layer at the
// current step (galleries), their purity over the run, and sub-clusters
// inside one class. ctx.emb gives the probes and the current predictions
// (loaded by the parent) and redraw(), which recolours the scatter plot.
// Clusters have their own palette (clusterColor), never the classes': a
// cluster drawn in a class's colour reads as that class.

import {getJSON, getBinary, thumbURL} from '../../api.js';
import {h, clear, pct, showError, fillPanel, select} from '../../dom.js';
import {renderPurity} from './purity.js';
import {SEED} from './layouts.js';
import {pickButton} from '../selection/gallery.js';
import * as separation from './subsep.js';

export const NOISE = '#bbbbbb';
// Dark, saturated colours that the class palette (dom.js classColor) does not use; then darker golden-angle hues.
const CLUSTER_PALETTE = ['#1b9e77', '#7570b3', '#e7298a', '#66a61e', '#a6761d', '#1f3a93', '#8c0c4c', '#006d5b',
  '#b8860b', '#5d3a9b', '#3d5a1e', '#c71585'];
export function clusterColor(i) {
  if (i < 0) return NOISE;
  if (i < CLUSTER_PALETTE.length) return CLUSTER_PALETTE[i];
  return `hsl(${(i * 137.508 + 20) % 360}, 70%, 32%)`;
}
// HDBSCAN's parameters: the server's defaults (webui/clusters.py), kept in ctx.state as mcs and ms.
const HDBSCAN = {mcs: ['min cluster size', 10, 2], ms: ['min samples', 3, 1]};
const HDBSCAN_MAX = 500;
const GALLERY_PAGE = 24;
const progress = (text) => h('div', {class: 'progress'}, h('span', {class: 'spin'}), text);
// Clustering runs in a background job on the server: while it works the answer is a 202 with
// meta.pending (and the job's progress), and the panel asks again this often.
export const POLL_MS = 700;
const later = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function clusterCard(ctx, c, labels, title, text, color) {
  const {probes, preds} = ctx.emb;
  const members = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] === c.id) members.push(i);
  const gallery = h('div', {class: 'gallery'});
  let shown = 0;
  const more = h('button', {class: 'btn small', type: 'button'}, 'more');
  function page() {
    const p = preds();
    for (const i of members.slice(shown, shown + GALLERY_PAGE)) {
      const id = probes().probe_id[i];
      const label = probes().label[i];
      const right = p ? p.pred[i] === label : null;
      gallery.append(h('figure', {title: `#${id} · ${ctx.run.class_names[label]}${p ? ` → ${ctx.run.class_names[p.pred[i]]}` : ''}`,
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
    h('div', {class: 'cluster-head'}, h('span', {class: 'swatch', style: `background:${color}`}), h('b', {}, title), h('span', {class: 'muted small'}, text),
      pickButton(ctx, members.map((i) => probes().probe_id[i]), `${title} at step ${ctx.state.step}`)),
    gallery, more);
}

export function mount(el, ctx) {
  const {run} = ctx;
  const api = (path) => `/api/runs/${encodeURIComponent(run.run_id)}${path}`;
  const methodOf = () => (ctx.state.cmethod === 'hdbscan' ? 'hdbscan' : 'kmeans'); // in the URL as cmethod
  let method = methodOf();
  // The sub-cluster class and k live in the URL (subcls, subk).
  const subClsOf = () => (ctx.state.subcls >= 0 && ctx.state.subcls < run.class_names.length ? ctx.state.subcls : 0);
  const subKOf = () => Math.max(2, Math.min(20, ctx.state.subk || 3));
  // k-means defaults to one cluster per class: purity then reads as how well classes separate.
  const defaultK = Math.max(2, Math.min(50, run.class_names.length || 8));
  const kOf = () => ctx.state.k || defaultK;
  const methodSel = select({'aria-label': 'cluster method', 'data-testid': 'cluster-method'}, [['kmeans', 'k-means'], ['hdbscan', 'HDBSCAN']], method);
  const kInput = h('input', {type: 'number', min: 2, max: 50, value: kOf(), 'aria-label': 'k', 'data-testid': 'cluster-k', class: 'k-input'});
  const hdbOf = (key) => ctx.state[key] || HDBSCAN[key][1];
  const hdbInputs = Object.fromEntries(Object.entries(HDBSCAN).map(([key, [label, , lo]]) => [key,
    h('input', {type: 'number', min: lo, max: HDBSCAN_MAX, value: hdbOf(key), 'aria-label': label, 'data-testid': `cluster-${key}`, class: 'k-input',
      onchange: (e) => {
        const v = Math.max(lo, Math.min(HDBSCAN_MAX, Math.round(Number(e.target.value)) || HDBSCAN[key][1]));
        e.target.value = v; ctx.set({[key]: v}, {push: true});
      }})]));
  const hdbBits = h('span', {hidden: true},
    h('label', {class: 'inline', title: 'HDBSCAN: the smallest group that counts as a cluster'}, 'min cluster size', hdbInputs.mcs),
    h('label', {class: 'inline', title: 'HDBSCAN: how many neighbours make a point a core point; higher marks more points as noise'}, 'min samples', hdbInputs.ms));
  const summary = h('span', {class: 'muted small', 'data-testid': 'cluster-summary'});
  const chart = h('div', {class: 'purity-chart', 'data-testid': 'purity-chart'});
  const list = h('div', {class: 'cluster-list', 'data-testid': 'cluster-list'});
  const subSel = select({'aria-label': 'class', 'data-testid': 'subcluster-class'}, run.class_names.map((c, i) => [i, c]), subClsOf());
  const subKInput = h('input', {type: 'number', min: 2, max: 20, value: subKOf(), 'aria-label': 'sub-cluster k', 'data-testid': 'subcluster-k', class: 'k-input'});
  const subList = h('div', {class: 'cluster-list', 'data-testid': 'subcluster-list'});
  const sepEl = h('div', {class: 'subsep'});
  const sep = separation.mount(sepEl, {...ctx, subgroup: {params: () => ({layer: ctx.state.layer, cls: subClsOf(), k: subKOf()}), color: clusterColor}});
  fillPanel(el, 'Clusters', 'clusters',
    h('div', {class: 'controls'},
      h('label', {class: 'inline'}, 'Method', methodSel),
      h('label', {class: 'inline', title: 'number of k-means clusters'}, 'k', kInput),
      hdbBits, summary),
    h('p', {class: 'muted small'}, 'Cluster colours are their own (not the class colours); grey is HDBSCAN noise.'),
    h('h3', {}, 'Purity over the run'), chart,
    h('h3', {}, 'Clusters at this step'), list,
    h('h3', {}, 'Sub-clusters inside one class'),
    h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'Class', subSel), h('label', {class: 'inline'}, 'k', subKInput)),
    subList, sepEl);
  el.classList.add('clusters-panel');

  const params = () => (method === 'kmeans' ? {layer: ctx.state.layer, method, k: kOf(), seed: SEED}
    : {layer: ctx.state.layer, method, min_cluster_size: hdbOf('mcs'), min_samples: hdbOf('ms'), seed: SEED});
  const paramsKey = () => (method === 'kmeans' ? `k${kOf()}` : `m${hdbOf('mcs')},${hdbOf('ms')}`);
  const cacheKey = (step) => `${ctx.state.layer}|${method}|${paramsKey()}|${step}`;
  const cache = new Map();
  const showMethod = () => { kInput.disabled = method !== 'kmeans'; hdbBits.hidden = method !== 'hdbscan'; };
  showMethod();

  let live = true;
  // ask() again while the server answers pending; onPending(meta) shows the job's progress.
  async function settled(ask, onPending) {
    for (;;) {
      const r = await ask();
      const meta = r.meta || r;
      if (!meta.pending) return r;
      if (!live) throw new Error('panel closed');
      if (onPending) onPending(meta);
      await later(POLL_MS);
    }
  }

  function labelsAt(step) {
    const key = cacheKey(step);
    if (!cache.has(key)) {
      const asked = params();
      cache.set(key, settled(() => getBinary(api(`/steps/${step}/clusters`), asked))
        .then((r) => ({labels: r.arrays.labels, meta: r.meta}))
        .catch((e) => { cache.delete(key); throw e; }));
    }
    return cache.get(key);
  }

  let purityKey = null; let purity = null;
  async function drawPurity() {
    const key = `${ctx.state.layer}|${method}|${paramsKey()}`;
    if (key !== purityKey) {
      purityKey = key; purity = null;
      clear(chart).append(progress('Clustering every step…'));
      const asked = params();
      // The steps already clustered are drawn while the job goes on with the others.
      const partial = (p) => {
        if (purityKey !== key) throw new Error('parameters changed');
        renderPurity(chart, p, ctx.state.step);
        chart.append(progress(`Clustering every step… ${p.steps.filter((_, i) => p.purity[i] !== null).length} of ${p.steps.length} done${p.state === 'queued' ? ' (queued)' : ''}`));
      };
      try { purity = await settled(() => getJSON(api('/clusters/purity'), asked), partial); } catch (err) {
        if (purityKey === key) showError(chart, err);
        return;
      }
      if (purityKey !== key) return;
    }
    if (purity) renderPurity(chart, purity, ctx.state.step);
  }

  async function drawClusters() {
    const step = ctx.state.step;
    let res;
    if (!cache.has(cacheKey(step))) clear(list).append(progress('Clustering…'));
    try { res = await labelsAt(step); } catch (err) { showError(list, err); return; }
    if (step !== ctx.state.step) return;
    const {labels, meta} = res;
    summary.textContent = `${meta.clusters.length} clusters${meta.noise ? `, ${meta.noise} noise points` : ''} · purity ${pct(meta.purity)}`;
    clear(list).append(...meta.clusters.map((c) => clusterCard(ctx, c, labels, `cluster ${c.id}`,
      `${c.size} images · majority ${run.class_names[c.majority]} (${pct(c.purity)}) · accuracy ${pct(c.accuracy)}`, clusterColor(c.id))));
    if (meta.noise) list.append(clusterCard(ctx, {id: -1}, labels, 'noise', `${meta.noise} images in no cluster`, NOISE));
  }

  async function drawSub() {
    const step = ctx.state.step;
    clear(subList).append(progress('Clustering…'));
    let r;
    try {
      r = await getBinary(api(`/steps/${step}/subclusters`), {layer: ctx.state.layer, cls: subClsOf(), k: subKOf(), seed: SEED});
    } catch (err) { showError(subList, err); return; }
    if (step !== ctx.state.step) return;
    const {index, labels} = r.arrays;
    // Map back to probe order: a full-length label array with -2 for other classes.
    const full = new Int32Array(ctx.emb.probes().label.length).fill(-2);
    index.forEach((p, j) => { full[p] = labels[j]; });
    clear(subList).append(...r.meta.clusters.map((c) => clusterCard(ctx, c, full, `group ${c.id} of class ${r.meta.class_name}`,
      `${c.size} images · accuracy ${pct(c.accuracy)} · mostly predicted ${run.class_names[c.majority]}`, clusterColor(c.id))));
  }

  function refresh(recolour) {
    drawClusters(); drawPurity(); drawSub();
    if (recolour && ctx.state.color === 'cluster') ctx.emb.redraw();
  }

  methodSel.addEventListener('change', () => ctx.set({cmethod: methodSel.value === 'kmeans' ? undefined : methodSel.value}, {push: true}));
  kInput.addEventListener('change', () => {
    const k = Math.max(2, Math.min(50, Math.round(Number(kInput.value)) || defaultK));
    kInput.value = k; ctx.set({k}, {push: true});
  });
  subSel.addEventListener('change', () => ctx.set({subcls: Number(subSel.value)}, {push: true}));
  subKInput.addEventListener('change', () => {
    const k = Math.max(2, Math.min(20, Math.round(Number(subKInput.value)) || 3));
    subKInput.value = k; ctx.set({subk: k}, {push: true});
  });

  let timer = null;
  return {
    labelsAt,
    subgroups: sep.subgroups,
    update(changed) {
      if (changed.has('cmethod')) { method = methodOf(); methodSel.value = method; showMethod(); clearTimeout(timer); refresh(true); }
      sep.update(changed);
      if (changed.has('k')) kInput.value = kOf();
      if (changed.has('subcls') || changed.has('subk')) { subSel.value = subClsOf(); subKInput.value = subKOf(); drawSub(); }
      for (const key of Object.keys(HDBSCAN)) if (changed.has(key)) hdbInputs[key].value = hdbOf(key);
      const hdbChanged = method === 'hdbscan' && Object.keys(HDBSCAN).some((key) => changed.has(key));
      if (hdbChanged) { clearTimeout(timer); refresh(true); } else if (['layer', 'k', 'view'].some((k) => changed.has(k))) { clearTimeout(timer); refresh(false); } else if (changed.has('step')) {
        // While the timeline is scrubbed or played, cluster only where it rests.
        if (purity) renderPurity(chart, purity, ctx.state.step);
        clearTimeout(timer); timer = setTimeout(() => refresh(false), 250);
      }
    },
    destroy() { live = false; clearTimeout(timer); sep.destroy(); clear(el); },
  };
}
