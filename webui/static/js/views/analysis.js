// Analysis tab: similarity search (a probe image or an uploaded one, in a layer
// beside pixel space), how good each layer's representation is over the steps,
// how much a layer changed (linear CKA), the data map of training dynamics,
// and whether neighbourhoods follow colour or class. Everything follows the
// timeline step; the layer_quality table is filled by a background job on the
// server, whose progress is polled while it runs.

import {getJSON, postJSON, postForm, getBinary, thumbURL} from '../api.js';
import {h, clear, classColor, showError, spinner, fmt} from '../dom.js';
import {lineChart, heatmap, sequential, inkOn, svg} from '../charts.js';

const METRICS = [['cosine', 'cosine'], ['euclidean', 'euclidean'], ['sqeuclidean', 'squared euclidean'], ['minkowski', 'Minkowski']];
const QUALITY = [['knn_accuracy', 'k-NN accuracy (leave-one-out)'], ['linear_probe_accuracy', 'linear-probe accuracy (3-fold CV)'],
  ['silhouette', 'silhouette of the classes'], ['class_purity', 'k-means purity']];
const LAYER_COLORS = ['#3563e9', '#f08c00', '#2f9e44', '#ae3ec9', '#e8590c', '#1098ad', '#5c940d', '#c2255c'];
const POLL_MS = 1500;

function api(ctx, path) { return `/api/runs/${encodeURIComponent(ctx.run.run_id)}/analysis/${path}`; }
function layerColor(i) { return LAYER_COLORS[i % LAYER_COLORS.length]; }
function section(title, testid, ...children) {
  return h('section', {class: 'panel', 'data-testid': testid}, h('h2', {}, title), ...children);
}

export default {
  id: 'analysis',
  title: 'Analysis',

  mount(el, ctx) {
    this.ctx = ctx;
    this.k = 12;
    this.p = 3;
    this.upload = null; // {file, url} when the query is an uploaded image
    this.qualityMetric = 'knn_accuracy';
    this.quality = null;
    this.mountSearch(ctx);
    this.mountQuality(ctx);
    this.mountCKA(ctx);
    this.mountDatamap(ctx);
    this.mountColour(ctx);
    clear(el).append(this.searchEl, this.qualityEl, this.ckaEl, this.datamapEl, this.colourEl);
  },

  async update(ctx, changed) {
    const first = !this.loaded;
    this.loaded = true;
    if (first) { this.loadQuality(ctx); this.loadDatamap(ctx); }
    if (first || ['sel', 'step', 'layer', 'metric'].some((k) => changed.has(k))) this.runSearch(ctx);
    if (changed.has('step')) { this.drawQuality(ctx); this.drawColour(ctx); }
    if (first || changed.has('layer')) this.loadCKA(ctx, 'steps');
    if (first || changed.has('step')) this.loadCKA(ctx, 'layers');
    if (changed.has('sel') || changed.has('view')) this.drawDatamap(ctx);
    if (first || changed.has('layer')) this.layerSel.value = ctx.state.layer;
  },

  // ------------------------------------------------------------------ search

  mountSearch(ctx) {
    this.layerSel = h('select', {'aria-label': 'layer', 'data-testid': 'search-layer',
      onchange: () => ctx.set({layer: this.layerSel.value}, {push: true})}, ctx.run.layers.map((l) => h('option', {value: l}, l)));
    this.metricSel = h('select', {'aria-label': 'distance', 'data-testid': 'search-metric',
      onchange: () => ctx.set({metric: this.metricSel.value}, {push: true})}, METRICS.map(([v, l]) => h('option', {value: v}, l)));
    this.pInput = h('input', {type: 'number', min: 1, max: 100, step: 0.5, value: this.p, class: 'narrow', 'aria-label': 'Minkowski p',
      onchange: () => { const v = Number(this.pInput.value); if (v >= 1 && v <= 100) { this.p = v; this.runSearch(ctx); } }});
    this.pLabel = h('label', {class: 'inline'}, 'p', this.pInput);
    this.kInput = h('input', {type: 'number', min: 1, max: 100, value: this.k, class: 'narrow', 'aria-label': 'results',
      onchange: () => { const v = Math.round(Number(this.kInput.value)); if (v >= 1 && v <= 100) { this.k = v; this.runSearch(ctx); } }});
    this.fileInput = h('input', {type: 'file', accept: 'image/*', hidden: true, 'data-testid': 'search-upload',
      onchange: () => {
        const file = this.fileInput.files[0];
        if (!file) return;
        if (this.upload) URL.revokeObjectURL(this.upload.url);
        this.upload = {file, url: URL.createObjectURL(file)};
        this.fileInput.value = '';
        this.runSearch(ctx);
      }});
    const uploadBtn = h('button', {class: 'btn', type: 'button', onclick: () => this.fileInput.click()}, 'Upload an image…');
    this.useSelBtn = h('button', {class: 'btn', type: 'button', hidden: true, 'data-testid': 'search-use-selection',
      onclick: () => { this.clearUpload(); this.runSearch(ctx); }}, 'Search the selected image');
    this.searchInfo = h('span', {class: 'muted small', 'data-testid': 'search-info'});
    this.queryEl = h('div', {class: 'search-query', 'data-testid': 'search-query'});
    this.resultsEl = h('div', {class: 'search-results'});
    this.searchEl = section('Similarity search', 'search',
      h('p', {class: 'muted small', text: 'The probe images most similar to the query in the chosen layer at the current step, '
        + 'beside the most similar in pixel space. Select an image anywhere (or in the data map below), or upload one: it is run '
        + 'through the model as it was at this step. For cosine the bar is the cosine similarity; for the other distances 0 % is '
        + 'the query\'s median distance to the probe images.'}),
      h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'layer', this.layerSel), h('label', {class: 'inline'}, 'distance', this.metricSel),
        this.pLabel, h('label', {class: 'inline'}, 'results', this.kInput), uploadBtn, this.fileInput, this.useSelBtn, this.searchInfo),
      h('div', {class: 'search-layout'}, this.queryEl, this.resultsEl));
  },

  clearUpload() {
    if (this.upload) URL.revokeObjectURL(this.upload.url);
    this.upload = null;
  },

  metric(ctx) { return METRICS.some(([v]) => v === ctx.state.metric) ? ctx.state.metric : 'cosine'; },

  async runSearch(ctx) {
    const metric = this.metric(ctx);
    this.metricSel.value = metric;
    this.pLabel.style.display = metric === 'minkowski' ? '' : 'none';
    const sel = ctx.state.sel;
    const hasSel = sel !== undefined && sel !== null && !Number.isNaN(sel);
    this.useSelBtn.hidden = !(this.upload && hasSel);
    if (!this.upload && !hasSel) {
      clear(this.queryEl);
      clear(this.resultsEl).append(h('p', {class: 'muted', 'data-testid': 'search-hint',
        text: 'Select an image (click a thumbnail, a point in the embedding or in the data map below) or upload one to search.'}));
      this.searchInfo.textContent = '';
      return;
    }
    const params = {step: ctx.state.step, layer: ctx.state.layer, metric, k: this.k, p: metric === 'minkowski' ? this.p : undefined};
    const token = (this.searchToken = (this.searchToken || 0) + 1);
    spinner(this.resultsEl, this.upload ? 'Running the image through the model…' : 'Searching…');
    try {
      let res;
      if (this.upload) {
        const form = new FormData();
        form.append('image', this.upload.file);
        res = await postForm(api(ctx, 'search'), form, params);
      } else {
        // Layer and pixels as two requests in parallel: the layer search stays
        // fast however large the images are.
        const [layer, pixels] = await Promise.all([getJSON(api(ctx, 'search'), {...params, probe: sel, space: 'layer'}),
          getJSON(api(ctx, 'search'), {...params, probe: sel, space: 'pixels'})]);
        res = {...layer, pixel: pixels.pixel};
      }
      if (token !== this.searchToken) return; // a newer search has started
      this.drawSearch(ctx, res);
    } catch (err) {
      if (token === this.searchToken) showError(this.resultsEl, err);
    }
  },

  drawSearch(ctx, res) {
    const names = ctx.run.class_names;
    const q = res.query;
    const img = q.kind === 'upload'
      ? h('img', {class: 'thumb big', src: this.upload.url, alt: q.filename || 'uploaded image'})
      : h('img', {class: `thumb big ${q.pred === q.label ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, q.probe_id), alt: `image ${q.probe_id}`});
    clear(this.queryEl).append(h('h3', {}, 'Query'), img,
      h('div', {class: 'small'}, q.kind === 'upload' ? (q.filename || 'uploaded image') : `image ${q.probe_id} · ${names[q.label]}`),
      h('div', {class: 'small muted'}, `predicted ${names[q.pred]} (${(100 * q.confidence).toFixed(0)} %)`));
    const column = (title, items, testid) => h('div', {class: 'search-col'}, h('h3', {}, title),
      h('ol', {class: 'search-list', 'data-testid': testid}, items.map((r) => h('li', {class: r.probe_id === ctx.state.sel ? 'selected' : null,
        title: `#${r.rank} · image ${r.probe_id} · ${names[r.label]} (predicted ${names[r.pred]}) · distance ${fmt(r.distance)}`,
        'data-probe': r.probe_id, onclick: () => { this.clearUpload(); ctx.set({sel: r.probe_id}, {push: true}); }},
      h('img', {class: `thumb ${r.correct ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, r.probe_id), alt: `image ${r.probe_id}`, loading: 'lazy'}),
      h('span', {class: 'search-cls', style: `--c:${classColor(r.label)}`}, names[r.label]),
      h('div', {class: 'bar', role: 'meter', 'aria-valuenow': r.similarity.toFixed(0), 'aria-valuemin': 0, 'aria-valuemax': 100}, h('span', {style: `width:${r.similarity.toFixed(1)}%`})),
      h('span', {class: 'search-pct'}, `${r.similarity.toFixed(0)} %`)))));
    const same = (list) => q.label === undefined ? null : list.filter((r) => r.label === q.label).length;
    const tag = (list) => { const s = same(list); return s === null ? '' : ` · ${s}/${list.length} same class`; };
    clear(this.resultsEl).append(
      column(`Layer ${res.layer} (step ${res.step})${tag(res.results)}`, res.results, 'search-results'),
      column(`Pixels${tag(res.pixel)}`, res.pixel, 'search-pixel'));
    this.searchInfo.textContent = `${res.n} probe images · ${res.ms} ms on the server${res.query.kind === 'upload' ? ' (model included)' : ''}`;
  },

  // ------------------------------------------------------------------ quality (and its background job)

  mountQuality(ctx) {
    this.qualitySel = h('select', {'aria-label': 'quality metric', 'data-testid': 'quality-metric',
      onchange: () => { this.qualityMetric = this.qualitySel.value; this.drawQuality(ctx); }}, QUALITY.map(([v, l]) => h('option', {value: v}, l)));
    this.progressEl = h('div', {class: 'quality-progress', 'data-testid': 'quality-progress'});
    this.qualityChart = h('div', {class: 'quality-chart'});
    this.qualityEl = section('Representation quality per layer', 'quality',
      h('p', {class: 'muted small', text: 'How well each captured layer separates the classes of the probe images at each step '
        + '(fixed seed). Dashed: the same measure on raw pixels, and the class-mean-image classifier. Click a point to jump to that step.'}),
      h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'measure', this.qualitySel)), this.progressEl, this.qualityChart);
  },

  async loadQuality(ctx) {
    clearTimeout(this.pollTimer);
    try {
      const q = await getJSON(api(ctx, 'quality'));
      this.quality = q;
      let prog = q.progress;
      if (prog.missing > 0 && !prog.running && !prog.error && !this.started) {
        this.started = true; // once per page; a failed job is shown, not retried in a loop
        prog = await postJSON(api(ctx, 'compute'));
      }
      this.drawProgress(prog);
      this.drawQuality(ctx);
      this.drawColour(ctx);
      if (prog.running) this.pollTimer = setTimeout(() => this.loadQuality(ctx), POLL_MS);
    } catch (err) {
      showError(this.qualityChart, err);
    }
  },

  drawProgress(prog) {
    const el = clear(this.progressEl);
    if (prog.error) { el.append(h('div', {class: 'error', role: 'alert', text: `Computing the layer quality failed: ${prog.error}`})); return; }
    if (!prog.running) return;
    const frac = prog.total ? prog.done / prog.total : 0;
    el.append(h('div', {class: 'progress', role: 'progressbar', 'aria-valuenow': prog.done, 'aria-valuemax': prog.total},
      h('span', {class: 'spin'}), `Computing ${prog.done}/${prog.total}: ${prog.message}`),
    h('div', {class: 'bar'}, h('span', {style: `width:${(100 * frac).toFixed(1)}%`})));
  },

  drawQuality(ctx) {
    const q = this.quality;
    if (!q) return;
    const m = this.qualityMetric;
    const values = q.values[m];
    const series = q.layers.map((layer, i) => ({name: layer, values: values[layer], color: layerColor(i)}));
    const base = q.baselines[m] || {};
    if (base.pixels !== undefined && base.pixels !== null) series.push({name: 'pixels', values: q.steps.map(() => base.pixels), color: '#868e96', dash: '5 4', dots: false});
    if (base.mean_image !== undefined && base.mean_image !== null) series.push({name: 'mean image', values: q.steps.map(() => base.mean_image), color: '#212529', dash: '2 3', dots: false});
    const known = series.some((s) => s.values.some((v) => v !== null));
    clear(this.qualityChart);
    if (!known) { this.qualityChart.append(h('p', {class: 'muted', text: 'Nothing computed yet.'})); return; }
    const acc = m === 'knn_accuracy' || m === 'linear_probe_accuracy' || m === 'class_purity';
    const width = Math.max(360, Math.min(980, (this.qualityChart.clientWidth || 760) - 8));
    this.qualityChart.append(lineChart(series, {xs: q.steps, width, height: 240, marker: ctx.state.step, testid: 'quality-chart',
      yLabel: QUALITY.find(([v]) => v === m)[1], onClick: (x) => ctx.set({step: x}, {push: true}),
      yFormat: acc ? (v) => `${Math.round(v * 100)}%` : undefined}));
    // The best layer at the current step, in words.
    const i = q.steps.indexOf(ctx.state.step);
    const here = q.layers.map((l) => [l, values[l][i]]).filter(([, v]) => v !== null && v !== undefined);
    if (here.length) {
      const [bl, bv] = here.reduce((a, b) => (b[1] > a[1] ? b : a));
      this.qualityChart.append(h('p', {class: 'small', 'data-testid': 'quality-best'}, `At step ${ctx.state.step} the best layer is `,
        h('b', {}, bl), ` (${acc ? `${(100 * bv).toFixed(1)} %` : fmt(bv)})`,
        base.pixels !== undefined && base.pixels !== null ? `; raw pixels: ${acc ? `${(100 * base.pixels).toFixed(1)} %` : fmt(base.pixels)}.` : '.'));
    }
  },

  // ------------------------------------------------------------------ CKA

  mountCKA(ctx) {
    this.ckaSteps = h('div', {class: 'cka-box', 'data-testid': 'cka-steps'});
    this.ckaLayers = h('div', {class: 'cka-box', 'data-testid': 'cka-layers'});
    this.ckaEl = section('How much a layer changed (linear CKA)', 'cka',
      h('p', {class: 'muted small', text: 'Linear CKA between representations of the same probe images: 1 = the same up to rotation and scale, '
        + 'near 0 = unrelated. Left: the chosen layer at every pair of steps (click a cell to jump to a step). Right: every pair of layers at the current step.'}),
      h('div', {class: 'cka-layout'}, this.ckaSteps, this.ckaLayers));
  },

  async loadCKA(ctx, mode) {
    const el = mode === 'steps' ? this.ckaSteps : this.ckaLayers;
    const token = (this[`cka_${mode}`] = (this[`cka_${mode}`] || 0) + 1);
    spinner(el, 'Computing CKA…');
    try {
      const params = mode === 'steps' ? {mode, layer: ctx.state.layer} : {mode, step: ctx.state.step};
      const res = await getJSON(api(ctx, 'cka'), params);
      if (token !== this[`cka_${mode}`]) return;
      this.drawCKA(ctx, el, res);
    } catch (err) {
      if (token === this[`cka_${mode}`]) showError(el, err);
    }
  },

  drawCKA(ctx, el, res) {
    const n = res.labels.length;
    const cell = Math.max(10, Math.min(34, Math.floor(420 / Math.max(1, n))));
    const big = cell >= 30;
    const steps = res.mode === 'steps';
    const cur = steps ? res.labels.indexOf(ctx.state.step) : -1;
    clear(el).append(h('h3', {}, steps ? `${res.layer}: step × step` : `layer × layer at step ${res.step}`),
      heatmap(res.matrix, {
        rowLabels: res.labels, colLabels: res.labels, cell,
        color: (v) => sequential(v), ink: (v) => inkOn(v),
        text: big ? (v) => (v === null ? '' : v.toFixed(2)) : null,
        title: (v, i, j) => `${res.labels[i]} vs ${res.labels[j]}: CKA ${v === null ? 'undefined (constant)' : v.toFixed(3)}`,
        cellClass: (v, i, j) => (i === cur || j === cur ? 'current' : ''),
        onClick: steps ? (i, j) => ctx.set({step: res.labels[j]}, {push: true}) : null,
        rowTitle: steps ? 'step' : null, colTitle: steps ? 'step' : null,
        testid: steps ? 'cka-steps-map' : 'cka-layers-map',
      }),
      h('p', {class: 'muted small', text: `on ${res.rows} probe images`}));
  },

  // ------------------------------------------------------------------ data map

  mountDatamap(ctx) {
    this.datamapBox = h('div', {class: 'datamap-box'});
    this.datamapInfo = h('div', {class: 'datamap-info small'});
    this.datamapEl = section('Data map', 'datamap',
      h('p', {class: 'muted small', text: 'Each probe image by its training dynamics over all steps (Swayamdipta et al. 2020): mean probability '
        + 'of its true class (confidence) against how much that probability varied (variability), coloured by the fraction of steps it was '
        + 'classified correctly. Click a point to select the image and see its trajectory.'}),
      h('div', {class: 'datamap-layout'}, this.datamapBox, this.datamapInfo));
  },

  async loadDatamap(ctx) {
    spinner(this.datamapBox, 'Loading…');
    try {
      this.dm = await getBinary(api(ctx, 'datamap'));
      this.drawDatamap(ctx);
    } catch (err) { showError(this.datamapBox, err); }
  },

  drawDatamap(ctx) {
    const dm = this.dm;
    if (!dm) return;
    const {probe_id: ids, confidence: conf, variability: vari, correctness: corr, forgetting_events: forg, label} = dm.arrays;
    const meta = dm.meta;
    const W = 460, H = 340, m = {l: 44, r: 12, t: 12, b: 34};
    const xMax = 0.5; // the std of a probability is at most 0.5
    const X = (v) => m.l + (v / xMax) * (W - m.l - m.r);
    const Y = (v) => m.t + (1 - v) * (H - m.t - m.b);
    const root = svg('svg', {class: 'chart datamap', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-testid': 'datamap-plot'});
    const grid = svg('g', {class: 'grid'});
    for (const t of [0, 0.25, 0.5, 0.75, 1]) grid.append(svg('line', {x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t)}), svg('text', {x: m.l - 4, y: Y(t) + 3, 'text-anchor': 'end'}, t));
    for (const t of [0, 0.1, 0.2, 0.3, 0.4, 0.5]) grid.append(svg('text', {x: X(t), y: H - m.b + 14, 'text-anchor': 'middle'}, t));
    root.append(grid,
      svg('text', {class: 'axis-label', x: (W + m.l) / 2, y: H - 4, 'text-anchor': 'middle'}, 'variability'),
      svg('text', {class: 'axis-label', transform: `translate(11 ${(H - m.b) / 2}) rotate(-90)`, 'text-anchor': 'middle'}, 'confidence'));
    // Region boundaries and names (datamap_region's thresholds).
    const av = meta.ambiguous_variability, ec = meta.easy_confidence;
    root.append(svg('line', {class: 'region-line', x1: X(av), x2: X(av), y1: m.t, y2: H - m.b}),
      svg('line', {class: 'region-line', x1: m.l, x2: X(av), y1: Y(ec), y2: Y(ec)}));
    // Region names go on top of the points, so they are drawn after them.
    const regionLabels = [
      svg('text', {class: 'region-label', x: m.l + 6, y: m.t + 14}, `easy (${meta.counts.easy})`),
      svg('text', {class: 'region-label', x: m.l + 6, y: H - m.b - 6}, `hard to learn (${meta.counts.hard})`),
      svg('text', {class: 'region-label', x: W - m.r - 6, y: m.t + 14, 'text-anchor': 'end'}, `ambiguous (${meta.counts.ambiguous})`)];
    const pts = svg('g', {class: 'points'});
    let selIdx = -1;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === ctx.state.sel) selIdx = i;
      const c = corr[i];
      pts.append(svg('circle', {cx: X(vari[i]).toFixed(1), cy: Y(conf[i]).toFixed(1), r: 3.2, fill: correctnessColor(c), 'data-i': i}));
    }
    root.append(pts, ...regionLabels);
    if (selIdx >= 0) root.append(svg('circle', {class: 'selected-point', cx: X(vari[selIdx]), cy: Y(conf[selIdx]), r: 6, 'data-testid': 'datamap-selected'}));
    const names = ctx.run.class_names;
    pts.addEventListener('click', (ev) => {
      const i = Number(ev.target.getAttribute('data-i'));
      if (Number.isInteger(i) && ev.target.tagName === 'circle') ctx.set({sel: ids[i]}, {push: true});
    });
    pts.addEventListener('mouseover', (ev) => {
      const i = Number(ev.target.getAttribute('data-i'));
      if (!Number.isInteger(i) || ev.target.tagName !== 'circle' || ev.target.querySelector('title')) return;
      ev.target.append(svg('title', {}, `image ${ids[i]} · ${names[label[i]]}\nconfidence ${fmt(conf[i])} · variability ${fmt(vari[i])}\n`
        + `correct at ${(100 * corr[i]).toFixed(0)} % of steps · forgotten ${forg[i]}×`));
    });
    clear(this.datamapBox).append(root);
    let forgotten = 0;
    for (let i = 0; i < forg.length; i++) if (forg[i] > 0) forgotten++;
    const info = clear(this.datamapInfo);
    info.append(h('div', {class: 'datamap-legend'}, 'correct at ', [0, 0.5, 1].map((c) => h('span', {},
      h('i', {style: `background:${correctnessColor(c)}`}), `${c * 100} %`)), ' of steps'),
    h('p', {}, `${ids.length} images over ${meta.n_steps} steps.`),
      h('p', {}, `${forgotten} forgotten at least once (correct at one step, wrong at the next).`));
    if (selIdx >= 0) {
      info.append(h('div', {class: 'datamap-sel', 'data-testid': 'datamap-sel-info'},
        h('img', {class: 'thumb big', src: thumbURL(ctx.run.run_id, ids[selIdx]), alt: `image ${ids[selIdx]}`}),
        h('div', {}, h('b', {}, `image ${ids[selIdx]} · ${names[label[selIdx]]}`),
          h('div', {}, `confidence ${fmt(conf[selIdx])}, variability ${fmt(vari[selIdx])}`),
          h('div', {}, `correct at ${(100 * corr[selIdx]).toFixed(0)} % of steps, forgotten ${forg[selIdx]}×`))));
    }
  },

  // ------------------------------------------------------------------ colour or meaning?

  mountColour(ctx) {
    this.colourBox = h('div', {class: 'colour-charts'});
    this.colourEl = section('Colour or meaning?', 'colour-class',
      h('p', {class: 'muted small', text: 'For each layer: how far each image\'s 10 nearest neighbours in the layer are also its nearest '
        + 'in colour (mean colour and colour histogram), against how many share its class. Both are scaled so that 0 is what a random '
        + 'embedding scores and 1 is perfect agreement. Dashed: the same for raw pixels. If similarity moves from colour to '
        + 'meaning during training, the colour line falls while the class line rises.'}),
      this.colourBox);
  },

  drawColour(ctx) {
    const q = this.quality;
    if (!q) return;
    const lift = (v, chance) => (v === null || v === undefined ? null : (v - chance) / (1 - chance));
    const cc = q.chance.colour_agreement, kc = q.chance.class_agreement;
    const px = q.baselines;
    const box = clear(this.colourBox);
    const any = q.layers.some((l) => q.values.colour_agreement[l].some((v) => v !== null));
    if (!any) { box.append(h('p', {class: 'muted', text: 'Nothing computed yet.'})); return; }
    for (const layer of q.layers) {
      const series = [
        {name: 'colour', values: q.values.colour_agreement[layer].map((v) => lift(v, cc)), color: '#e8590c'},
        {name: 'class', values: q.values.class_agreement[layer].map((v) => lift(v, kc)), color: '#3563e9'},
      ];
      if (px.colour_agreement.pixels !== undefined) {
        series.push({name: 'pixels: colour', legend: false, values: q.steps.map(() => lift(px.colour_agreement.pixels, cc)), color: '#e8590c', dash: '4 4', dots: false, opacity: 0.6});
        series.push({name: 'pixels: class', legend: false, values: q.steps.map(() => lift(px.class_agreement.pixels, kc)), color: '#3563e9', dash: '4 4', dots: false, opacity: 0.6});
      }
      box.append(h('figure', {class: 'chart-box'}, h('figcaption', {}, layer),
        lineChart(series, {xs: q.steps, width: 300, height: 170, marker: ctx.state.step, testid: `colour-${layer}`,
          onClick: (x) => ctx.set({step: x}, {push: true}), yFormat: (v) => v.toFixed(2)})));
    }
  },
};

// Fraction of steps correct -> red (never) … amber … green (always).
function correctnessColor(c) {
  const stops = [[217, 72, 15], [240, 140, 0], [47, 158, 68]];
  const t = Math.max(0, Math.min(1, c)) * 2;
  const i = Math.min(1, Math.floor(t));
  const f = t - i;
  const rgb = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
  return `rgb(${rgb.join(',')})`;
}
