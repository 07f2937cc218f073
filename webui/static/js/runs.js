// The runs page: every run with its steps and accuracy; polls so running runs update.

import {getJSON} from './api.js';
import {h, clear, fmt, showError} from './dom.js';

const tbody = document.querySelector('#runs-table tbody');
const empty = document.getElementById('runs-empty');

async function refresh() {
  let runs;
  try { runs = await getJSON('/api/runs'); } catch (err) { showError(tbody, err); return; }
  empty.hidden = runs.length > 0;
  clear(tbody);
  for (const r of runs.slice().reverse()) {
    const tokenless = `/runs/${encodeURIComponent(r.run_id)}`;
    tbody.append(h('tr', {'data-run': r.run_id},
      h('td', {}, h('a', {href: tokenless}, r.name || r.run_id), r.name && r.name !== r.run_id ? h('div', {class: 'muted small'}, r.run_id) : null),
      h('td', {text: r.model || '–'}), h('td', {text: r.dataset || '–'}), h('td', {text: r.n_probe ?? '–'}),
      h('td', {class: 'num', 'data-testid': 'run-steps', text: r.n_steps ?? 0}), h('td', {class: 'num', text: r.last_step ?? '–'}),
      h('td', {class: 'num', text: fmt(r.final_acc)}),
      h('td', {}, r.error ? h('span', {class: 'badge bad', title: r.error}, 'unreadable') : h('span', {class: 'badge' + (r.running ? ' live' : '')}, r.running ? 'training' : 'done'))));
  }
}

refresh();
setInterval(refresh, 3000);
