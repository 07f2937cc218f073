// The timeline: a slider over the run's snapshot steps that drives every panel.
// Play/pause with a speed control; arrow keys step through; new steps of a
// running run appear without a reload. The slider and its ticks are spaced by
// step (a drag snaps to the nearest snapshot), and when snapshots are unevenly
// spaced (schedule="log": 0, 1, 2, 4, … then every epoch) a note says so.

import {getJSON} from './api.js';
import {h, clear, fmt} from './dom.js';
import {state, set, commit} from './state.js';

const SPEEDS = [0.5, 1, 2, 4, 8];
const UNEVEN = 1.5; // largest gap / smallest gap above which the note is shown

// The note for unevenly spaced snapshots, or '' when the gaps are (nearly) equal.
export function spacingNote(steps) {
  const gaps = steps.slice(1).map((s, i) => s - steps[i]);
  if (gaps.length < 2) return '';
  const lo = Math.min(...gaps); const hi = Math.max(...gaps);
  return hi > UNEVEN * lo ? `Snapshots are unevenly spaced (every ${lo} to ${hi} steps); ticks are placed by step.` : '';
}

export function mount(el, ctx) {
  let steps = ctx.run.steps;
  let timer = null;
  const slider = h('input', {type: 'range', min: 0, max: 0, step: 1, value: 0, 'aria-label': 'step', 'data-testid': 'timeline-slider'});
  const play = h('button', {class: 'btn', type: 'button', 'data-testid': 'play', title: 'Play / pause (space)'}, '▶');
  const speed = h('select', {'aria-label': 'speed', 'data-testid': 'speed'}, SPEEDS.map((s) => h('option', {value: s, selected: s === 2}, `${s}×`)));
  const label = h('span', {class: 'step-label', 'data-testid': 'step-label'});
  const ticks = h('div', {class: 'ticks'});
  const note = h('div', {class: 'muted small timeline-note', 'data-testid': 'timeline-uneven', hidden: true});
  clear(el).append(h('div', {class: 'timeline-row'}, play, speed, h('div', {class: 'slider-wrap'}, slider, ticks), label), note);

  const indexOf = (step) => {
    const i = steps.findIndex((s) => s.step === step);
    return i < 0 ? steps.length - 1 : i;
  };
  const accOf = (s) => s.val_acc ?? s.probe_acc;
  // The snapshot nearest to a step value (the slider moves over steps, not snapshots).
  const nearestIndex = (value) => {
    let best = 0;
    steps.forEach((s, j) => { if (Math.abs(s.step - value) < Math.abs(steps[best].step - value)) best = j; });
    return best;
  };

  function render() {
    const i = indexOf(state.step);
    const first = steps.length ? steps[0].step : 0; const last = steps.length ? steps[steps.length - 1].step : 0;
    slider.min = first; slider.max = Math.max(last, first);
    slider.value = steps[i] ? steps[i].step : first;
    const s = steps[i];
    label.textContent = s ? `step ${s.step} · epoch ${s.epoch} · ${s.val_acc !== undefined && s.val_acc !== null ? 'val' : 'probe'} acc ${fmt(accOf(s))}` : 'no steps yet';
    clear(ticks);
    note.textContent = spacingNote(steps.map((t) => t.step));
    note.hidden = !note.textContent;
    steps.forEach((t) => {
      const left = last > first ? (100 * (t.step - first)) / (last - first) : 0;
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

  slider.addEventListener('input', () => { const j = nearestIndex(Number(slider.value)); go(j, 'none'); slider.value = steps[j] ? steps[j].step : slider.value; });
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
