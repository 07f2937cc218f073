// The Inspect tab: look inside the model at the current step.
// Four panels, each computed on demand on the server (webui/inspect.py) and
// re-fetched when the timeline moves: attribution maps of the selected image,
// activation maps (and filters) of a conv layer, activation maximisation of a
// class or unit, and the top probe images of each unit of a captured layer.

import {getJSON, getBinary, thumbURL} from '../api.js';
import {h, clear, fmt, pct, showError, spinner} from '../dom.js';

const METHODS = [
  {id: 'saliency', title: 'Saliency', hint: 'Vanilla gradient of the class score: max |gradient| over channels.'},
  {id: 'smoothgrad', title: 'SmoothGrad', hint: 'The gradient averaged over noisy copies of the image.'},
  {id: 'gradient_x_input', title: 'Gradient × input', hint: 'Each pixel\'s first-order contribution to the score (signed: red supports, blue opposes).'},
  {id: 'guided_backprop', title: 'Guided backprop', hint: 'Gradient passed back only through positive ReLU inputs and gradients.'},
  {id: 'deconvnet', title: 'Deconvnet', hint: 'Zeiler & Fergus reconstruction: ReLU applied to the backward signal.'},
  {id: 'grad_cam', title: 'Grad-CAM', hint: 'Conv-layer channels weighted by their mean gradient, upsampled to the image.'},
  {id: 'layer_gradient', title: 'Layer gradient', hint: 'Gradient of a chosen layer (or one unit of it) with respect to the image.'},
  {id: 'occlusion', title: 'Occlusion', hint: 'Drop in the score when a square patch is replaced by the baseline (red: the region supports it).'},
];

const REGULARIZERS = [
  // key: query parameter(s); on: default switch; fields: [param, label, default, step]
  {id: 'l2', label: 'L2 decay', on: true, fields: [['l2', 'weight', 0.01, 0.005]]},
  {id: 'blur', label: 'Gaussian blur', on: true, fields: [['blur_every', 'every k steps', 4, 1], ['blur_sigma', 'σ', 0.5, 0.1]]},
  {id: 'clip_norm', label: 'Clip small-norm pixels', on: false, fields: [['clip_norm_pct', 'percentile', 10, 5]]},
  {id: 'clip_contrib', label: 'Clip small-contribution pixels', on: false, fields: [['clip_contrib_pct', 'percentile', 10, 5]]},
  {id: 'tv', label: 'Total variation', on: false, fields: [['tv', 'weight', 0.5, 0.1]]},
  {id: 'bound', label: 'Bounded range', on: true, fields: [['bound', 'weight', 1, 0.5]]},
  {id: 'jitter', label: 'Jitter', on: true, fields: [['jitter', 'pixels', 1, 1]]},
];

// Three significant digits: attribution magnitudes range from 1e-4 (untrained nets) to 1e2.
const sig = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(Number(x).toPrecision(3)).toString());
const num = (input) => (input.value === '' ? undefined : Number(input.value));
const select = (attrs, options, value) => h('select', attrs, options.map(([v, text]) => h('option', {value: v, selected: String(v) === String(value)}, text)));
const field = (label, control) => h('label', {class: 'inline'}, label, control);

function view() {
  let ctx = null;
  let root = null;
  let probes = null; // {probe_id, label} in probe order
  let preds = null; // predictions at preds.step
  let model = null; // /inspect/layers answer (the architecture does not change across steps)
  let autoPicked = null;
  const gen = {attr: 0, act: 0, max: 0, top: 0, hist: 0};
  const ui = {};
  const base = () => `/api/runs/${encodeURIComponent(ctx.run.run_id)}`;
  const stepBase = () => `${base()}/steps/${ctx.state.step}/inspect`;
  const classLabel = (i) => (String(ctx.run.class_names[i]) === String(i) ? `${i}` : `${i} · ${ctx.run.class_names[i]}`);
  const rowOf = (pid) => (probes ? probes.probe_id.indexOf(pid) : -1);

  // -- data shared by the panels

  async function ensureProbes() {
    if (!probes) probes = await getJSON(`${base()}/probes`);
  }

  async function ensurePreds() {
    if (preds && preds.step === ctx.state.step) return;
    const {arrays} = await getBinary(`${base()}/steps/${ctx.state.step}/predictions`);
    preds = {step: ctx.state.step, pred: arrays.pred, probs: arrays.probs, correct: arrays.correct};
  }

  async function ensureModel() {
    if (model) return;
    model = await getJSON(`${stepBase()}/layers`);
    fillLayerPickers();
  }

  const layerOptions = (filter) => (model ? model.layers.filter(filter).map((l) => [l.name, `${l.name} (${l.type}, ${l.shape.join('×')})`]) : []);

  function fillLayerPickers() {
    const fill = (sel, options, preferred) => {
      const keep = sel.value;
      clear(sel).append(...options.map(([v, t]) => h('option', {value: v}, t)));
      const names = options.map((o) => o[0]);
      sel.value = names.includes(keep) ? keep : (names.includes(preferred) ? preferred : names[0] || '');
    };
    const convs = model.conv_layers;
    fill(ui.camLayer, layerOptions((l) => l.spatial), convs[convs.length - 1]);
    fill(ui.lgLayer, layerOptions(() => true), convs[convs.length - 1]);
    fill(ui.occLayer, layerOptions(() => true), convs[convs.length - 1]);
    fill(ui.actLayer, layerOptions((l) => l.spatial), convs[0]);
    fill(ui.maxLayer, layerOptions(() => true), convs[convs.length - 1]);
  }

  // -- 1. the selected image and its attribution maps

  function buildAttr() {
    const n = ctx.run.class_names.length;
    const [, hgt, wid] = ctx.run.input_shape;
    const size = Math.max(1, Math.floor(Math.min(hgt, wid) / 4));
    ui.head = h('div', {class: 'insp-head', 'data-testid': 'inspect-image'});
    ui.note = h('p', {class: 'muted small', 'data-testid': 'inspect-note'});
    ui.target = select({'aria-label': 'target class', 'data-testid': 'inspect-target'}, [['', 'predicted'], ...Array.from({length: n}, (_, i) => [i, classLabel(i)])], '');
    ui.only = select({'aria-label': 'method', 'data-testid': 'inspect-method'}, [['all', 'all methods'], ...METHODS.map((m) => [m.id, m.title])], 'all');
    ui.overlay = h('input', {type: 'checkbox', checked: true, 'aria-label': 'overlay on the image'});
    ui.opacity = h('input', {type: 'range', min: 0.1, max: 1, step: 0.05, value: 0.9, 'aria-label': 'overlay opacity'});
    ui.camLayer = h('select', {'aria-label': 'Grad-CAM layer'});
    ui.lgLayer = h('select', {'aria-label': 'layer-gradient layer'});
    ui.lgUnit = h('input', {type: 'number', min: 0, placeholder: 'all', style: 'width:5em', 'aria-label': 'layer-gradient unit'});
    ui.occSize = h('input', {type: 'number', min: 1, max: Math.min(hgt, wid), value: size, style: 'width:4em', 'aria-label': 'occluder size'});
    ui.occStride = h('input', {type: 'number', min: 1, value: Math.max(1, Math.floor(size / 2)), style: 'width:4em', 'aria-label': 'occluder stride'});
    ui.occBaseline = h('input', {type: 'number', step: 0.1, value: 0, style: 'width:5em', 'aria-label': 'occluder value'});
    ui.occMode = select({'aria-label': 'occlusion score'}, [['class', 'target class score'], ['unit', 'a unit']], 'class');
    ui.occLayer = h('select', {'aria-label': 'occlusion layer'});
    ui.occUnit = h('input', {type: 'number', min: 0, value: 0, style: 'width:5em', 'aria-label': 'occlusion unit'});
    ui.sgSamples = h('input', {type: 'number', min: 1, max: 100, value: 25, style: 'width:4.5em', 'aria-label': 'smoothgrad samples'});
    ui.sgStdev = h('input', {type: 'number', min: 0, max: 1, step: 0.05, value: 0.15, style: 'width:4.5em', 'aria-label': 'smoothgrad noise'});
    ui.attrStatus = h('span', {class: 'muted small', 'data-testid': 'inspect-attr-status'});
    ui.attrGrid = h('div', {class: 'insp-grid', 'data-testid': 'inspect-attr-grid'});
    const occUnitBits = h('span', {class: 'insp-occ-unit', hidden: true}, field('layer', ui.occLayer), field('unit', ui.occUnit));
    ui.occMode.addEventListener('change', () => { occUnitBits.hidden = ui.occMode.value !== 'unit'; });
    for (const el of [ui.target, ui.only, ui.camLayer, ui.lgLayer, ui.lgUnit, ui.occSize, ui.occStride, ui.occBaseline, ui.occMode, ui.occLayer, ui.occUnit, ui.sgSamples, ui.sgStdev]) {
      el.addEventListener('change', () => renderAttr());
    }
    const restyle = () => { for (const img of ui.attrGrid.querySelectorAll('img.heat')) styleHeat(img); };
    ui.overlay.addEventListener('change', restyle);
    ui.opacity.addEventListener('input', restyle);
    return h('section', {class: 'panel', 'data-testid': 'inspect-attr'},
      h('h2', {}, 'Attribution for the selected image'),
      ui.head, ui.note,
      h('div', {class: 'controls'}, field('target', ui.target), field('show', ui.only), field('overlay', ui.overlay), field('opacity', ui.opacity), ui.attrStatus),
      h('details', {class: 'insp-settings'}, h('summary', {}, 'Method settings'),
        h('div', {class: 'controls'}, h('b', {class: 'small'}, 'SmoothGrad'), field('samples', ui.sgSamples), field('noise', ui.sgStdev)),
        h('div', {class: 'controls'}, h('b', {class: 'small'}, 'Grad-CAM'), field('layer', ui.camLayer)),
        h('div', {class: 'controls'}, h('b', {class: 'small'}, 'Layer gradient'), field('layer', ui.lgLayer), field('unit', ui.lgUnit)),
        h('div', {class: 'controls'}, h('b', {class: 'small'}, 'Occlusion'), field('size', ui.occSize), field('stride', ui.occStride), field('value', ui.occBaseline), field('score of', ui.occMode), occUnitBits)),
      ui.attrGrid);
  }

  // Overlay on: the RGBA map (alpha = magnitude) over the image; off: the opaque map alone.
  function styleHeat(img) {
    img.src = ui.overlay.checked ? img.dataset.overlay : img.dataset.opaque;
    img.style.opacity = ui.overlay.checked ? ui.opacity.value : 1;
  }

  function methodParams(id) {
    const p = {probe: ctx.state.sel, method: id, target: ui.target.value};
    if (id === 'smoothgrad') Object.assign(p, {samples: num(ui.sgSamples), stdev: num(ui.sgStdev)});
    if (id === 'grad_cam') p.layer = ui.camLayer.value;
    if (id === 'layer_gradient') Object.assign(p, {layer: ui.lgLayer.value, unit: num(ui.lgUnit)});
    if (id === 'occlusion') {
      Object.assign(p, {size: num(ui.occSize), stride: num(ui.occStride), baseline: num(ui.occBaseline)});
      if (ui.occMode.value === 'unit') Object.assign(p, {layer: ui.occLayer.value, unit: num(ui.occUnit)});
    }
    return p;
  }

  function renderHead() {
    const pid = ctx.state.sel;
    const i = rowOf(pid);
    if (i < 0) { clear(ui.head).append(h('span', {class: 'error'}, `Probe image #${pid} is not in this run.`)); return; }
    const label = probes.label[i];
    const pred = preds.pred[i];
    const C = ctx.run.class_names.length;
    const p = preds.probs[i * C + pred];
    const ok = preds.correct[i] === 1;
    clear(ui.head).append(
      h('img', {class: `thumb big ${ok ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, pid), alt: `probe ${pid}`}),
      h('div', {},
        h('div', {}, h('b', {}, `probe #${pid}`), ` · label ${classLabel(label)}`),
        h('div', {}, `predicted ${classLabel(pred)} (${pct(p)}) `, h('span', {class: ok ? 'badge live' : 'badge bad'}, ok ? 'correct' : 'wrong'), ` at step ${ctx.state.step}`),
        h('div', {class: 'controls insp-pick'},
          field('probe id', h('input', {type: 'number', value: pid, style: 'width:6em', 'aria-label': 'probe id', onchange: (e) => ctx.set({sel: Number(e.target.value)}, {push: true})})),
          h('button', {class: 'btn', type: 'button', onclick: () => stepMisclassified(1)}, 'next misclassified →'))));
    ui.target.options[0].textContent = `predicted (${classLabel(pred)})`;
  }

  function stepMisclassified(dir) {
    const n = probes.probe_id.length;
    const start = Math.max(rowOf(ctx.state.sel), 0);
    for (let k = 1; k <= n; k++) {
      const j = (start + dir * k + n) % n;
      if (preds.correct[j] !== 1) { ctx.set({sel: probes.probe_id[j]}, {push: true}); return; }
    }
  }

  function card(title, hint) {
    const body = h('div', {class: 'insp-img'});
    const caption = h('figcaption', {class: 'small muted'});
    const fig = h('figure', {class: 'insp-card', title: hint || ''}, h('div', {class: 'insp-title'}, title), body, caption);
    return {fig, body, caption};
  }

  async function renderAttr() {
    const my = ++gen.attr;
    const pid = ctx.state.sel;
    if (pid === undefined || pid === null) return;
    renderHead();
    const methods = ui.only.value === 'all' ? METHODS : METHODS.filter((m) => m.id === ui.only.value);
    const original = card('Image', 'The probe image as the model sees it.');
    original.body.append(h('img', {class: 'base', src: thumbURL(ctx.run.run_id, pid), alt: 'image'}));
    const C = ctx.run.class_names.length;
    const i = rowOf(pid);
    const target = ui.target.value === '' ? preds.pred[i] : Number(ui.target.value);
    original.caption.textContent = `target ${classLabel(target)} · p=${pct(preds.probs[i * C + target])}`;
    const cards = methods.map((m) => ({m, ...card(m.title, m.hint)}));
    for (const c of cards) { c.fig.dataset.testid = `attr-${c.m.id}`; spinner(c.body, ''); }
    clear(ui.attrGrid).append(original.fig, ...cards.map((c) => c.fig));
    // One request at a time: the server has few cores, and the maps come in one by one.
    for (const [k, c] of cards.entries()) {
      if (my !== gen.attr) return;
      ui.attrStatus.textContent = `computing ${k + 1}/${cards.length}: ${c.m.title}…`;
      try {
        const res = await getJSON(`${stepBase()}/attribution`, methodParams(c.m.id));
        if (my !== gen.attr) return;
        const heat = h('img', {class: 'heat', alt: `${c.m.title} map`, dataset: {overlay: res.overlay, opaque: res.png}});
        styleHeat(heat);
        clear(c.body).append(h('img', {class: 'base', src: thumbURL(ctx.run.run_id, pid), alt: ''}), heat);
        const what = res.params.layer !== undefined && res.target === null ? `${res.params.layer}${res.params.unit !== undefined && res.params.unit !== null ? ' #' + res.params.unit : ''}` : `class ${res.target}`;
        clear(c.caption).append(
          h('div', {}, `${what} · ${res.signed ? '±' : 'max '}${sig(Math.max(Math.abs(res.min), Math.abs(res.max)))}`),
          h('div', {}, res.cached ? 'cached' : `${fmt(res.seconds, 2)} s`));
        if (res.notes && res.notes.length) c.caption.append(h('div', {class: 'insp-warn'}, res.notes.join(' ')));
      } catch (err) {
        if (my !== gen.attr) return;
        showError(c.body, err);
      }
    }
    if (my === gen.attr) ui.attrStatus.textContent = '';
  }

  // -- 2. activation maps and filters

  function buildAct() {
    ui.actLayer = h('select', {'aria-label': 'activation layer', 'data-testid': 'inspect-act-layer'});
    ui.actNorm = select({'aria-label': 'normalisation'}, [['layer', 'one scale for the layer'], ['channel', 'each channel stretched']], 'layer');
    ui.actOut = h('div', {class: 'insp-row'});
    ui.actLayer.addEventListener('change', () => renderAct());
    ui.actNorm.addEventListener('change', () => renderAct());
    return h('section', {class: 'panel', 'data-testid': 'inspect-actmaps'},
      h('h2', {}, 'Activation maps'),
      h('div', {class: 'controls'}, field('layer', ui.actLayer), field('scale', ui.actNorm)),
      ui.actOut);
  }

  async function renderAct() {
    const my = ++gen.act;
    if (ctx.state.sel === undefined || !ui.actLayer.value) return;
    spinner(ui.actOut, 'Computing activation maps…');
    const layer = ui.actLayer.value;
    try {
      const res = await getJSON(`${stepBase()}/activation_maps`, {probe: ctx.state.sel, layer, norm: ui.actNorm.value});
      let filt = null;
      if (model.conv_layers.includes(layer)) filt = await getJSON(`${stepBase()}/filters`, {layer});
      if (my !== gen.act) return;
      const [mh, mw] = res.map_shape;
      const natural = res.ncols * (mw + 1) - 1;
      const grid = h('img', {class: 'insp-grid-img', src: res.png, alt: `${layer} activation maps`, 'data-testid': 'inspect-act-img', style: `width:${Math.max(420, natural)}px`});
      const info = h('div', {class: 'small muted'}, `${res.n} channels of ${mh}×${mw} · ${res.signed ? '±' : ''}${sig(Math.max(Math.abs(res.min), Math.abs(res.max)))} · ${res.cached ? 'cached' : fmt(res.seconds, 2) + ' s'}`);
      const hover = h('div', {class: 'small'}, 'Hover a map for its channel.');
      grid.addEventListener('mousemove', (e) => {
        const px = (e.offsetX / grid.clientWidth) * grid.naturalWidth;
        const py = (e.offsetY / grid.clientHeight) * grid.naturalHeight;
        const c = Math.floor(py / (mh + 1)) * res.ncols + Math.floor(px / (mw + 1));
        hover.textContent = c < res.n ? `channel ${c} · max ${fmt(res.channel_max[c], 3)}` : '';
      });
      const parts = [h('figure', {class: 'insp-card'}, h('div', {class: 'insp-title'}, `${layer} for probe #${ctx.state.sel}`), grid, info, hover)];
      if (filt) {
        const [fh, fw] = filt.filter_shape;
        const fnatural = filt.ncols * (fw + 1) - 1;
        parts.push(h('figure', {class: 'insp-card'}, h('div', {class: 'insp-title'}, `${layer} filters`),
          h('img', {class: 'insp-grid-img', src: filt.png, alt: `${layer} filters`, style: `width:${Math.max(240, fnatural)}px`}),
          h('div', {class: 'small muted'}, `${filt.n} filters of ${fh}×${fw}${filt.rgb ? ' (RGB)' : ' (mean over input channels)'} · grey = 0`)));
      }
      clear(ui.actOut).append(...parts);
    } catch (err) {
      if (my === gen.act) showError(ui.actOut, err);
    }
  }

  // -- 3. activation maximisation

  function buildMax() {
    const n = ctx.run.class_names.length;
    ui.maxKind = select({'aria-label': 'objective'}, [['class', 'a class'], ['unit', 'a unit']], 'class');
    ui.maxClass = select({'aria-label': 'class to maximise', 'data-testid': 'maxact-class'}, Array.from({length: n}, (_, i) => [i, classLabel(i)]), 0);
    ui.maxLayer = h('select', {'aria-label': 'layer to maximise'});
    ui.maxUnit = h('input', {type: 'number', min: 0, value: 0, style: 'width:5em', 'aria-label': 'unit to maximise'});
    ui.maxStart = select({'aria-label': 'start image'}, [['zeros', 'zeros'], ['noise', 'noise'], ['probe', 'the selected image']], 'zeros');
    ui.maxSteps = h('input', {type: 'number', min: 1, max: 500, value: 200, style: 'width:5em', 'aria-label': 'steps'});
    ui.maxLr = h('input', {type: 'number', min: 0.001, step: 0.01, value: 0.05, style: 'width:5em', 'aria-label': 'step size'});
    ui.maxSeed = h('input', {type: 'number', min: 0, value: 0, style: 'width:4em', 'aria-label': 'seed'});
    const unitBits = h('span', {hidden: true}, field('layer', ui.maxLayer), field('unit', ui.maxUnit));
    const classBits = field('class', ui.maxClass);
    ui.maxKind.addEventListener('change', () => { unitBits.hidden = ui.maxKind.value !== 'unit'; classBits.hidden = !unitBits.hidden; });
    ui.reg = REGULARIZERS.map((r) => {
      const on = h('input', {type: 'checkbox', checked: r.on, 'aria-label': r.label});
      const inputs = r.fields.map(([param, label, value, step]) => [param, h('input', {type: 'number', value, step, min: 0, style: 'width:5em', 'aria-label': `${r.label} ${label}`}), label]);
      return {r, on, inputs};
    });
    ui.maxRun = h('button', {class: 'btn primary', type: 'button', 'data-testid': 'maxact-run', onclick: () => renderMax()}, 'Run');
    ui.maxOut = h('div', {class: 'insp-row', 'data-testid': 'maxact-result'});
    return h('section', {class: 'panel', 'data-testid': 'inspect-maxact'},
      h('h2', {}, 'Activation maximisation'),
      h('p', {class: 'muted small'}, 'Gradient ascent on the image to raise a class score or a unit\'s mean activation, with regularisers that keep it image-like. Runs on the server; re-runs when the step changes.'),
      h('div', {class: 'controls'}, field('maximise', ui.maxKind), classBits, unitBits, field('start from', ui.maxStart), field('steps', ui.maxSteps), field('step size', ui.maxLr), field('seed', ui.maxSeed)),
      h('div', {class: 'insp-regs'}, ui.reg.map(({r, on, inputs}) => h('label', {class: 'inline insp-reg'}, on, h('b', {}, r.label), inputs.map(([, input, label]) => h('span', {class: 'small'}, label, ' ', input))))),
      h('div', {class: 'controls'}, ui.maxRun),
      ui.maxOut);
  }

  function maxParams() {
    const p = {start: ui.maxStart.value, steps: num(ui.maxSteps), lr: num(ui.maxLr), seed: num(ui.maxSeed)};
    if (p.start === 'probe') p.probe = ctx.state.sel;
    if (ui.maxKind.value === 'class') p.target = ui.maxClass.value;
    else Object.assign(p, {layer: ui.maxLayer.value, unit: num(ui.maxUnit)});
    for (const {on, inputs} of ui.reg) if (on.checked) for (const [param, input] of inputs) p[param] = num(input);
    return p;
  }

  function sparkline(values) {
    const c = h('canvas', {width: 220, height: 48, class: 'insp-spark', title: 'score at each step of the optimisation'});
    const g = c.getContext('2d');
    const lo = Math.min(...values), hi = Math.max(...values);
    g.strokeStyle = '#3563e9'; g.lineWidth = 1.5; g.beginPath();
    values.forEach((v, i) => {
      const x = (i / Math.max(values.length - 1, 1)) * (c.width - 4) + 2;
      const y = c.height - 3 - ((v - lo) / (hi - lo || 1)) * (c.height - 6);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
    return c;
  }

  async function renderMax() {
    const my = ++gen.max;
    ui.maxShown = true;
    ui.maxRun.disabled = true;
    const t0 = performance.now();
    spinner(ui.maxOut, 'Optimising…');
    const timer = setInterval(() => {
      const p = ui.maxOut.querySelector('.progress');
      if (p) p.lastChild.textContent = `Optimising… ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    }, 200);
    try {
      const res = await getJSON(`${stepBase()}/maximize`, maxParams());
      if (my !== gen.max) return;
      const what = res.target !== null ? `class ${classLabel(res.target)}` : `${res.layer} unit ${res.unit}`;
      clear(ui.maxOut).append(
        h('img', {class: 'insp-maximg', src: res.png, alt: `image maximising ${what}`, 'data-testid': 'maxact-img'}),
        h('div', {class: 'insp-maxinfo'},
          h('div', {}, h('b', {}, what), ` at step ${res.step}`),
          h('div', {'data-testid': 'maxact-score'}, `${res.target !== null ? 'class score' : 'mean activation'} ${fmt(res.score, 3)} (start ${fmt(res.start_score, 3)})`),
          res.score <= res.start_score ? h('div', {class: 'insp-warn'}, 'The optimisation did not raise the score: try a smaller step size or weaker regularisers.') : null,
          res.probability !== null ? h('div', {}, `softmax probability ${pct(res.probability)}`) : null,
          h('div', {}, `the model sees: ${classLabel(res.top_class)} (${pct(res.top_probability)})`),
          sparkline(res.history),
          h('div', {class: 'small muted'}, res.cached ? 'cached' : `${fmt(res.seconds, 2)} s on the server`)));
    } catch (err) {
      if (my === gen.max) showError(ui.maxOut, err);
    } finally {
      clearInterval(timer);
      if (my === gen.max) ui.maxRun.disabled = false;
    }
  }

  // -- 4. top units of a captured layer, and one unit over the steps

  function buildTop() {
    ui.topLayer = select({'aria-label': 'captured layer', 'data-testid': 'top-layer'}, ctx.run.layers.map((l) => [l, l]), ctx.state.layer);
    ui.topK = select({'aria-label': 'images per unit'}, [[5, '5'], [9, '9'], [16, '16']], 9);
    ui.topSort = select({'aria-label': 'order'}, [['unit', 'unit index'], ['max', 'strongest first']], 'unit');
    ui.topOut = h('div', {class: 'insp-units', 'data-testid': 'top-units'});
    ui.histOut = h('div', {class: 'insp-hist', 'data-testid': 'unit-history'});
    ui.topLayer.addEventListener('change', () => ctx.set({layer: ui.topLayer.value}, {push: true}));
    ui.topK.addEventListener('change', () => { renderTop(); renderHist(); });
    ui.topSort.addEventListener('change', () => renderTop());
    ui.topShown = 32;
    return h('section', {class: 'panel', 'data-testid': 'inspect-topunits'},
      h('h2', {}, 'Top units'),
      h('p', {class: 'muted small'}, 'The probe images that excite each unit most, from the stored activations (no model needed). Click a unit for its top images at every step; click an image to select it.'),
      h('div', {class: 'controls'}, field('layer', ui.topLayer), field('images', ui.topK), field('order', ui.topSort)),
      ui.topOut, ui.histOut);
  }

  const thumb = (pid, act) => h('img', {
    class: `thumb${preds && rowOf(pid) >= 0 && preds.correct[rowOf(pid)] !== 1 ? ' wrong' : ''}`, src: thumbURL(ctx.run.run_id, pid), alt: `probe ${pid}`,
    title: `probe #${pid} · activation ${fmt(act, 3)}`, onclick: () => ctx.set({sel: pid}, {push: true}),
  });

  async function renderTop() {
    const my = ++gen.top;
    ui.topLayer.value = ctx.state.layer;
    spinner(ui.topOut, 'Loading top units…');
    try {
      const {meta, arrays} = await getBinary(`${stepBase()}/top_units`, {layer: ctx.state.layer, k: ui.topK.value});
      if (my !== gen.top) return;
      const {n_units: d, k} = meta;
      let units = Array.from({length: d}, (_, u) => u);
      if (ui.topSort.value === 'max') units.sort((a, b) => arrays.activation[b * k] - arrays.activation[a * k]);
      const rows = units.slice(0, ui.topShown).map((u) => h('div', {class: `insp-unit${u === ui.topUnit ? ' active' : ''}`, 'data-unit': u},
        h('button', {class: 'btn insp-unit-btn', type: 'button', title: 'Show this unit over the steps', onclick: () => { ui.topUnit = u; renderTop(); renderHist(); }},
          h('b', {}, `#${u}`), h('span', {class: 'small muted'}, ` max ${fmt(arrays.activation[u * k], 2)}`)),
        h('div', {class: 'gallery'}, Array.from({length: k}, (_, r) => thumb(arrays.probe_id[u * k + r], arrays.activation[u * k + r])))));
      const more = d > ui.topShown ? h('button', {class: 'btn', type: 'button', onclick: () => { ui.topShown += 64; renderTop(); }}, `show more (${d - ui.topShown} left)`) : null;
      clear(ui.topOut).append(h('div', {class: 'small muted'}, `${ctx.state.layer}: ${d} units at step ${meta.step}`), ...rows, more);
    } catch (err) {
      if (my === gen.top) showError(ui.topOut, err);
    }
  }

  async function renderHist() {
    const my = ++gen.hist;
    if (ui.topUnit === undefined) { clear(ui.histOut); return; }
    spinner(ui.histOut, `Loading unit ${ui.topUnit} over the steps…`);
    try {
      const {meta, arrays} = await getBinary(`${base()}/inspect/unit_history`, {layer: ctx.state.layer, unit: ui.topUnit, k: ui.topK.value});
      if (my !== gen.hist) return;
      const k = meta.k;
      const rows = Array.from(arrays.steps, (step, s) => h('div', {class: `insp-hist-row${step === ctx.state.step ? ' current' : ''}`},
        h('button', {class: 'btn insp-step', type: 'button', title: 'Go to this step', onclick: () => ctx.set({step}, {push: true})}, `step ${step}`),
        h('div', {class: 'gallery'}, Array.from({length: k}, (_, r) => thumb(arrays.probe_id[s * k + r], arrays.activation[s * k + r])))));
      clear(ui.histOut).append(h('h3', {}, `${meta.layer} unit ${meta.unit} over the steps`), ...rows);
    } catch (err) {
      if (my === gen.hist) showError(ui.histOut, err);
    }
  }

  function markHistStep() {
    for (const row of ui.histOut.querySelectorAll('.insp-hist-row')) {
      row.classList.toggle('current', row.querySelector('.insp-step').textContent === `step ${ctx.state.step}`);
    }
  }

  // -- wiring

  function pickDefaultImage() {
    // No image selected: take the first misclassified one at this step (else the first) and say so.
    let j = Array.from(preds.correct).findIndex((c) => c !== 1);
    const wrong = j >= 0;
    if (!wrong) j = 0;
    autoPicked = probes.probe_id[j];
    ui.note.textContent = `No image was selected, so this shows probe #${autoPicked}, the ${wrong ? 'first misclassified image' : 'first probe image (none is misclassified)'} at step ${ctx.state.step}. Click an image in any view, or type an id, to inspect another.`;
    ctx.set({sel: autoPicked});
  }

  // Keys changed since the panels were last brought up to date: an update that
  // stops early (no image yet, predictions failed) leaves them for the next one.
  const pending = new Set();

  async function refresh(changed) {
    for (const key of changed) pending.add(key);
    try {
      await ensureProbes();
      await ensurePreds();
    } catch (err) {
      showError(ui.head, err);
      return;
    }
    if (ctx.state.sel === undefined || ctx.state.sel === null) { pickDefaultImage(); return; }
    const todo = new Set(pending);
    pending.clear();
    if (ctx.state.sel !== autoPicked) ui.note.textContent = '';
    const moved = todo.has('step') || todo.has('view');
    if (moved || todo.has('layer')) renderTop();
    if (todo.has('layer')) { ui.topUnit = undefined; renderHist(); } else if (moved) markHistStep();
    try {
      await ensureModel();
    } catch (err) {
      // No weights at this step (or the class cannot be imported): say so where the model is needed.
      renderHead();
      for (const el of [ui.attrGrid, ui.actOut]) showError(el, err);
      return;
    }
    if (moved || todo.has('sel')) { renderAttr(); renderAct(); }
    if (ui.maxShown && (moved || (todo.has('sel') && ui.maxStart.value === 'probe'))) renderMax();
  }

  return {
    id: 'inspect',
    title: 'Inspect',
    mount(el, c) {
      ctx = c;
      root = h('div', {class: 'inspect', 'data-testid': 'inspect'}, buildAttr(), buildAct(), buildMax(), buildTop());
      clear(el).append(root);
    },
    update(c, changed) {
      ctx = c;
      return refresh(changed);
    },
  };
}

export default view();
