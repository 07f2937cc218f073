// The timeline: a slider over the run's snapshot steps that drives every panel.
// Play/pause with a speed control; arrow keys step through; new steps of a
// running run appear without a reload.

import {getJSON} from './api.js';
import {h, clear, fmt} from './dom.js';
import {state, set, commit} from './state.js';

const SPEEDS = [0.5, 1, 2, 4, 8];

export function mount(el, ctx) {
  let steps = ctx.run.steps;
  let timer = null;
  const slider = h('input', {type: 'range', min: 0, max: Math.max(steps.length - 1, 0), step: 1, value: 0, 'aria-label': 'step', 'data-testid': 'timeline-slider'});
  const play = h('button', {class: 'btn', type: 'button', 'data-testid': 'play', title: 'Play / pause (space)'}, '▶');
  const speed = h('select', {'aria-label': 'speed', 'data-testid': 'speed'}, SPEEDS.map((s) => h('option', {value: s, selected: s === 2}, `${s}×`)));
  const label = h('span', {class: 'step-label', 'data-testid': 'step-label'});
  const ticks = h('div', {class: 'ticks'});
  clear(el).append(h('div', {class: 'timeline-row'}, play, speed, h('div', {class: 'slider-wrap'}, slider, ticks), label));

  const indexOf = (step) => {
    const i = steps.findIndex((s) => s.step === step);
    return i < 0 ? steps.length - 1 : i;
  };
  const accOf = (s) => s.val_acc ?? s.probe_acc;

  function render() {
    const i = indexOf(state.step);
    slider.max = Math.max(steps.length - 1, 0);
    slider.value = i;
    const s = steps[i];
    label.textContent = s ? `step ${s.step} · epoch ${s.epoch} · ${s.val_acc !== undefined && s.val_acc !== null ? 'val' : 'probe'} acc ${fmt(accOf(s))}` : 'no steps yet';
    clear(ticks);
    steps.forEach((t, j) => {
      const left = steps.length > 1 ? (100 * j) / (steps.length - 1) : 0;
      ticks.append(h('span', {class: 'tick' + (t.nonfinite_layers && t.nonfinite_layers.length ? ' bad' : ''), style: `left:${left}%`, title: `step ${t.step}`}));
    });
  }

  // history: 'push' for a deliberate step (arrow keys), 'replace' while
  // playing, 'none' while the slider is dragged (committed on release).
  function go(i, history = 'replace') {
    i = Math.max(0, Math.min(steps.length - 1, i));
    if (steps[i]) set({step: steps[i].step}, {push: history === 'push', url: history !== 'none'});
  }

  function stop() { clearInterval(timer); timer = null; play.textContent = '▶'; }
  function start() {
    if (indexOf(state.step) >= steps.length - 1) go(0);
    play.textContent = '❚❚';
    timer = setInterval(() => {
      const i = indexOf(state.step);
      if (i >= steps.length - 1) stop(); else go(i + 1);
    }, 1000 / Number(speed.value));
  }

  slider.addEventListener('input', () => go(Number(slider.value), 'none'));
  slider.addEventListener('change', () => commit());
  play.addEventListener('click', () => (timer ? stop() : start()));
  speed.addEventListener('change', () => { if (timer) { stop(); start(); } });
  function onKey(e) {
    if (e.target.closest && e.target.closest('input[type=text], input[type=number], textarea, select')) return;
    if (e.key === 'ArrowRight') { go(indexOf(state.step) + 1, 'push'); e.preventDefault(); }
    else if (e.key === 'ArrowLeft') { go(indexOf(state.step) - 1, 'push'); e.preventDefault(); }
    else if (e.key === ' ' && e.target === document.body) { (timer ? stop() : start()); e.preventDefault(); }
  }
  document.addEventListener('keydown', onKey);

  // A run still training: poll for new steps.
  let poll = null;
  if (!ctx.run.ended_at) {
    poll = setInterval(async () => {
      try {
        const fresh = await getJSON(`/api/runs/${encodeURIComponent(ctx.run.run_id)}`);
        const atEnd = indexOf(state.step) === steps.length - 1;
        if (fresh.steps.length !== steps.length) {
          steps = ctx.run.steps = fresh.steps;
          render();
          if (atEnd && !timer) go(steps.length - 1);
        }
        if (fresh.ended_at) clearInterval(poll);
      } catch (_) { /* transient: try again next tick */ }
    }, 3000);
  }
  render();
  return {
    steps: () => steps,
    stepInfo: (step) => steps[indexOf(step)],
    update(changed) { if (changed.has('step')) render(); },
    destroy() { stop(); clearInterval(poll); document.removeEventListener('keydown', onKey); clear(el); },
  };
}
