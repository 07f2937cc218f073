// One timeline for both runs: the slider walks the matched pairs of steps; each run can be pinned to a step
// of its own instead (then it stays there while the other follows the slider).

import {h, clear, select, field} from '../../dom.js';

export function mount(el, ctx) {
  function draw() {
    const m = ctx.summary.matched;
    const {step_a, step_b, pair} = ctx.steps();
    const i = Math.max(0, m.indexOf(pair));
    const slider = h('input', {type: 'range', min: 0, max: m.length - 1, value: i, 'data-testid': 'compare-slider', 'aria-label': 'matched step'});
    slider.addEventListener('input', () => ctx.set({step: m[Number(slider.value)].step_a}));
    slider.addEventListener('change', () => ctx.set({step: m[Number(slider.value)].step_a}, {push: true}));
    const runOf = (id) => ctx.summary.runs.find((r) => r.run_id === id);
    const pin = (key, run) => select({'data-testid': key, onchange: (e) => ctx.set({[key]: e.target.value === '' ? null : Number(e.target.value)}, {push: true})},
      [['', 'follow the slider'], ...runOf(run).steps.map((s) => [s, `step ${s}`])], ctx.state[key] ?? '');
    const epoch = (run, step) => { const r = m.find((x) => (run === 'a' ? x.step_a : x.step_b) === step); return r ? ` (epoch ${run === 'a' ? r.epoch_a : r.epoch_b})` : ''; };
    clear(el).append(
      h('div', {class: 'slider-row'},
        h('button', {type: 'button', 'aria-label': 'previous', onclick: () => i > 0 && ctx.set({step: m[i - 1].step_a}, {push: true})}, '◀'),
        slider,
        h('button', {type: 'button', 'aria-label': 'next', onclick: () => i < m.length - 1 && ctx.set({step: m[i + 1].step_a}, {push: true})}, '▶'),
        h('span', {'data-testid': 'compare-steps', 'data-step-a': step_a, 'data-step-b': step_b},
          `A: step ${step_a}${epoch('a', step_a)}${ctx.state.pin_a !== null ? ' (pinned)' : ''} · B: step ${step_b}${epoch('b', step_b)}${ctx.state.pin_b !== null ? ' (pinned)' : ''}`)),
      h('div', {class: 'toolbar'}, field('pin A', pin('pin_a', ctx.summary.run_a)), field('pin B', pin('pin_b', ctx.summary.run_b)),
        h('span', {class: 'note'}, `${m.length} matched steps, by ${ctx.summary.match}`)));
  }
  return {
    update(changed) { if (changed.has('summary') || changed.has('step') || changed.has('pin_a') || changed.has('pin_b')) draw(); },
    destroy() { clear(el); },
  };
}
