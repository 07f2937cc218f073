// Inspect panel 4: the top probe images of each unit of a captured layer, from
// the stored activations (no model needed), and one unit's top images at
// every step.

import {getBinary, thumbURL} from '../../api.js';
import {h, clear, fmt, showError, spinner, fillPanel, select, field} from '../../dom.js';
import {moved} from './shared.js';

export function mount(el, ctx) {
  const {data} = ctx;
  const layerSel = select({'aria-label': 'captured layer', 'data-testid': 'top-layer'}, ctx.run.layers.map((l) => [l, l]), ctx.state.layer);
  const kSel = select({'aria-label': 'images per unit'}, [[5, '5'], [9, '9'], [16, '16']], 9);
  const sortSel = select({'aria-label': 'order'}, [['unit', 'unit index'], ['max', 'strongest first']], 'unit');
  const topOut = h('div', {class: 'insp-units', 'data-testid': 'top-units'});
  const histOut = h('div', {class: 'insp-hist', 'data-testid': 'unit-history'});
  layerSel.addEventListener('change', () => ctx.set({layer: layerSel.value}, {push: true}));
  kSel.addEventListener('change', () => { renderTop(); renderHist(); });
  sortSel.addEventListener('change', () => renderTop());
  fillPanel(el, 'Top units', 'inspect-topunits',
    h('p', {class: 'muted small'}, 'The probe images that excite each unit most, from the stored activations (no model needed). Click a unit for its top images at every step; click an image to select it.'),
    h('div', {class: 'controls'}, field('layer', layerSel), field('images', kSel), field('order', sortSel)),
    topOut, histOut);
  const gen = {top: 0, hist: 0};
  let shownUnits = 32;
  let unit; // the unit whose history is shown

  // correct: 1 right, 0 wrong, 2 unknown; at the step the thumbnail stands for.
  const thumb = (pid, act, correct, step) => h('img', {class: `thumb${correct === 0 ? ' wrong' : ''}`, src: thumbURL(ctx.run.run_id, pid), alt: `probe ${pid}`,
    'data-correct': String(correct), title: `probe #${pid} · activation ${fmt(act, 3)}${correct === 2 ? '' : ` · ${correct ? 'right' : 'wrong'} at step ${step}`}`,
    onclick: () => ctx.set({sel: pid}, {push: true})});
  // The current step's top units: coloured by the current predictions.
  const correctNow = (pid) => {
    const i = data.rowOf(pid);
    return data.preds && i >= 0 ? (data.preds.correct[i] === 1 ? 1 : 0) : 2;
  };
  const thumbs = (arrays, row, k, correctOf, step) => h('div', {class: 'gallery'}, Array.from({length: k}, (_, r) => {
    const pid = arrays.probe_id[row * k + r];
    return thumb(pid, arrays.activation[row * k + r], correctOf(pid, row * k + r), step);
  }));

  async function renderTop() {
    const my = ++gen.top;
    layerSel.value = ctx.state.layer;
    spinner(topOut, 'Loading top units…');
    try {
      const {meta, arrays} = await getBinary(`${data.stepBase()}/top_units`, {layer: ctx.state.layer, k: kSel.value});
      if (my !== gen.top) return;
      const {n_units: d, k} = meta;
      const units = Array.from({length: d}, (_, u) => u);
      if (sortSel.value === 'max') units.sort((a, b) => arrays.activation[b * k] - arrays.activation[a * k]);
      const rows = units.slice(0, shownUnits).map((u) => h('div', {class: `insp-unit${u === unit ? ' active' : ''}`, 'data-unit': u},
        h('button', {class: 'btn insp-unit-btn', type: 'button', title: 'Show this unit over the steps', onclick: () => { unit = u; renderTop(); renderHist(); }},
          h('b', {}, `#${u}`), h('span', {class: 'small muted'}, ` max ${fmt(arrays.activation[u * k], 2)}`)),
        thumbs(arrays, u, k, correctNow, meta.step)));
      const more = d > shownUnits ? h('button', {class: 'btn', type: 'button', onclick: () => { shownUnits += 64; renderTop(); }}, `show more (${d - shownUnits} left)`) : '';
      clear(topOut).append(h('div', {class: 'small muted'}, `${ctx.state.layer}: ${d} units at step ${meta.step}`), ...rows, more);
    } catch (err) {
      if (my === gen.top) showError(topOut, err);
    }
  }

  async function renderHist() {
    const my = ++gen.hist;
    if (unit === undefined) { clear(histOut); return; }
    spinner(histOut, `Loading unit ${unit} over the steps…`);
    try {
      const {meta, arrays} = await getBinary(`${data.base()}/inspect/unit_history`, {layer: ctx.state.layer, unit, k: kSel.value});
      if (my !== gen.hist) return;
      // Each row's borders are that row's step's predictions (arrays.correct), not the current step's.
      const rows = Array.from(arrays.steps, (step, s) => h('div', {class: `insp-hist-row${step === ctx.state.step ? ' current' : ''}`, 'data-step': step},
        h('button', {class: 'btn insp-step', type: 'button', title: 'Go to this step', onclick: () => ctx.set({step}, {push: true})}, `step ${step}`),
        thumbs(arrays, s, meta.k, (pid, at) => arrays.correct[at], step)));
      clear(histOut).append(h('h3', {}, `${meta.layer} unit ${meta.unit} over the steps`),
        h('p', {class: 'muted small'}, 'Red border: the model got the image wrong at that row\'s step.'), ...rows);
    } catch (err) {
      if (my === gen.hist) showError(histOut, err);
    }
  }

  function markHistStep() {
    for (const row of histOut.querySelectorAll('.insp-hist-row')) {
      row.classList.toggle('current', row.querySelector('.insp-step').textContent === `step ${ctx.state.step}`);
    }
  }

  return {
    update(changed) {
      if (moved(changed) || changed.has('layer')) renderTop();
      if (changed.has('layer')) { unit = undefined; renderHist(); } else if (moved(changed)) markHistStep();
    },
    destroy() { gen.top += 1; gen.hist += 1; clear(el); },
  };
}
