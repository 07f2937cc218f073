// The comparison page: wires the state, the two runs' summary, the data of the current pair of steps, and
// one module per panel (views/compare/*). Each panel gets ctx and is told which keys changed.

import {getJSON} from './api.js';
import {h, clear, select, field, showError} from './dom.js';
import {createState} from './compare_state.js';
import * as timeline from './views/compare/timeline.js';
import * as embeddings from './views/compare/embeddings.js';
import * as agreement from './views/compare/agreement.js';
import * as learned from './views/compare/learned.js';
import * as galleries from './views/compare/galleries.js';
import * as confusion from './views/compare/confusion.js';
import * as cka from './views/compare/cka.js';

const head = document.getElementById('compare-head');
const panels = [];
const {state, set} = createState(changed);

const ctx = {
  state, set, summary: null, at: null,
  // The pair of steps shown: the matched pair at state.step (a step of run A), each replaced by its pin.
  steps() {
    const m = ctx.summary.matched;
    const pair = m.find((r) => r.step_a === state.step) || m[m.length - 1];
    return {step_a: state.pin_a ?? pair.step_a, step_b: state.pin_b ?? pair.step_b, pair};
  },
  params(extra = {}) { return {runs: state.runs, ...extra}; },
  runName(id) { const r = ctx.summary.runs.find((x) => x.run_id === id); return r ? r.name || id : id; },
};

function drawHead() {
  const s = ctx.summary;
  const ids = s.runs.map((r) => r.run_id);
  const options = s.runs.map((r) => [r.run_id, `${r.name || r.run_id} (${r.model}, ${r.dataset})`]);
  // Picking A or B reorders the run list: the first two are compared, the others stay for the next pick.
  const pick = (which) => (e) => {
    const chosen = e.target.value; const other = which === 0 ? s.run_b : s.run_a;
    const order = which === 0 ? [chosen, other] : [other, chosen];
    if (order[0] === order[1]) return;
    set({runs: [...order, ...ids.filter((x) => !order.includes(x))].join(','), step: null, pin_a: null, pin_b: null,
      layer_a: null, layer_b: null, cka_a: null, cka_b: null, sel: null}, {push: true});
  };
  const how = {step: 'by step (both runs have the same steps)', epoch: 'by epoch (the k-th snapshot of an epoch in A with the k-th in B)',
    fraction: 'by fraction of training (the steps of B nearest to A\'s step / last step)'}[s.match];
  clear(head).append(
    h('h1', {}, 'Compare runs'),
    h('div', {class: 'toolbar'},
      field('run A', select({'data-testid': 'pick-a', onchange: pick(0)}, options, s.run_a)),
      field('run B', select({'data-testid': 'pick-b', onchange: pick(1)}, options, s.run_b)),
      field('match', select({'data-testid': 'match', onchange: (e) => set({match: e.target.value, step: null}, {push: true})},
        [['auto', 'auto'], ['step', 'step'], ['epoch', 'epoch'], ['fraction', 'fraction']], state.match || 'auto'))),
    h('p', {class: 'note', 'data-testid': 'compare-note'},
      `${s.n_shared} probe images shared (run A has ${s.n_a}, run B ${s.n_b})${s.n_shared < Math.max(s.n_a, s.n_b) ? ': every panel uses the shared ones' : ''}. `,
      `Steps matched ${how}.`));
  document.getElementById('compare-meta').textContent = ` ${ctx.runName(s.run_a)} vs ${ctx.runName(s.run_b)}`;
}

let atToken = 0;
async function loadStep() {
  const token = ++atToken;
  const {step_a, step_b} = ctx.steps();
  try {
    const at = await getJSON('/api/compare/step', ctx.params({step_a, step_b}));
    if (token !== atToken) return;
    ctx.at = at;
    document.getElementById('compare').dataset.steps = `${step_a},${step_b}`;
    notify(new Set(['at']));
  } catch (err) { if (token === atToken) showError(document.getElementById('cmp-galleries'), err); }
}

function notify(keys) { for (const p of panels) p.update(keys); }

async function loadSummary() {
  try {
    ctx.summary = await getJSON('/api/compare', ctx.params({match: state.match}));
  } catch (err) { showError(head, err); return; }
  drawHead();
  if (!panels.length) {
    const mounts = [[timeline, 'compare-timeline'], [embeddings, 'cmp-embeddings'], [agreement, 'cmp-agreement'],
      [learned, 'cmp-learned'], [galleries, 'cmp-galleries'], [confusion, 'cmp-confusion'], [cka, 'cmp-cka']];
    for (const [mod, id] of mounts) panels.push(mod.mount(document.getElementById(id), ctx));
  }
  notify(new Set(['summary']));
  loadStep();
}

function changed(keys) {
  if (keys.has('runs') || keys.has('match')) { loadSummary(); return; }
  if (keys.has('step') || keys.has('pin_a') || keys.has('pin_b')) loadStep();
  notify(keys);
}

loadSummary();
