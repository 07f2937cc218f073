// What the Inspect panels share: the probe list, the predictions at the
// current step (the lean columns every view shares: pred, confidence, correct;
// the selected image's class probabilities are asked for alone), the model's
// layers (fetched once: the architecture does not change across steps), and
// small form helpers.

import {getJSON} from '../../api.js';
import {predsAt, probesOf} from '../../pick.js';
import {h, clear} from '../../dom.js';

export function inspectData(ctx) {
  const base = () => `/api/runs/${encodeURIComponent(ctx.run.run_id)}`;
  const data = {
    probes: null, // {probe_id, label, row} in probe order (pick.js)
    preds: null, // {step, pred, confidence, correct} at preds.step
    model: null, // the /inspect/layers answer
    error: null, // the probes or predictions could not be read
    modelError: null, // no model at this step (no weights, or a refused class)
    base,
    stepBase: () => `${base()}/steps/${ctx.state.step}/inspect`,
    rowOf: (pid) => (data.probes && data.probes.row.has(pid) ? data.probes.row.get(pid) : -1),
    classLabel: (i) => (String(ctx.run.class_names[i]) === String(i) ? `${i}` : `${i} · ${ctx.run.class_names[i]}`),
    async ensureProbes() {
      if (!data.probes) data.probes = await probesOf(ctx);
    },
    async ensurePreds() {
      if (data.preds && data.preds.step === ctx.state.step) return;
      const step = ctx.state.step;
      const {pred, confidence, correct} = await predsAt(ctx, step);
      data.preds = {step, pred, confidence, correct};
    },
    // One image's prediction at the current step, with its class probabilities (webui/snapshots.py).
    probsOf: (pid) => getJSON(`${base()}/steps/${ctx.state.step}/predictions/${pid}`),
    // true the first time the layers arrive
    async ensureModel() {
      if (data.model) return false;
      data.model = await getJSON(`${data.stepBase()}/layers`);
      return true;
    },
    layerOptions: (filter) => (data.model ? data.model.layers.filter(filter).map((l) => [l.name, `${l.name} (${l.type}, ${l.shape.join('×')})`]) : []),
  };
  return data;
}

// The step or the tab changed: every map is stale.
export const moved = (changed) => changed.has('step') || changed.has('view');

// Three significant digits: attribution magnitudes range from 1e-4 (untrained nets) to 1e2.
export const sig = (x) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(Number(x).toPrecision(3)).toString());
export const num = (input) => (input.value === '' ? undefined : Number(input.value));

// Refill a layer picker, keeping its choice when it is still offered.
export function fillPicker(sel, options, preferred) {
  const keep = sel.value;
  clear(sel).append(...options.map(([v, t]) => h('option', {value: v}, t)));
  const names = options.map((o) => o[0]);
  sel.value = names.includes(keep) ? keep : (names.includes(preferred) ? preferred : names[0] || '');
}
