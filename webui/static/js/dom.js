// Small DOM and colour helpers shared by the views.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

// A <select> of [value, label] options with value chosen; a control with its label.
export function select(attrs, options, value) {
  return h('select', attrs, options.map(([v, text]) => h('option', {value: v, selected: String(v) === String(value)}, text)));
}
export const field = (label, control) => h('label', {class: 'inline'}, label, control);

// Fill a panel's section (a parent view hands each of its panels one) with a title and the rest.
export function fillPanel(el, title, testid, ...children) {
  el.className = 'panel';
  el.dataset.testid = testid;
  clear(el).append(h('h2', {}, title), ...children);
  return el;
}

// Tableau-like categorical palette (20 colours), then golden-angle hues beyond.
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf',
  '#1f77b4', '#aec7e8', '#ff7f0e', '#ffbb78', '#2ca02c', '#98df8a', '#d62728', '#ff9896', '#9467bd', '#c5b0d5'];
export function classColor(i) {
  if (i < 0) return '#999999';
  if (i < PALETTE.length) return PALETTE[i];
  return `hsl(${(i * 137.508) % 360}, 60%, 50%)`;
}

export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return Number(x).toFixed(digits);
}

export function pct(x) { return x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}%`; }

// A message in a panel (errors are shown where they happen; the rest keeps working).
export function showError(el, err) {
  clear(el).append(h('div', {class: 'error', role: 'alert', text: err && err.message ? err.message : String(err)}));
}

export function spinner(el, text = 'Computing…') {
  clear(el).append(h('div', {class: 'progress', role: 'progressbar', 'aria-busy': 'true'}, h('span', {class: 'spin'}), text));
}

let toastTimer = null;
export function toast(text) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = text; el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}
