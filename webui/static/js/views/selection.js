// Side panel: the selected probe image (state.sel). Its prediction at the
// current step, its trajectory (class probabilities over all steps, flips,
// the step from which it stays right) and its nearest neighbours in the
// chosen layer among its predicted and its true class, beside its nearest
// neighbours in pixel space. Mounted once; update() runs on every state change.

import {getJSON, thumbURL} from '../api.js';
import {h, clear, classColor, spinner, pct, fmt} from '../dom.js';
import {lineChart, gallery, panelError} from '../charts.js';
import {pickButton} from './selection/gallery.js';

const METRICS = [['cosine', 'cosine'], ['euclidean', 'euclidean'], ['sqeuclidean', 'squared euclidean'], ['minkowski', 'Minkowski']];

function api(ctx, path) { return `/api/runs/${encodeURIComponent(ctx.run.run_id)}/${path}`; }

export function mount(el, ctx) {
  let nbFor;
  const kOf = () => (ctx.state.nk >= 1 && ctx.state.nk <= 50 ? ctx.state.nk : 6); // neighbour k, in the URL as nk
  let p = 3;
  let traj = null; // trajectory of the selected image
  let trajFor = null;
  const hint = h('div', {class: 'sel-hint', 'data-testid': 'selection-hint'},
    h('h2', {}, 'Selected image'),
    h('p', {class: 'muted', text: 'Click any image (a point in the embedding, a thumbnail in a gallery) to select it.'}),
    h('p', {class: 'muted small', text: 'You will see its prediction, its trajectory over the steps, and the images nearest to it.'}));
  const head = h('div', {class: 'sel-head', 'data-testid': 'selection'});
  const trajEl = h('div', {class: 'trajectory', 'data-testid': 'trajectory'});
  const metricSel = h('select', {'aria-label': 'distance', 'data-testid': 'neighbour-metric',
    onchange: () => ctx.set({metric: metricSel.value}, {push: true})}, METRICS.map(([v, l]) => h('option', {value: v}, l)));
  const pInput = h('input', {type: 'number', min: 1, max: 100, step: 0.5, value: p, 'aria-label': 'Minkowski p', class: 'narrow',
    onchange: () => { const v = Number(pInput.value); if (v >= 1) { p = v; loadNeighbours(); } }});
  const pLabel = h('label', {class: 'inline'}, 'p', pInput);
  const kInput = h('input', {type: 'number', min: 1, max: 50, step: 1, value: kOf(), 'aria-label': 'number of neighbours', class: 'narrow', 'data-testid': 'neighbour-k',
    onchange: () => { const v = Math.round(Number(kInput.value)); if (v >= 1 && v <= 50) ctx.set({nk: v}, {push: true}); }});
  const nbEl = h('div', {class: 'neighbour-groups'});
  const nbTitle = h('h3', {}, 'Nearest neighbours');
  const nb = h('div', {class: 'neighbours', 'data-testid': 'neighbours'}, nbTitle,
    h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'distance', metricSel), pLabel, h('label', {class: 'inline'}, 'k', kInput)),
    nbEl);
  const body = h('div', {class: 'sel-body'}, head, h('h3', {}, 'Trajectory'), trajEl, nb);
  clear(el).append(hint, body);
  body.hidden = true;

  function metric() {
    return METRICS.some(([v]) => v === ctx.state.metric) ? ctx.state.metric : 'cosine';
  }

  // ---- trajectory
  async function loadTrajectory() {
    const sel = ctx.state.sel;
    trajFor = sel;
    traj = null;
    clear(head).append(h('img', {class: 'thumb big', src: thumbURL(ctx.run.run_id, sel), alt: `image ${sel}`}), h('div', {class: 'muted', text: `image #${sel}`}));
    spinner(trajEl, 'Loading…');
    try {
      const t = await getJSON(api(ctx, `probes/${sel}/trajectory`));
      if (ctx.state.sel !== sel) return;
      traj = t;
      drawHead();
      drawTrajectory();
    } catch (err) {
      if (ctx.state.sel !== sel) return;
      panelError(trajEl, err, {step: ctx.state.step});
    }
  }

  function drawHead() {
    const t = traj;
    if (!t) return;
    const names = ctx.run.class_names;
    const i = t.steps.indexOf(ctx.state.step);
    const facts = [h('div', {}, h('span', {class: 'muted'}, 'true '), h('b', {class: 'cls', style: `--c:${classColor(t.label)}`}, names[t.label]))];
    let cls = 'thumb big';
    if (i >= 0) {
      const pred = t.pred[i];
      const right = pred === t.label;
      cls += right ? ' right' : ' wrong';
      facts.push(h('div', {'data-testid': 'selection-pred'}, h('span', {class: 'muted'}, 'predicted '), h('b', {class: 'cls', style: `--c:${classColor(pred)}`}, names[pred]),
        ` ${pct(t.probs[i][pred])}`, h('span', {class: right ? 'badge ok' : 'badge bad'}, right ? 'right' : 'wrong')));
      if (!right) facts.push(h('div', {class: 'small muted'}, `p(${names[t.label]}) = ${pct(t.probs[i][t.label])}`));
    } else {
      facts.push(h('div', {class: 'small error-text'}, `No prediction at step ${ctx.state.step}.`));
    }
    facts.push(h('div', {class: 'small muted'}, `image #${t.probe_id} · step ${ctx.state.step}`));
    clear(head).append(h('img', {class: cls, src: thumbURL(ctx.run.run_id, t.probe_id), alt: `image ${t.probe_id}`}),
      h('div', {class: 'sel-facts'}, ...facts),
      h('button', {class: 'btn close', type: 'button', title: 'Clear the selection', 'aria-label': 'clear selection', onclick: () => ctx.set({sel: undefined}, {push: true})}, '×'));
  }

  function drawTrajectory() {
    const t = traj;
    if (!t) return;
    const names = ctx.run.class_names;
    clear(trajEl);
    if (!t.steps.length) { trajEl.append(h('p', {class: 'muted', text: 'No readable steps.'})); }
    else {
      // The true class and every class it was ever predicted as stand out; the rest stay grey.
      const predicted = new Set(t.pred);
      const order = [...names.keys()].sort((a, b) => (a === t.label) - (b === t.label) || predicted.has(a) - predicted.has(b));
      const series = order.map((c) => {
        const strong = c === t.label || predicted.has(c);
        return {name: names[c], values: t.probs.map((row) => row[c]), color: strong ? classColor(c) : '#dde1e7',
          width: c === t.label ? 2.6 : strong ? 1.8 : 1, dots: strong, dotRadius: c === t.label ? 2.6 : 2, legend: strong,
          dash: c === t.label ? null : strong ? '5 3' : null};
      });
      trajEl.append(lineChart(series, {xs: t.steps, width: 312, height: 150, marker: ctx.state.step, yDomain: [0, 1], yLabel: 'probability',
        yFormat: (v) => v.toFixed(1), onClick: (x) => ctx.set({step: x}, {push: true}), testid: 'trajectory-chart'}));
      const flips = t.flips.length
        ? h('div', {class: 'chips', 'data-testid': 'flips'}, h('span', {class: 'muted small'}, 'flipped at '),
          t.flips.map((s) => {
            const i = t.steps.indexOf(s);
            return h('button', {class: 'chip', type: 'button', title: `${names[t.pred[i - 1]]} → ${names[t.pred[i]]}`, onclick: () => ctx.set({step: s}, {push: true})},
              `${s}: ${names[t.pred[i - 1]]}→${names[t.pred[i]]}`);
          }))
        : h('div', {class: 'muted small', 'data-testid': 'flips'}, 'Its prediction never flipped.');
      const stable = t.first_stable_correct === null
        ? h('div', {class: 'small', 'data-testid': 'stable'}, h('span', {class: 'badge bad'}, 'never settled'), ' wrong at the last step')
        : h('div', {class: 'small', 'data-testid': 'stable'}, h('span', {class: 'badge ok'}, 'right'), ' from step ',
          h('button', {class: 'link', type: 'button', onclick: () => ctx.set({step: t.first_stable_correct}, {push: true})}, t.first_stable_correct), ' on');
      trajEl.append(flips, stable);
    }
    if (t.errors.length) {
      // The full message (file path and cause) is in the tooltip; the panel stays short.
      trajEl.append(h('div', {class: 'error small', role: 'alert', title: t.errors.map((e) => e.error).join('\n')},
        `Step${t.errors.length > 1 ? 's' : ''} ${t.errors.map((e) => e.step).join(', ')} cannot be read and ${t.errors.length > 1 ? 'are' : 'is'} left out.`));
    }
  }

  // ---- neighbours
  function nbKey() { return [ctx.state.sel, ctx.state.step, ctx.state.layer, metric(), p, kOf()].join('|'); }

  async function loadNeighbours() {
    const key = nbKey();
    nbFor = key;
    const sel = ctx.state.sel;
    const names = ctx.run.class_names;
    nbTitle.textContent = `Neighbours in ${ctx.state.layer} · step ${ctx.state.step}`;
    spinner(nbEl, 'Searching…');
    try {
      const found = await getJSON(api(ctx, `steps/${ctx.state.step}/neighbours`),
        {probe: sel, layer: ctx.state.layer, metric: metric(), p, k: kOf()});
      if (nbFor !== key) return;
      const group = (title, items, testid, note) => h('div', {class: 'nb-group', 'data-testid': testid}, h('div', {class: 'nb-title'}, title, note ? h('span', {class: 'muted small'}, ` ${note}`) : null),
        items.length ? gallery(items.map((n) => ({probe_id: n.probe_id, correct: n.label === n.pred,
          caption: `${names[n.label]} ${Math.round(n.similarity)}%`,
          title: `#${n.probe_id}: true ${names[n.label]}, predicted ${names[n.pred]} · distance ${fmt(n.distance)} · similarity ${Math.round(n.similarity)}%`})), ctx)
          : h('p', {class: 'muted small', text: 'No other image in this group.'}));
      const groups = [];
      if (found.pred !== found.label) {
        groups.push(group(`Among ${names[found.pred]} (predicted)`, found.among_pred, 'nb-pred', 'what it is taken for'));
        groups.push(group(`Among ${names[found.label]} (its true class)`, found.among_true, 'nb-true'));
      } else {
        groups.push(group(`Among ${names[found.label]} (its class)`, found.among_true, 'nb-true'));
        groups.push(group('Among the other classes', found.among_other, 'nb-other', 'its nearest rivals'));
      }
      groups.push(group('In pixel space', found.pixel, 'nb-pixel', 'all classes, for contrast'));
      const inLayer = [...new Set([found.among_pred, found.among_true, found.among_other].flat().map((n) => n.probe_id))];
      clear(nbEl).append(strip(sel, found.pred === found.label ? found.among_true : found.among_pred),
        h('div', {class: 'small'}, pickButton(ctx, inLayer, `neighbours of #${sel} in ${found.layer}, step ${found.step}`)), ...groups);
    } catch (err) {
      if (nbFor !== key) return;
      panelError(nbEl, err, {step: ctx.state.step});
    }
  }

  // The query beside its nearest neighbours, big enough to tell apart (96 px, pixelated).
  function strip(sel, items) {
    const names = ctx.run.class_names;
    return h('div', {class: 'nb-strip', 'data-testid': 'nb-strip'},
      h('figure', {class: 'query'}, h('img', {class: 'thumb big', src: thumbURL(ctx.run.run_id, sel), alt: `query ${sel}`}), h('figcaption', {}, 'query')),
      items.slice(0, 6).map((n) => h('figure', {title: `#${n.probe_id} · ${names[n.label]}`, onclick: () => ctx.set({sel: n.probe_id}, {push: true})},
        h('img', {class: `thumb big ${n.label === n.pred ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, n.probe_id), alt: `image ${n.probe_id}`}),
        h('figcaption', {}, `${names[n.label]} ${Math.round(n.similarity)}%`))));
  }

  return {
    async update(changed) {
      const sel = ctx.state.sel;
      const none = sel === undefined || sel === null || Number.isNaN(sel);
      hint.hidden = !none;
      body.hidden = none;
      if (none) return;
      metricSel.value = metric();
      kInput.value = kOf();
      // style, not the hidden attribute: label.inline sets display
      pLabel.style.display = metric() === 'minkowski' ? '' : 'none';
      if (changed.has('sel') || trajFor !== sel) await loadTrajectory();
      else if (changed.has('step')) { drawHead(); drawTrajectory(); }
      if (['sel', 'step', 'layer', 'metric', 'nk'].some((key) => changed.has(key)) || nbFor !== nbKey()) loadNeighbours();
    },
    destroy() { clear(el); },
  };
}
