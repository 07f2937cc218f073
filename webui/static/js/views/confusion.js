// Confusion tab: the confusion matrix at the current step (counts, row % or the
// change since the previous step), the images of a clicked cell with its count
// over the steps (views/confusion/pair.js), the pairs that changed most
// (views/confusion/changes.js),
// flows of predictions between two chosen steps, and the misclassified images.

import {getJSON} from '../api.js';
import {h, clear, spinner, pct} from '../dom.js';
import {heatmap, sequential, diverging, inkOn, gallery, panelError} from '../charts.js';
import {pickButton} from './selection/gallery.js';
import {probesOf} from '../pick.js';
import * as pairPanel from './confusion/pair.js';
import * as changesPanel from './confusion/changes.js';

const MODES = [['counts', 'Counts'], ['rows', 'Row %'], ['delta', 'Change Δ']];
const WRONG_PAGE = 200; // misclassified images fetched per "more"

function api(ctx, path) { return `/api/runs/${encodeURIComponent(ctx.run.run_id)}/${path}`; }

export const id = 'confusion';
export const title = 'Confusion';

// The clicked cell in the URL: cell=<true>-<pred>.
const cellOf = (v) => { const m = /^(\d+)-(\d+)$/.exec(v || ''); return m ? [Number(m[1]), Number(m[2])] : null; };

export function mount(el, ctx) {
  let mode = 'counts';
  let picked = cellOf(ctx.state.cell); // [true, pred] of the clicked cell (URL cell); kept across steps
  let wrongLimit = WRONG_PAGE;
  let flowSteps = ctx.state.fa !== undefined && ctx.state.fb !== undefined ? [ctx.state.fa, ctx.state.fb] : null; // [a, b] once picked (URL fa, fb); null follows the timeline
  let data = null;
  let loadedStep;

  const modeButtons = MODES.map(([m, label]) => h('button', {type: 'button', class: 'seg', 'data-mode': m, 'data-testid': `confusion-mode-${m}`,
    onclick: () => { mode = m; drawMatrix(); }}, label));
  const heading = h('h2', {});
  const note = h('span', {class: 'muted small'});
  const matrixEl = h('div', {class: 'matrix-box', 'data-testid': 'confusion-matrix'});
  const cellTitle = h('h3', {}, 'Images of a cell');
  const cellEl = h('div', {class: 'cell-images', 'data-testid': 'cell-images'},
    h('p', {class: 'muted small', text: 'Click a cell of the matrix to list its images.'}));
  const changesEl = h('div', {class: 'pairs', 'data-testid': 'confusion-pairs'});
  const pairEl = h('div', {class: 'pair'});
  const main = h('section', {class: 'panel', 'data-testid': 'confusion'},
    h('div', {class: 'panel-head'}, heading, h('div', {class: 'segmented', role: 'group', 'aria-label': 'values'}, modeButtons)),
    h('div', {class: 'confusion-layout'}, h('div', {}, matrixEl, note, changesEl), h('div', {class: 'cell-side'}, cellTitle, pairEl, cellEl)));

  const fromSel = h('select', {'aria-label': 'from step', 'data-testid': 'flow-from', onchange: () => pickFlows()});
  const toSel = h('select', {'aria-label': 'to step', 'data-testid': 'flow-to', onchange: () => pickFlows()});
  const flowSummary = h('span', {class: 'muted small'});
  const flowTable = h('div', {class: 'flow-table', 'data-testid': 'flows-table'});
  const flowImages = h('div', {class: 'flow-images', 'data-testid': 'flow-images'});
  const flows = h('section', {class: 'panel', 'data-testid': 'flows'},
    h('h2', {}, 'Flows between two steps'),
    h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'from', fromSel), h('label', {class: 'inline'}, 'to', toSel), flowSummary),
    h('div', {class: 'flows-layout'}, flowTable, flowImages));

  const wrongTitle = h('h2', {}, 'Misclassified');
  const wrongEl = h('div', {'data-testid': 'misclassified'});
  const wrongMore = h('button', {class: 'btn', type: 'button', 'data-testid': 'misclassified-more', hidden: true,
    onclick: () => { wrongLimit += WRONG_PAGE; loadWrong(); }});
  const wrong = h('section', {class: 'panel', 'data-testid': 'misclassified-panel'}, wrongTitle,
    h('p', {class: 'muted small', text: 'Most confident mistakes first. Click one to see its trajectory and neighbours.'}), wrongEl, wrongMore);
  clear(el).append(main, flows, wrong);

  // The one place a click on a cell (of the matrix, or a row of the pairs list) takes effect.
  function pickCell(i, j) {
    picked = [i, j];
    drawMatrix();
    loadCell();
    pair.show(picked);
    if (ctx.state.cell !== `${i}-${j}`) ctx.set({cell: `${i}-${j}`}, {push: true});
  }
  const pair = pairPanel.mount(pairEl, ctx);
  const changes = changesPanel.mount(changesEl, {...ctx, pickCell});
  if (picked) pair.show(picked); // a cell from the URL

  // ---- the matrix
  async function loadMatrix() {
    const step = ctx.state.step;
    heading.textContent = `Confusion at step ${step}`;
    spinner(matrixEl, 'Loading…');
    clear(note);
    try {
      const answer = await getJSON(api(ctx, `steps/${step}/confusion`));
      if (ctx.state.step !== step) return;
      data = answer;
      drawMatrix();
    } catch (err) {
      if (ctx.state.step !== step) return;
      data = {error: err};
      loadedStep = undefined; // try again next time
      panelError(matrixEl, err, {step: ctx.state.step});
      clear(cellEl);
    }
  }

  function drawMatrix() {
    for (const b of modeButtons) b.setAttribute('aria-pressed', String(b.dataset.mode === mode));
    const d = data;
    if (!d || d.error) return;
    const names = ctx.run.class_names;
    const C = names.length;
    const cell = Math.max(8, Math.min(40, Math.floor(440 / Math.max(1, C))));
    const showText = cell >= 22;
    const rowSum = d.matrix.map((r) => r.reduce((a, b) => a + b, 0));
    let values = d.matrix, color, text, ink, title;
    if (mode === 'delta' && d.delta) {
      // Green is better: more images on the diagonal, fewer off it.
      const good = (v, i, j) => (i === j ? v : -v);
      const maxAbs = Math.max(1, ...d.delta.flat().map(Math.abs));
      values = d.delta;
      color = (v, i, j) => diverging(good(v, i, j) / maxAbs);
      ink = (v, i, j) => inkOn(good(v, i, j) / maxAbs);
      text = (v) => (showText && v ? (v > 0 ? `+${v}` : `−${-v}`) : '');
      title = (v, i, j) => `true ${names[i]} → predicted ${names[j]}: ${d.matrix[i][j]} (${v >= 0 ? '+' : '−'}${Math.abs(v)} since step ${d.prev_step})`;
    } else {
      const frac = (v, i) => (rowSum[i] ? v / rowSum[i] : 0);
      color = (v, i) => sequential(frac(v, i));
      ink = (v, i) => inkOn(frac(v, i));
      text = mode === 'rows'
        ? (v, i) => (showText && v ? `${Math.round(100 * frac(v, i))}` : '')
        : (v) => (showText && v ? String(v) : '');
      title = (v, i, j) => `true ${names[i]} → predicted ${names[j]}: ${v} of ${rowSum[i]} (${pct(frac(v, i))})`;
    }
    const svgEl = heatmap(values, {
      rowLabels: names, colLabels: names, cell, color, text, ink, title,
      rowTitle: 'true class', colTitle: 'predicted class', testid: 'confusion-heatmap',
      selected: picked, cellClass: (v, i, j) => (i === j ? 'diag' : null),
      onClick: pickCell,
    });
    clear(matrixEl).append(svgEl);
    const acc = d.n ? d.correct / d.n : 0;
    const parts = [`${d.correct} of ${d.n} right (${pct(acc)}).`];
    if (mode === 'delta') {
      if (d.prev_error) parts.push(`Step ${d.prev_step} cannot be read: ${d.prev_error}`);
      else if (!d.delta) parts.push('This is the first step: nothing to compare with.');
      else parts.push(`Change since step ${d.prev_step}; green = better, red = worse.`);
    } else if (mode === 'rows') parts.push('Each row in % of its true class.');
    note.textContent = parts.join(' ');
  }

  async function loadCell() {
    const [i, j] = picked;
    const names = ctx.run.class_names;
    const step = ctx.state.step;
    cellTitle.textContent = `True ${names[i]} → predicted ${names[j]}`;
    spinner(cellEl, 'Loading images…');
    try {
      const res = await getJSON(api(ctx, `steps/${step}/images`), {true: i, pred: j, sort: 'confidence', limit: 300});
      if (ctx.state.step !== step || !picked || picked[0] !== i || picked[1] !== j) return;
      clear(cellEl);
      if (!res.total) { cellEl.append(h('p', {class: 'muted small', text: 'No images in this cell.'})); return; }
      cellEl.append(h('p', {class: 'muted small', text: `${res.total} image${res.total === 1 ? '' : 's'}, most confident first${res.total > res.probe_id.length ? ` (first ${res.probe_id.length})` : ''}.`}, pickButton(ctx, res.probe_id, `confusion ${names[i]}→${names[j]} at step ${step}`)),
        gallery(res.probe_id.map((id, k) => ({probe_id: id, correct: res.label[k] === res.pred[k], caption: pct(res.confidence[k]),
          title: `#${id}: true ${names[res.label[k]]}, predicted ${names[res.pred[k]]} (${pct(res.confidence[k])})`})), ctx, {testid: 'cell-gallery'}));
    } catch (err) { panelError(cellEl, err, {step: ctx.state.step}); }
  }

  // ---- flows between two steps
  function fillStepSelects() {
    const steps = ctx.timeline.steps().map((s) => s.step);
    const i = Math.max(0, steps.indexOf(ctx.state.step));
    const [a, b] = flowSteps || [steps[Math.max(0, i - 1)], steps[i]];
    for (const [sel, value] of [[fromSel, a], [toSel, b]]) {
      clear(sel).append(...steps.map((s) => h('option', {value: s, selected: s === value}, `step ${s}`)));
    }
  }

  function pickFlows() {
    flowSteps = [Number(fromSel.value), Number(toSel.value)];
    ctx.set({fa: flowSteps[0], fb: flowSteps[1]}, {push: true});
    loadFlows();
  }

  async function loadFlows() {
    const a = Number(fromSel.value), b = Number(toSel.value);
    const names = ctx.run.class_names;
    spinner(flowTable, 'Loading…');
    clear(flowImages);
    clear(flowSummary);
    try {
      const res = await getJSON(api(ctx, 'flows'), {a, b});
      if (Number(fromSel.value) !== a || Number(toSel.value) !== b) return;
      flowSummary.textContent = a === b ? 'Pick two different steps.'
        : `${res.changed} of ${res.n} images changed prediction: ${res.fixed} became right, ${res.broken} became wrong.`;
      if (!res.rows.length) { clear(flowTable).append(h('p', {class: 'muted small', text: 'No image changed its prediction.'})); return; }
      const body = h('tbody', {});
      res.rows.forEach((r, k) => {
        const tr = h('tr', {class: 'clickable', 'data-testid': 'flow-row', tabindex: 0,
          onclick: () => { for (const x of body.children) x.classList.remove('active'); tr.classList.add('active'); showFlow(r, b); }},
        h('td', {}, h('span', {class: 'pair-name'}, names[r.from_pred]), ' → ', h('span', {class: 'pair-name'}, names[r.to_pred])),
        h('td', {class: 'num'}, r.count),
        h('td', {class: 'num good'}, r.fixed || ''),
        h('td', {class: 'num bad'}, r.broken || ''),
        h('td', {class: 'num muted', title: `${r.back} moved back from ${names[r.to_pred]} to ${names[r.from_pred]}`}, r.back || ''));
        body.append(tr);
        if (k === 0) tr.classList.add('first');
      });
      clear(flowTable).append(h('table', {class: 'table compact'},
        h('thead', {}, h('tr', {}, h('th', {}, `prediction at ${a} → at ${b}`), h('th', {class: 'num'}, 'images'),
          h('th', {class: 'num', title: 'wrong before, right after'}, 'fixed'), h('th', {class: 'num', title: 'right before, wrong after'}, 'broken'),
          h('th', {class: 'num', title: 'images that moved the opposite way'}, 'back'))), body));
      flowImages.append(h('p', {class: 'muted small', text: 'Click a row to see its images.'}));
    } catch (err) { panelError(flowTable, err, {step: ctx.state.step}); }
  }

  async function showFlow(row, b) {
    const names = ctx.run.class_names;
    let labels = new Map();
    try { labels = await probeLabels(); } catch (_) { /* captions without true classes */ }
    clear(flowImages).append(h('h3', {}, `${names[row.from_pred]} → ${names[row.to_pred]} · ${row.count}`, pickButton(ctx, row.probe_ids, `flow ${names[row.from_pred]}→${names[row.to_pred]}, steps ${fromSel.value}→${b}`)),
      gallery(row.probe_ids.map((id) => {
        const label = labels.get(id);
        return {probe_id: id, correct: label === undefined ? undefined : label === row.to_pred, caption: label === undefined ? '' : names[label],
          title: `#${id}: true ${label === undefined ? '?' : names[label]}; predicted ${names[row.from_pred]}, then ${names[row.to_pred]} at step ${b}`};
      }), ctx, {testid: 'flow-gallery'}));
  }

  // True class of each probe id: the run's probes, fetched once for every view (pick.js).
  async function probeLabels() {
    const probes = await probesOf(ctx);
    return {get: (id) => (probes.row.has(id) ? probes.label[probes.row.get(id)] : undefined)};
  }

  // ---- misclassified at this step
  async function loadWrong() {
    const step = ctx.state.step;
    const names = ctx.run.class_names;
    spinner(wrongEl, 'Loading…');
    try {
      const res = await getJSON(api(ctx, `steps/${step}/images`), {correct: 0, sort: 'confidence', order: 'desc', limit: wrongLimit});
      if (ctx.state.step !== step) return;
      const left = res.total - res.probe_id.length;
      wrongTitle.textContent = `Misclassified at step ${step} · ${res.total}${left > 0 ? ` (showing ${res.probe_id.length})` : ''}`;
      wrongMore.hidden = left <= 0;
      wrongMore.textContent = `show ${Math.min(WRONG_PAGE, left)} more (${left} not shown)`;
      clear(wrongEl);
      if (!res.total) { wrongEl.append(h('p', {class: 'muted', text: 'No mistakes on the probe set at this step.'})); return; }
      wrongEl.append(gallery(res.probe_id.map((id, k) => ({probe_id: id, correct: false,
        caption: `${names[res.label[k]]}→${names[res.pred[k]]}`,
        title: `#${id}: true ${names[res.label[k]]}, predicted ${names[res.pred[k]]} (${pct(res.confidence[k])})`})), ctx, {testid: 'misclassified-gallery'}));
    } catch (err) {
      if (ctx.state.step !== step) return;
      wrongTitle.textContent = `Misclassified at step ${step}`;
      panelError(wrongEl, err, {step: ctx.state.step});
    }
  }

  return {
    update(changed) {
      const fromUrl = changed.has('cell') ? cellOf(ctx.state.cell) : null;
      if (fromUrl && !(picked && picked[0] === fromUrl[0] && picked[1] === fromUrl[1])) pickCell(...fromUrl); // Back, or a link
      // Showing the tab again at the same step keeps the clicked cell and the flows.
      if (ctx.state.step !== loadedStep) {
        loadedStep = ctx.state.step;
        wrongLimit = WRONG_PAGE;
        loadMatrix();
        if (picked) loadCell(); // the clicked cell stays, with this step's images
        pair.update(new Set(['step']));
        changes.update(new Set(['step']));
        loadWrong();
        fillStepSelects();
        loadFlows();
      } else if (changed.has('sel')) {
        // the selected thumbnail is outlined in every gallery
        for (const f of cellEl.querySelectorAll('figure, .gallery figure')) f.classList.toggle('selected', Number(f.dataset.probe) === ctx.state.sel);
        for (const f of wrongEl.querySelectorAll('figure')) f.classList.toggle('selected', Number(f.dataset.probe) === ctx.state.sel);
        for (const f of flowImages.querySelectorAll('figure')) f.classList.toggle('selected', Number(f.dataset.probe) === ctx.state.sel);
      }
    },
    destroy() { pair.destroy(); changes.destroy(); clear(el); },
  };
}
