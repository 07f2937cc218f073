// Analysis panel: similarity search. The query is the selected probe image or
// an uploaded one (run through the model as it was at this step); results in
// the chosen layer beside the most similar images in pixel space.

import {getJSON, postForm, thumbURL} from '../../api.js';
import {h, clear, classColor, showError, spinner, fmt, fillPanel} from '../../dom.js';
import {weightsLine} from '../../weights.js';
import {pickButton} from '../selection/gallery.js';

const METRICS = [['cosine', 'cosine'], ['euclidean', 'euclidean'], ['sqeuclidean', 'squared euclidean'], ['minkowski', 'Minkowski']];
const HELP = 'The probe images most similar to the query in the chosen layer at the current step, '
  + 'beside the most similar in pixel space. Select an image anywhere (or in the data map below), or upload one: it is run '
  + 'through the model as it was at this step. For cosine the bar is the cosine similarity; for the other distances 0 % is '
  + 'the query\'s median distance to the probe images.';

function resultList(ctx, items, testid, onPick) {
  const names = ctx.run.class_names;
  return h('ol', {class: 'search-list', 'data-testid': testid}, items.map((r) => h('li', {class: r.probe_id === ctx.state.sel ? 'selected' : null,
    title: `#${r.rank} · image ${r.probe_id} · ${names[r.label]} (predicted ${names[r.pred]}) · distance ${fmt(r.distance)}`,
    'data-probe': r.probe_id, onclick: () => onPick(r.probe_id)},
  h('img', {class: `thumb ${r.correct ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, r.probe_id), alt: `image ${r.probe_id}`, loading: 'lazy'}),
  h('span', {class: 'search-cls', style: `--c:${classColor(r.label)}`}, names[r.label]),
  h('div', {class: 'bar', role: 'meter', 'aria-valuenow': r.similarity.toFixed(0), 'aria-valuemin': 0, 'aria-valuemax': 100}, h('span', {style: `width:${r.similarity.toFixed(1)}%`})),
  h('span', {class: 'search-pct'}, `${r.similarity.toFixed(0)} %`))));
}

export function mount(el, ctx) {
  const api = `/api/runs/${encodeURIComponent(ctx.run.run_id)}/analysis/search`;
  let k = 12;
  let p = 3;
  let upload = null; // {file, url} when the query is an uploaded image
  let token = 0;
  const clearUpload = () => { if (upload) URL.revokeObjectURL(upload.url); upload = null; };
  const metric = () => (METRICS.some(([v]) => v === ctx.state.metric) ? ctx.state.metric : 'cosine');

  const layerSel = h('select', {'aria-label': 'layer', 'data-testid': 'search-layer',
    onchange: () => ctx.set({layer: layerSel.value}, {push: true})}, ctx.run.layers.map((l) => h('option', {value: l}, l)));
  const metricSel = h('select', {'aria-label': 'distance', 'data-testid': 'search-metric',
    onchange: () => ctx.set({metric: metricSel.value}, {push: true})}, METRICS.map(([v, l]) => h('option', {value: v}, l)));
  const pInput = h('input', {type: 'number', min: 1, max: 100, step: 0.5, value: p, class: 'narrow', 'aria-label': 'Minkowski p',
    onchange: () => { const v = Number(pInput.value); if (v >= 1 && v <= 100) { p = v; run(); } }});
  const pLabel = h('label', {class: 'inline'}, 'p', pInput);
  const kInput = h('input', {type: 'number', min: 1, max: 100, value: k, class: 'narrow', 'aria-label': 'results',
    onchange: () => { const v = Math.round(Number(kInput.value)); if (v >= 1 && v <= 100) { k = v; run(); } }});
  const fileInput = h('input', {type: 'file', accept: 'image/*', hidden: true, 'data-testid': 'search-upload',
    onchange: () => {
      const file = fileInput.files[0];
      if (!file) return;
      clearUpload();
      upload = {file, url: URL.createObjectURL(file)};
      fileInput.value = '';
      run();
    }});
  const uploadBtn = h('button', {class: 'btn', type: 'button', onclick: () => fileInput.click()}, 'Upload an image…');
  const useSelBtn = h('button', {class: 'btn', type: 'button', hidden: true, 'data-testid': 'search-use-selection',
    onclick: () => { clearUpload(); run(); }}, 'Search the selected image');
  const info = h('span', {class: 'muted small', 'data-testid': 'search-info'});
  const queryEl = h('div', {class: 'search-query', 'data-testid': 'search-query'});
  const resultsEl = h('div', {class: 'search-results'});
  const weights = weightsLine('search-weights');
  fillPanel(el, 'Similarity search', 'search',
    h('p', {class: 'muted small', text: HELP}),
    h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'layer', layerSel), h('label', {class: 'inline'}, 'distance', metricSel),
      pLabel, h('label', {class: 'inline'}, 'results', kInput), uploadBtn, fileInput, useSelBtn, info),
    weights.el,
    h('div', {class: 'search-layout'}, queryEl, resultsEl));

  async function request(params, sel) {
    if (upload) {
      const form = new FormData();
      form.append('image', upload.file);
      return postForm(api, form, params);
    }
    // Layer and pixels as two requests in parallel: the layer search stays
    // fast however large the images are.
    const [layer, pixels] = await Promise.all([getJSON(api, {...params, probe: sel, space: 'layer'}), getJSON(api, {...params, probe: sel, space: 'pixels'})]);
    return {...layer, pixel: pixels.pixel};
  }

  async function run() {
    const m = metric();
    metricSel.value = m;
    pLabel.style.display = m === 'minkowski' ? '' : 'none';
    const sel = ctx.state.sel;
    const hasSel = sel !== undefined && sel !== null && !Number.isNaN(sel);
    useSelBtn.hidden = !(upload && hasSel);
    weights.show(null);
    if (!upload && !hasSel) {
      clear(queryEl);
      clear(resultsEl).append(h('p', {class: 'muted', 'data-testid': 'search-hint',
        text: 'Select an image (click a thumbnail, a point in the embedding or in the data map below) or upload one to search.'}));
      info.textContent = '';
      return;
    }
    const params = {step: ctx.state.step, layer: ctx.state.layer, metric: m, k, p: m === 'minkowski' ? p : undefined};
    const my = ++token;
    spinner(resultsEl, upload ? 'Running the image through the model…' : 'Searching…');
    try {
      const res = await request(params, sel);
      if (my !== token) return; // a newer search has started
      draw(res);
    } catch (err) {
      if (my === token) showError(resultsEl, err);
    }
  }

  function draw(res) {
    const names = ctx.run.class_names;
    const q = res.query;
    const img = q.kind === 'upload'
      ? h('img', {class: 'thumb big', src: upload.url, alt: q.filename || 'uploaded image'})
      : h('img', {class: `thumb big ${q.pred === q.label ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, q.probe_id), alt: `image ${q.probe_id}`});
    clear(queryEl).append(h('h3', {}, 'Query'), img,
      h('div', {class: 'small'}, q.kind === 'upload' ? (q.filename || 'uploaded image') : `image ${q.probe_id} · ${names[q.label]}`),
      h('div', {class: 'small muted'}, `predicted ${names[q.pred]} (${(100 * q.confidence).toFixed(0)} %)`));
    weights.show(res);
    const pick = (id) => { clearUpload(); ctx.set({sel: id}, {push: true}); };
    const tag = (list) => (q.label === undefined ? '' : ` · ${list.filter((r) => r.label === q.label).length}/${list.length} same class`);
    const column = (title, items, testid) => h('div', {class: 'search-col'}, h('h3', {}, title, pickButton(ctx, items.map((r) => r.probe_id), `similar to ${q.kind === 'upload' ? 'the upload' : `#${q.probe_id}`}: ${title}`)), resultList(ctx, items, testid, pick));
    clear(resultsEl).append(
      column(`Layer ${res.layer} (step ${res.step})${tag(res.results)}`, res.results, 'search-results'),
      column(`Pixels${tag(res.pixel)}`, res.pixel, 'search-pixel'));
    info.textContent = `${res.n} probe images · ${res.ms} ms on the server${q.kind === 'upload' ? ' (model included)' : ''}`;
  }

  let loaded = false;
  return {
    update(changed) {
      const first = !loaded;
      loaded = true;
      if (first || ['sel', 'step', 'layer', 'metric'].some((key) => changed.has(key))) run();
      if (first || changed.has('layer')) layerSel.value = ctx.state.layer;
    },
    destroy() { token += 1; clearUpload(); clear(el); },
  };
}
