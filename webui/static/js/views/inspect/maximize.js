// Inspect panel 3: activation maximisation of a class or a unit, run on the
// server on request, and again when the step changes once it has been run.

import {getJSON} from '../../api.js';
import {h, clear, fmt, pct, showError, spinner, fillPanel, select, field} from '../../dom.js';
import {weightsLine} from '../../weights.js';
import {moved, num, fillPicker} from './shared.js';

const REGULARIZERS = [
  // on: default switch; fields: [param, label, default, step]
  {id: 'l2', label: 'L2 decay', on: true, fields: [['l2', 'weight', 0.01, 0.005]]},
  {id: 'blur', label: 'Gaussian blur', on: true, fields: [['blur_every', 'every k steps', 4, 1], ['blur_sigma', 'σ', 0.5, 0.1]]},
  {id: 'clip_norm', label: 'Clip small-norm pixels', on: false, fields: [['clip_norm_pct', 'percentile', 10, 5]]},
  {id: 'clip_contrib', label: 'Clip small-contribution pixels', on: false, fields: [['clip_contrib_pct', 'percentile', 10, 5]]},
  {id: 'tv', label: 'Total variation', on: false, fields: [['tv', 'weight', 0.5, 0.1]]},
  {id: 'bound', label: 'Bounded range', on: true, fields: [['bound', 'weight', 1, 0.5]]},
  {id: 'jitter', label: 'Jitter', on: true, fields: [['jitter', 'pixels', 1, 1]]},
];

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

function controls(ctx, data) {
  const n = ctx.run.class_names.length;
  const numberInput = (attrs) => h('input', {type: 'number', style: 'width:5em', ...attrs});
  return {
    kind: select({'aria-label': 'objective'}, [['class', 'a class'], ['unit', 'a unit']], 'class'),
    cls: select({'aria-label': 'class to maximise', 'data-testid': 'maxact-class'}, Array.from({length: n}, (_, i) => [i, data.classLabel(i)]), 0),
    layer: h('select', {'aria-label': 'layer to maximise'}),
    unit: numberInput({min: 0, value: 0, 'aria-label': 'unit to maximise'}),
    start: select({'aria-label': 'start image'}, [['zeros', 'zeros'], ['noise', 'noise'], ['probe', 'the selected image']], 'zeros'),
    steps: numberInput({min: 1, max: 500, value: 200, 'aria-label': 'steps'}),
    lr: numberInput({min: 0.001, step: 0.01, value: 0.05, 'aria-label': 'step size'}),
    seed: numberInput({min: 0, value: 0, style: 'width:4em', 'aria-label': 'seed'}),
    reg: REGULARIZERS.map((r) => ({
      r,
      on: h('input', {type: 'checkbox', checked: r.on, 'aria-label': r.label}),
      inputs: r.fields.map(([param, label, value, step]) => [param, numberInput({value, step, min: 0, 'aria-label': `${r.label} ${label}`}), label]),
    })),
  };
}

function result(res, what, classLabel) {
  return [
    h('img', {class: 'insp-maximg', src: res.png, alt: `image maximising ${what}`, 'data-testid': 'maxact-img'}),
    h('div', {class: 'insp-maxinfo'},
      h('div', {}, h('b', {}, what), ` at step ${res.step}`),
      h('div', {'data-testid': 'maxact-score'}, `${res.target !== null ? 'class score' : 'mean activation'} ${fmt(res.score, 3)} (start ${fmt(res.start_score, 3)})`),
      res.score <= res.start_score ? h('div', {class: 'insp-warn'}, 'The optimisation did not raise the score: try a smaller step size or weaker regularisers.') : null,
      res.out_of_distribution ? h('div', {class: 'insp-warn insp-ood', 'data-testid': 'maxact-ood'},
        h('b', {}, 'Out of distribution: '), `${pct(res.saturation)} of the pixel values lie beyond the probe images' range (by more than ${pct(res.saturation_margin)} of it), so the picture is clipped, saturated noise. `
        + 'The score rose, but on an image unlike any the model was trained on: read it as how the model extrapolates, not as what the class looks like. '
        + 'Raise the bounded-range weight or the L2 decay, or take fewer steps.') : null,
      h('div', {class: 'small muted', 'data-testid': 'maxact-saturation'}, `saturated: ${pct(res.saturation)} of values beyond the data's range (flagged from ${pct(res.saturation_limit)})`),
      res.probability !== null ? h('div', {}, `softmax probability ${pct(res.probability)}`) : null,
      h('div', {}, `the model sees: ${classLabel(res.top_class)} (${pct(res.top_probability)})`),
      sparkline(res.history),
      h('div', {class: 'small muted'}, res.cached ? 'cached' : `${fmt(res.seconds, 2)} s on the server`)),
  ];
}

export function mount(el, ctx) {
  const {data} = ctx;
  const ui = controls(ctx, data);
  const unitBits = h('span', {hidden: true}, field('layer', ui.layer), field('unit', ui.unit));
  const classBits = field('class', ui.cls);
  ui.kind.addEventListener('change', () => { unitBits.hidden = ui.kind.value !== 'unit'; classBits.hidden = !unitBits.hidden; });
  const runBtn = h('button', {class: 'btn primary', type: 'button', 'data-testid': 'maxact-run', onclick: () => render()}, 'Run');
  const out = h('div', {class: 'insp-row', 'data-testid': 'maxact-result'});
  const weights = weightsLine('maxact-weights');
  fillPanel(el, 'Activation maximisation', 'inspect-maxact',
    h('p', {class: 'muted small'}, 'Gradient ascent on the image to raise a class score or a unit\'s mean activation, with regularisers that keep it image-like. Runs on the server; re-runs when the step changes.'),
    h('div', {class: 'controls'}, field('maximise', ui.kind), classBits, unitBits, field('start from', ui.start), field('steps', ui.steps), field('step size', ui.lr), field('seed', ui.seed)),
    h('div', {class: 'insp-regs'}, ui.reg.map(({r, on, inputs}) => h('label', {class: 'inline insp-reg'}, on, h('b', {}, r.label), inputs.map(([, input, label]) => h('span', {class: 'small'}, label, ' ', input))))),
    h('div', {class: 'controls'}, runBtn),
    weights.el, out);
  let gen = 0;
  let shown = false; // run once: from then on it follows the step
  let ticker = null;

  function params() {
    const p = {start: ui.start.value, steps: num(ui.steps), lr: num(ui.lr), seed: num(ui.seed)};
    if (p.start === 'probe') p.probe = ctx.state.sel;
    if (ui.kind.value === 'class') p.target = ui.cls.value;
    else Object.assign(p, {layer: ui.layer.value, unit: num(ui.unit)});
    for (const {on, inputs} of ui.reg) if (on.checked) for (const [param, input] of inputs) p[param] = num(input);
    return p;
  }

  async function render() {
    const my = ++gen;
    shown = true;
    runBtn.disabled = true;
    const t0 = performance.now();
    spinner(out, 'Optimising…');
    weights.show(null);
    clearInterval(ticker);
    ticker = setInterval(() => {
      const p = out.querySelector('.progress');
      if (p) p.lastChild.textContent = `Optimising… ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    }, 200);
    try {
      const res = await getJSON(`${data.stepBase()}/maximize`, params());
      if (my !== gen) return;
      const what = res.target !== null ? `class ${data.classLabel(res.target)}` : `${res.layer} unit ${res.unit}`;
      clear(out).append(...result(res, what, data.classLabel));
      weights.show(res);
    } catch (err) {
      if (my === gen) showError(out, err);
    } finally {
      if (my === gen) { clearInterval(ticker); runBtn.disabled = false; }
    }
  }

  return {
    update(changed) {
      if (data.modelError) return;
      if (changed.has('model')) fillPicker(ui.layer, data.layerOptions(() => true), data.model.conv_layers[data.model.conv_layers.length - 1]);
      if (shown && (moved(changed) || (changed.has('sel') && ui.start.value === 'probe'))) render();
    },
    destroy() { gen += 1; clearInterval(ticker); clear(el); },
  };
}
