// The runs page: every run with its hparams, dataset, model, steps and accuracy; a filter, sorting by any
// column, ticks to pick runs for a comparison (or the whole filtered group), and their curves overlaid.
// Polls so running runs update. Filter, sort and ticks live in the URL (?q=&sort=&desc=&pick=).

import {getJSON} from './api.js';
import {h, clear, fmt, showError, classColor} from './dom.js';
import {lineChart} from './charts.js';

const table = document.getElementById('runs-table');
const empty = document.getElementById('runs-empty');
const filterBox = document.getElementById('runs-filter');
const pickedButton = document.getElementById('compare-picked');
const shownButton = document.getElementById('compare-shown');
const curves = document.getElementById('runs-curves');
const xSelect = document.getElementById('curves-x');

const params = new URLSearchParams(location.search);
const ui = {
  q: params.get('q') || '', sort: params.get('sort') || 'started_at', desc: params.get('desc') !== '0',
  picked: new Set((params.get('pick') || '').split(',').filter(Boolean)), x: params.get('x') || 'step',
};
let runs = [];
const details = new Map(); // run id -> /api/runs/<id> (its step table), refreshed while it trains

const BASE = [['name', 'run'], ['model', 'model'], ['dataset', 'dataset'], ['n_probe', 'probe'], ['n_steps', 'steps'],
  ['last_step', 'last step'], ['final_acc', 'probe acc'], ['started_at', 'started']];

function saveURL() {
  const p = new URLSearchParams();
  if (ui.q) p.set('q', ui.q);
  if (ui.sort !== 'started_at') p.set('sort', ui.sort);
  if (!ui.desc) p.set('desc', '0');
  if (ui.picked.size) p.set('pick', [...ui.picked].join(','));
  if (ui.x !== 'step') p.set('x', ui.x);
  history.replaceState(null, '', `${location.pathname}${p.size ? '?' + p : ''}`);
}

const hparamKeys = () => [...new Set(runs.flatMap((r) => Object.keys(r.hparams || {})))].sort();
const value = (r, key) => (key.startsWith('hp.') ? (r.hparams || {})[key.slice(3)] : r[key]);

// "key=value" tokens match a field or an hparam exactly; other words must appear in the name, id, model or dataset.
function matches(r, q) {
  return q.split(/\s+/).filter(Boolean).every((tok) => {
    const eq = tok.indexOf('=');
    if (eq > 0) {
      const key = tok.slice(0, eq); const want = tok.slice(eq + 1);
      const got = key in (r.hparams || {}) ? r.hparams[key] : r[key];
      return got !== undefined && got !== null && String(got) === want;
    }
    const t = tok.toLowerCase();
    return [r.name, r.run_id, r.model, r.dataset].some((f) => f && String(f).toLowerCase().includes(t));
  });
}

function compareURL(ids) { return `/compare?runs=${ids.map(encodeURIComponent).join(',')}`; }

function shownRuns() {
  const out = runs.filter((r) => matches(r, ui.q));
  const k = ui.sort; const sign = ui.desc ? -1 : 1;
  return out.sort((a, b) => {
    const va = value(a, k); const vb = value(b, k);
    if (va === vb) return 0;
    if (va === undefined || va === null) return 1;
    if (vb === undefined || vb === null) return -1;
    return (va < vb ? -1 : 1) * sign;
  });
}

function header(keys) {
  const cell = (key, label) => h('th', {class: 'sortable', 'data-sort': key, 'aria-sort': ui.sort === key ? (ui.desc ? 'descending' : 'ascending') : null,
    onclick: () => { ui.desc = ui.sort === key ? !ui.desc : false; ui.sort = key; render(); }}, label, ui.sort === key ? (ui.desc ? ' ▾' : ' ▴') : '');
  return h('tr', {}, h('th', {}, ''), BASE.map(([k, l]) => cell(k, l)), keys.map((k) => cell(`hp.${k}`, k)), h('th', {}, 'status'));
}

function row(r, keys) {
  const tick = h('input', {type: 'checkbox', 'data-testid': 'pick-run', 'aria-label': `compare ${r.name || r.run_id}`, checked: ui.picked.has(r.run_id),
    onchange: (e) => { if (e.target.checked) ui.picked.add(r.run_id); else ui.picked.delete(r.run_id); render(); }});
  return h('tr', {'data-run': r.run_id},
    h('td', {}, tick),
    h('td', {}, h('a', {href: `/runs/${encodeURIComponent(r.run_id)}`}, r.name || r.run_id), r.name && r.name !== r.run_id ? h('div', {class: 'muted small'}, r.run_id) : null),
    h('td', {text: r.model || '–'}), h('td', {text: r.dataset || '–'}), h('td', {text: r.n_probe ?? '–'}),
    h('td', {class: 'num', 'data-testid': 'run-steps', text: r.n_steps ?? 0}), h('td', {class: 'num', text: r.last_step ?? '–'}),
    h('td', {class: 'num', text: fmt(r.final_acc)}), h('td', {class: 'small', text: r.started_at ? r.started_at.slice(0, 19).replace('T', ' ') : '–'}),
    keys.map((k) => h('td', {class: 'small', 'data-hparam': k, text: (r.hparams || {})[k] ?? '–'})),
    h('td', {}, r.error ? h('span', {class: 'badge bad', title: r.error}, 'unreadable') : h('span', {class: 'badge' + (r.running ? ' live' : '')}, r.running ? 'training' : 'done')));
}

function render() {
  const keys = hparamKeys();
  const shown = shownRuns();
  clear(table.tHead).append(header(keys));
  clear(table.tBodies[0]).append(...shown.map((r) => row(r, keys)));
  empty.hidden = runs.length > 0;
  const picked = runs.filter((r) => ui.picked.has(r.run_id)).map((r) => r.run_id);
  pickedButton.disabled = picked.length < 2;
  pickedButton.textContent = `Compare ticked (${picked.length})`;
  pickedButton.onclick = () => { location.href = compareURL(picked); };
  const group = shown.filter((r) => !r.error).map((r) => r.run_id);
  shownButton.disabled = group.length < 2 || group.length > 8;
  shownButton.title = group.length > 8 ? 'At most 8 runs in one comparison: filter further.' : '';
  shownButton.onclick = () => { location.href = compareURL(group); };
  document.getElementById('runs-count').textContent = `${shown.length} of ${runs.length} runs shown`;
  saveURL();
  drawCurves(picked);
}

async function drawCurves(ids) {
  curves.hidden = ids.length === 0;
  const body = document.getElementById('curves-body');
  const missing = ids.filter((id) => !details.has(id));
  await Promise.all(missing.map(async (id) => details.set(id, await getJSON(`/api/runs/${encodeURIComponent(id)}`))));
  clear(body);
  for (const metric of ['val_acc', 'probe_acc']) {
    const series = ids.map((id, i) => {
      const steps = details.get(id).steps;
      const last = steps.length ? steps[steps.length - 1] : {step: 1, epoch: 0};
      // Epochs of training done at a step (the init is 0, the end of epoch 0 is 1): step / steps per epoch.
      const perEpoch = Math.max(last.step, 1) / (last.epoch + 1);
      const x = (s) => (ui.x === 'epoch' ? s.step / perEpoch : ui.x === 'fraction' ? s.step / Math.max(last.step, 1) : s.step);
      const pts = steps.filter((s) => s[metric] !== null && s[metric] !== undefined);
      return {name: details.get(id).name || id, color: classColor(i), points: pts.map((s) => [x(s), s[metric]])};
    });
    const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
    const lines = series.map((s) => {
      const at = new Map(s.points);
      return {name: s.name, color: s.color, connect: true, values: xs.map((x) => (at.has(x) ? at.get(x) : null))};
    });
    body.append(h('div', {'data-testid': `curve-${metric}`, 'data-x': ui.x},
      lineChart(lines, {xs, width: 520, height: 200, yLabel: metric, yDomain: [0, 1], xFormat: ui.x === 'fraction' ? (v) => v.toFixed(2) : undefined})));
  }
}

async function refresh() {
  try { runs = await getJSON('/api/runs'); } catch (err) { showError(table.tBodies[0], err); return; }
  for (const r of runs) if (r.running) details.delete(r.run_id); // a training run's curves grow
  render();
}

filterBox.value = ui.q;
filterBox.addEventListener('input', () => { ui.q = filterBox.value.trim(); render(); });
xSelect.value = ui.x;
xSelect.addEventListener('change', () => { ui.x = xSelect.value; render(); });
refresh();
setInterval(refresh, 3000);
