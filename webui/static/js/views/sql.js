// SQL tab: a read-only query box over the db's tables (DuckDB views), results
// as a table. The server allows one SELECT, inside the db, with a row limit
// and a time limit (webui/sql.py).

import {postJSON} from '../api.js';
import {h, clear, showError, spinner} from '../dom.js';
import {pickButton} from './selection/gallery.js';

function examples(run) {
  const r = `'${run.run_id.replace(/'/g, "''")}'`;
  return [
    ['Accuracy per step', `SELECT step, epoch, probe_acc, probe_loss\nFROM steps\nWHERE run_id = ${r}\nORDER BY step`],
    ['Most confident mistakes', `SELECT step, probe_id, label, pred, round(confidence, 3) AS confidence\nFROM predictions\nWHERE run_id = ${r} AND NOT correct\nORDER BY confidence DESC\nLIMIT 20`],
    ['Per-class accuracy, last step', `SELECT p.label, any_value(pr.class_name) AS class, round(avg(p.correct::INT), 3) AS accuracy, count(*) AS images\nFROM predictions p JOIN probes pr USING (run_id, probe_id)\nWHERE p.run_id = ${r} AND p.step = (SELECT max(step) FROM steps WHERE run_id = ${r})\nGROUP BY p.label\nORDER BY p.label`],
    ['Images that changed their mind most', `SELECT probe_id, count(DISTINCT pred) AS distinct_preds, list(pred ORDER BY step) AS preds\nFROM predictions\nWHERE run_id = ${r}\nGROUP BY probe_id\nORDER BY distinct_preds DESC, probe_id\nLIMIT 20`],
    ['Logged metrics', `SELECT step, name, value\nFROM metrics\nWHERE run_id = ${r}\nORDER BY step, name`],
    ['Tables', 'SHOW TABLES'],
    ['Columns of predictions', 'DESCRIBE predictions'],
  ];
}

function cellText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export const id = 'sql';
export const title = 'SQL';

export function mount(el, ctx) {
  const ex = examples(ctx.run);
  const box = h('textarea', {class: 'sql-box', rows: 7, spellcheck: 'false', 'aria-label': 'SQL query', 'data-testid': 'sql-query',
    onkeydown: (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } }});
  box.value = ex[0][1];
  const runBtn = h('button', {class: 'btn primary', type: 'button', 'data-testid': 'sql-run', onclick: () => run()}, 'Run');
  const status = h('span', {class: 'muted small', 'data-testid': 'sql-status'});
  const result = h('div', {class: 'sql-result', 'data-testid': 'sql-result'});
  const chips = h('div', {class: 'chips'}, h('span', {class: 'muted small'}, 'Examples:'),
    ex.map(([label, q]) => h('button', {class: 'chip', type: 'button', title: q, 'data-testid': 'sql-example',
      onclick: () => { box.value = q; run(); }}, label)));
  clear(el).append(h('section', {class: 'panel', 'data-testid': 'sql'},
    h('h2', {}, 'SQL'),
    h('p', {class: 'muted small'}, 'Read-only DuckDB over the stats db: one SELECT at a time; tables ',
      h('code', {}, 'runs, steps, probes, predictions, activations, weights, metrics'), ' and the derived tables. ',
      'Ctrl+Enter runs the query.'),
    chips, box, h('div', {class: 'controls'}, runBtn, status), result));

  async function run() {
    const query = box.value;
    runBtn.disabled = true;
    clear(status);
    spinner(result, 'Running…');
    try {
      const res = await postJSON('/api/sql', {query});
      const n = res.rows.length;
      status.textContent = `${n} row${n === 1 ? '' : 's'}${res.truncated ? ` (cut to the first ${res.max_rows})` : ''} · ${res.elapsed_ms.toFixed(1)} ms`;
      if (!res.columns.length) { clear(result).append(h('p', {class: 'muted', text: 'The query returned no columns.'})); return; }
      const table = h('table', {class: 'table compact sql-table', 'data-testid': 'sql-table'},
        h('thead', {}, h('tr', {}, res.columns.map((c) => h('th', {title: c.type}, c.name)))),
        h('tbody', {}, res.rows.map((row) => h('tr', {}, row.map((v) => h('td', {class: typeof v === 'number' ? 'num' : null, title: typeof v === 'object' && v !== null ? JSON.stringify(v) : null}, cellText(v)))))));
      const idCol = res.columns.findIndex((c) => c.name === 'probe_id');
      clear(result).append(idCol >= 0 && n ? pickButton(ctx, new Set(res.rows.map((r) => r[idCol])), 'SQL result') : '', table);
      if (!n) result.append(h('p', {class: 'muted small', text: 'No rows.'}));
    } catch (err) {
      showError(result, err);
    } finally {
      runBtn.disabled = false;
    }
  }

  return {
    update() { /* one query box: nothing follows the timeline */ },
    destroy() { clear(el); },
  };
}
