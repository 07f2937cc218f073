// The selection: one set of probe images shared by every view, kept in the
// URL as `pick` (compact: row ranges "0-9.15" or "b" and a base64url bitset,
// whichever is shorter; rows are positions in the run's probe order), and the
// filters composed with it (`ft` true classes, `fp` predicted classes, `fc`
// right/wrong, `fconf` confidence range, `fflip` steps A-B, `fid` probe ids).
// What is highlighted at a step = (the selection, or every image) ∩ filters,
// evaluated on that step's predictions, so scrubbing stays true at every step.

import {getBinary} from './api.js';

const cache = new WeakMap(); // run -> {probes, preds: Map(step -> promise)}
const cacheOf = (run) => {
  if (!cache.has(run)) cache.set(run, {probes: null, preds: new Map()});
  return cache.get(run);
};
const base = (run) => `/api/runs/${encodeURIComponent(run.run_id)}`;

// {probe_id, label (typed arrays), row: Map(probe id -> row)}, fetched once per run
// as lean binary columns (int32 ids, uint8 labels: 5 bytes an image).
function withRows({probe_id, label}) {
  const row = new Map();
  for (let i = 0; i < probe_id.length; i++) row.set(probe_id[i], i);
  return {probe_id, label, row};
}

export function probesOf(ctx) {
  const c = cacheOf(ctx.run);
  if (!c.probes) {
    c.probes = getBinary(`${base(ctx.run)}/probes`, {format: 'lean'}).then((r) => withRows(r.arrays));
    c.probes.catch(() => { c.probes = null; });
  }
  return c.probes;
}

// The predictions of a step as typed arrays (pred, correct 0/1, confidence), fetched once
// per step as lean binary columns (about 3 bytes an image; the class probabilities are
// in the route's default format, which Inspect reads).
export function predsAt(ctx, step) {
  const c = cacheOf(ctx.run);
  if (!c.preds.has(step)) {
    const p = getBinary(`${base(ctx.run)}/steps/${step}/predictions`, {format: 'lean'}).then((r) => r.arrays);
    p.catch(() => c.preds.delete(step));
    c.preds.set(step, p);
  }
  return c.preds.get(step);
}

// ---- the compact form of a set of rows
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function ranges(rows) {
  const out = [];
  for (let i = 0; i < rows.length;) {
    let j = i;
    while (j + 1 < rows.length && rows[j + 1] === rows[j] + 1) j++;
    out.push(j > i ? `${rows[i]}-${rows[j]}` : String(rows[i]));
    i = j + 1;
  }
  return out.join('.');
}

function bitset(rows) {
  const max = rows.length ? rows[rows.length - 1] : -1;
  const digits = new Uint8Array(Math.floor(max / 6) + 1);
  for (const r of rows) digits[Math.floor(r / 6)] |= 1 << (r % 6);
  return 'b' + Array.from(digits, (d) => B64[d]).join('');
}

// rows: iterable of row numbers -> the shorter of the two forms ('' for none).
export function encodeRows(rows) {
  const sorted = [...new Set(rows)].sort((a, b) => a - b);
  if (!sorted.length) return '';
  const a = ranges(sorted); const b = bitset(sorted);
  return a.length <= b.length ? a : b;
}

// The compact form -> a mask over n rows (rows outside 0..n-1 and garbage are dropped).
export function decodeRows(text, n) {
  const mask = new Uint8Array(n);
  if (!text) return mask;
  if (text[0] === 'b') {
    for (let d = 1; d < text.length; d++) {
      const v = B64.indexOf(text[d]);
      for (let bit = 0; bit < 6 && v > 0; bit++) {
        const r = (d - 1) * 6 + bit;
        if ((v >> bit) & 1 && r < n) mask[r] = 1;
      }
    }
    return mask;
  }
  for (const part of text.split('.')) {
    const m = part.match(/^(\d+)(?:-(\d+))?$/);
    if (!m) continue;
    const lo = Number(m[1]); const hi = Math.min(n - 1, Number(m[2] ?? m[1]));
    for (let r = lo; r <= hi; r++) mask[r] = 1;
  }
  return mask;
}

// "3.5-7" -> [3, 5, 6, 7] (the filters' small lists: classes, probe ids).
export function parseList(text, limit = 100000) {
  const out = [];
  for (const part of String(text || '').split('.')) {
    const m = part.match(/^(\d+)(?:-(\d+))?$/);
    if (!m) continue;
    for (let v = Number(m[1]); v <= Number(m[2] ?? m[1]) && out.length < limit; v++) out.push(v);
  }
  return out;
}
export const listText = (values) => ranges([...new Set(values)].sort((a, b) => a - b));

export const FILTER_KEYS = ['ft', 'fp', 'fc', 'fconf', 'fflip', 'fid'];
export const hasFilter = (state) => FILTER_KEYS.some((k) => state[k] !== undefined && state[k] !== '');

// The mask of rows highlighted at `step`, or null when nothing is picked or filtered.
export async function highlightAt(ctx, step) {
  const {state} = ctx;
  if (!state.pick && !hasFilter(state)) return null;
  const probes = await probesOf(ctx);
  const n = probes.probe_id.length;
  const mask = state.pick ? decodeRows(state.pick, n) : new Uint8Array(n).fill(1);
  if (!hasFilter(state)) return mask;
  const p = await predsAt(ctx, step);
  const keep = [];
  if (state.ft) { const s = new Set(parseList(state.ft)); keep.push((i) => s.has(probes.label[i])); }
  if (state.fp) { const s = new Set(parseList(state.fp)); keep.push((i) => s.has(p.pred[i])); }
  if (state.fc === 'right' || state.fc === 'wrong') { const want = state.fc === 'right' ? 1 : 0; keep.push((i) => p.correct[i] === want); }
  if (state.fconf) {
    const [lo, hi] = String(state.fconf).split('-').map(Number);
    keep.push((i) => p.confidence[i] >= (lo || 0) - 1e-6 && p.confidence[i] <= (Number.isFinite(hi) ? hi : 1) + 1e-6);
  }
  if (state.fid) { const s = new Set(parseList(state.fid)); keep.push((i) => s.has(probes.probe_id[i])); }
  if (state.fflip) {
    const [a, b] = String(state.fflip).split('-').map(Number);
    const [pa, pb] = await Promise.all([predsAt(ctx, a), predsAt(ctx, b)]);
    keep.push((i) => pa.pred[i] !== pb.pred[i]);
  }
  for (let i = 0; i < n; i++) if (mask[i] && !keep.every((f) => f(i))) mask[i] = 0;
  return mask;
}

export function rowsOf(mask) {
  const out = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

// Make `ids` (probe ids; unknown ones are dropped) the selection, named by its source.
export async function selectIds(ctx, ids, source) {
  const probes = await probesOf(ctx);
  const rows = [];
  for (const id of ids) if (probes.row.has(Number(id))) rows.push(probes.row.get(Number(id)));
  ctx.set({pick: encodeRows(rows) || undefined, from: rows.length ? source : undefined}, {push: true});
}
