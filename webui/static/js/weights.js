// Which weights a model-backed answer used (the server's `weights` field:
// {source: "state"|"checkpoint", step, path, note}), as one small line.
// An answer without the field shows nothing.

import {h} from './dom.js';

export function weightsText(w) {
  if (!w) return '';
  const file = w.path ? w.path.split(/[\\/]/).pop() : null;
  const what = w.source === 'checkpoint'
    ? `checkpoint ${file || '(no path)'} (step ${w.step})`
    : `stored state of step ${w.step}`;
  return `weights: ${what}${w.note ? ` · ${w.note}` : ''}`;
}

// A line to keep in a panel; show(answer) fills it from an answer (or empties it).
export function weightsLine(testid) {
  const el = h('div', {class: 'weights-line small muted', 'data-testid': testid, hidden: true});
  return {
    el,
    show(answer) {
      const text = weightsText(answer && answer.weights);
      el.textContent = text;
      el.hidden = !text;
      el.title = answer && answer.weights && answer.weights.path ? answer.weights.path : '';
    },
  };
}
