// Inspect panel 1: the selected image and its attribution maps, one request
// per method, one at a time (the server has few cores, and the maps come in
// one by one). With no image selected it asks for one (it never picks one by itself).

import {getJSON, thumbURL} from '../../api.js';
import {h, clear, fmt, pct, showError, spinner, fillPanel, select, field} from '../../dom.js';
import {weightsLine} from '../../weights.js';
import {moved, sig, num, fillPicker} from './shared.js';

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

function card(title, hint) {
  const body = h('div', {class: 'insp-img'});
  const caption = h('figcaption', {class: 'small muted'});
  const fig = h('figure', {class: 'insp-card', title: hint || ''}, h('div', {class: 'insp-title'}, title), body, caption);
  return {fig, body, caption};
}

// The controls: the target, which methods, the overlay, and each method's settings.
function controls(ctx, data) {
  const n = ctx.run.class_names.length;
  const [, hgt, wid] = ctx.run.input_shape;
  const size = Math.max(1, Math.floor(Math.min(hgt, wid) / 4));
  const numberInput = (attrs) => h('input', {type: 'number', ...attrs});
  return {
    target: select({'aria-label': 'target class', 'data-testid': 'inspect-target'}, [['', 'predicted'], ...Array.from({length: n}, (_, i) => [i, data.classLabel(i)])], ''),
    only: select({'aria-label': 'method', 'data-testid': 'inspect-method'}, [['all', 'all methods'], ...METHODS.map((m) => [m.id, m.title])], 'all'),
    overlay: h('input', {type: 'checkbox', checked: true, 'aria-label': 'overlay on the image'}),
    opacity: h('input', {type: 'range', min: 0.1, max: 1, step: 0.05, value: 0.9, 'aria-label': 'overlay opacity'}),
    camLayer: h('select', {'aria-label': 'Grad-CAM layer'}),
    lgLayer: h('select', {'aria-label': 'layer-gradient layer'}),
    lgUnit: numberInput({min: 0, placeholder: 'all', style: 'width:5em', 'aria-label': 'layer-gradient unit'}),
    occSize: numberInput({min: 1, max: Math.min(hgt, wid), value: size, style: 'width:4em', 'aria-label': 'occluder size'}),
    occStride: numberInput({min: 1, value: Math.max(1, Math.floor(size / 2)), style: 'width:4em', 'aria-label': 'occluder stride'}),
    occBaseline: numberInput({step: 0.1, value: 0, style: 'width:5em', 'aria-label': 'occluder value'}),
    occMode: select({'aria-label': 'occlusion score'}, [['class', 'target class score'], ['unit', 'a unit']], 'class'),
    occLayer: h('select', {'aria-label': 'occlusion layer'}),
    occUnit: numberInput({min: 0, value: 0, style: 'width:5em', 'aria-label': 'occlusion unit'}),
    sgSamples: numberInput({min: 1, max: 100, value: 25, style: 'width:4.5em', 'aria-label': 'smoothgrad samples'}),
    sgStdev: numberInput({min: 0, max: 1, step: 0.05, value: 0.15, style: 'width:4.5em', 'aria-label': 'smoothgrad noise'}),
  };
}

function layout(el, ui) {
  const occUnitBits = h('span', {class: 'insp-occ-unit', hidden: true}, field('layer', ui.occLayer), field('unit', ui.occUnit));
  ui.occMode.addEventListener('change', () => { occUnitBits.hidden = ui.occMode.value !== 'unit'; });
  const row = (title, ...bits) => h('div', {class: 'controls'}, h('b', {class: 'small'}, title), ...bits);
  fillPanel(el, 'Attribution for the selected image', 'inspect-attr',
    ui.head,
    h('div', {class: 'controls'}, field('target', ui.target), field('show', ui.only), field('overlay', ui.overlay), field('opacity', ui.opacity), ui.status),
    h('details', {class: 'insp-settings'}, h('summary', {}, 'Method settings'),
      row('SmoothGrad', field('samples', ui.sgSamples), field('noise', ui.sgStdev)),
      row('Grad-CAM', field('layer', ui.camLayer)),
      row('Layer gradient', field('layer', ui.lgLayer), field('unit', ui.lgUnit)),
      row('Occlusion', field('size', ui.occSize), field('stride', ui.occStride), field('value', ui.occBaseline), field('score of', ui.occMode), occUnitBits)),
    ui.weights.el, ui.grid);
}

export function mount(el, ctx) {
  const {data} = ctx;
  const ui = controls(ctx, data);
  Object.assign(ui, {
    head: h('div', {class: 'insp-head', 'data-testid': 'inspect-image'}),
    status: h('span', {class: 'muted small', 'data-testid': 'inspect-attr-status'}),
    grid: h('div', {class: 'insp-grid', 'data-testid': 'inspect-attr-grid'}),
    weights: weightsLine('inspect-attr-weights'),
  });
  layout(el, ui);
  let gen = 0;
  const pictures = () => thumbURL(ctx.run.run_id, ctx.state.sel);

  // Overlay on: the RGBA map (alpha = magnitude) over the image; off: the opaque map alone.
  function styleHeat(img) {
    img.src = ui.overlay.checked ? img.dataset.overlay : img.dataset.opaque;
    img.style.opacity = ui.overlay.checked ? ui.opacity.value : 1;
  }
  const restyle = () => { for (const img of ui.grid.querySelectorAll('img.heat')) styleHeat(img); };
  ui.overlay.addEventListener('change', restyle);
  ui.opacity.addEventListener('input', restyle);
  for (const c of [ui.target, ui.only, ui.camLayer, ui.lgLayer, ui.lgUnit, ui.occSize, ui.occStride, ui.occBaseline, ui.occMode, ui.occLayer, ui.occUnit, ui.sgSamples, ui.sgStdev]) {
    c.addEventListener('change', () => render());
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
    const i = data.rowOf(pid);
    if (i < 0) { clear(ui.head).append(h('span', {class: 'error'}, `Probe image #${pid} is not in this run.`)); return; }
    const {preds, classLabel} = data;
    const pred = preds.pred[i];
    const p = preds.confidence[i];
    const ok = preds.correct[i] === 1;
    clear(ui.head).append(
      h('img', {class: `thumb big ${ok ? 'right' : 'wrong'}`, src: pictures(), alt: `probe ${pid}`}),
      h('div', {},
        h('div', {}, h('b', {}, `probe #${pid}`), ` · label ${classLabel(data.probes.label[i])}`),
        h('div', {}, `predicted ${classLabel(pred)} (${pct(p)}) `, h('span', {class: ok ? 'badge live' : 'badge bad'}, ok ? 'correct' : 'wrong'), ` at step ${ctx.state.step}`),
        h('div', {class: 'controls insp-pick'},
          field('probe id', h('input', {type: 'number', value: pid, style: 'width:6em', 'aria-label': 'probe id', onchange: (e) => ctx.set({sel: Number(e.target.value)}, {push: true})})),
          h('button', {class: 'btn', type: 'button', onclick: () => nextMisclassified()}, 'next misclassified →'))));
    ui.target.options[0].textContent = `predicted (${classLabel(pred)})`;
  }

  function nextMisclassified() {
    const {probes, preds} = data;
    const n = probes.probe_id.length;
    const start = Math.max(data.rowOf(ctx.state.sel), 0);
    for (let k = 1; k <= n; k++) {
      const j = (start + k) % n;
      if (preds.correct[j] !== 1) { ctx.set({sel: probes.probe_id[j]}, {push: true}); return; }
    }
  }

  function showMap(c, res) {
    const heat = h('img', {class: 'heat', alt: `${c.m.title} map`, dataset: {overlay: res.overlay, opaque: res.png}});
    styleHeat(heat);
    clear(c.body).append(h('img', {class: 'base', src: pictures(), alt: ''}), heat);
    const unit = res.params.unit !== undefined && res.params.unit !== null ? ` #${res.params.unit}` : '';
    const what = res.params.layer !== undefined && res.target === null ? `${res.params.layer}${unit}` : `class ${res.target}`;
    clear(c.caption).append(
      h('div', {}, `${what} · ${res.signed ? '±' : 'max '}${sig(Math.max(Math.abs(res.min), Math.abs(res.max)))}`),
      h('div', {}, res.cached ? 'cached' : `${fmt(res.seconds, 2)} s`));
    if (res.notes && res.notes.length) c.caption.append(h('div', {class: 'insp-warn'}, res.notes.join(' ')));
    ui.weights.show(res);
  }

  async function render() {
    const my = ++gen;
    const pid = ctx.state.sel;
    if (pid === undefined || pid === null) return;
    renderHead();
    const methods = ui.only.value === 'all' ? METHODS : METHODS.filter((m) => m.id === ui.only.value);
    const original = card('Image', 'The probe image as the model sees it.');
    original.body.append(h('img', {class: 'base', src: pictures(), alt: 'image'}));
    const i = data.rowOf(pid);
    const target = ui.target.value === '' ? data.preds.pred[i] : Number(ui.target.value);
    original.caption.textContent = `target ${data.classLabel(target)}`;
    data.probsOf(pid).then((row) => {
      if (my === gen) original.caption.textContent = `target ${data.classLabel(target)} · p=${pct(row.probs[target])}`;
    }, (err) => { if (my === gen) original.caption.textContent = `target ${data.classLabel(target)} · p unknown (${err.message})`; });
    const cards = methods.map((m) => ({m, ...card(m.title, m.hint)}));
    for (const c of cards) { c.fig.dataset.testid = `attr-${c.m.id}`; spinner(c.body, ''); }
    clear(ui.grid).append(original.fig, ...cards.map((c) => c.fig));
    ui.weights.show(null);
    for (const [k, c] of cards.entries()) {
      if (my !== gen) return;
      ui.status.textContent = `computing ${k + 1}/${cards.length}: ${c.m.title}…`;
      try {
        const res = await getJSON(`${data.stepBase()}/attribution`, methodParams(c.m.id));
        if (my !== gen) return;
        showMap(c, res);
      } catch (err) {
        if (my !== gen) return;
        showError(c.body, err);
      }
    }
    if (my === gen) ui.status.textContent = '';
  }

  // No image selected: say so, and offer ways to pick one. Nothing is selected until the user picks.
  function askForImage() {
    gen += 1;
    const j = Array.from(data.preds.correct).findIndex((c) => c !== 1);
    const pickId = h('input', {type: 'number', style: 'width:6em', 'aria-label': 'probe id', 'data-testid': 'inspect-pick-id',
      onchange: (e) => { if (e.target.value !== '') ctx.set({sel: Number(e.target.value)}, {push: true}); }});
    clear(ui.head).append(h('div', {class: 'insp-pick-prompt', 'data-testid': 'inspect-pick'},
      h('b', {}, 'Pick an image'), ': click one in any view (the scatter, a gallery, a confusion cell), type a probe id, or ',
      j >= 0 ? h('button', {class: 'btn', type: 'button', 'data-testid': 'inspect-pick-wrong',
        onclick: () => ctx.set({sel: data.probes.probe_id[j]}, {push: true})}, `take the first misclassified (#${data.probes.probe_id[j]})`)
        : h('span', {}, 'note that no image is misclassified at this step'),
      '.', h('div', {class: 'controls insp-pick'}, field('probe id', pickId))));
    clear(ui.grid);
    ui.weights.show(null);
  }

  return {
    update(changed) {
      if (data.error) { showError(ui.head, data.error); return; }
      if (ctx.state.sel === undefined || ctx.state.sel === null) { askForImage(); return; }
      if (data.modelError) { renderHead(); showError(ui.grid, data.modelError); return; }
      if (changed.has('model')) {
        const convs = data.model.conv_layers;
        const lastConv = convs[convs.length - 1];
        fillPicker(ui.camLayer, data.layerOptions((l) => l.spatial), lastConv);
        fillPicker(ui.lgLayer, data.layerOptions(() => true), lastConv);
        fillPicker(ui.occLayer, data.layerOptions(() => true), lastConv);
      }
      if (moved(changed) || changed.has('sel')) render();
    },
    destroy() { gen += 1; clear(el); },
  };
}
