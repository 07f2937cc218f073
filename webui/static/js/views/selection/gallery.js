// Side panel, top: the selection (pick.js) at the current step: how many
// images, where they came from, counts by class, accuracy and confidence at
// this step, and their thumbnails (a 160 px preview on hover). Hidden while
// nothing is picked or filtered.

import {thumbURL} from '../../api.js';
import {h, clear, classColor, pct, showError} from '../../dom.js';
import {highlightAt, probesOf, predsAt, rowsOf, hasFilter, FILTER_KEYS} from '../../pick.js';

const PAGE = 120;
const KEYS = ['step', 'pick', 'from', 'sel', 'view', ...FILTER_KEYS];

// A big pixelated preview of a thumbnail, beside the pointer.
export function previewer() {
  const el = h('div', {class: 'tooltip preview', 'data-testid': 'preview', hidden: true});
  document.body.append(el);
  return {
    show(src, caption, x, y) {
      clear(el).append(h('img', {class: 'thumb huge', src, alt: caption}), h('div', {class: 'small'}, caption));
      el.hidden = false;
      el.style.left = `${x + 180 > window.innerWidth ? x - 190 : x + 14}px`;
      el.style.top = `${Math.min(y + 10, window.innerHeight - 210)}px`;
    },
    hide() { el.hidden = true; },
    destroy() { el.remove(); },
  };
}

function classCounts(ctx, rows, labels, pred) {
  const names = ctx.run.class_names;
  const counts = new Map();
  for (const r of rows) {
    const c = counts.get(labels[r]) || {n: 0, right: 0};
    c.n += 1; c.right += pred && pred[r] === labels[r] ? 1 : 0;
    counts.set(labels[r], c);
  }
  return h('div', {class: 'pick-classes', 'data-testid': 'pick-classes'}, [...counts].sort((a, b) => b[1].n - a[1].n).map(([c, v]) =>
    h('span', {class: 'pick-class', title: `${v.n} ${names[c]}, ${v.right} right at this step`},
      h('i', {style: `background:${classColor(c)}`}), `${names[c]}: ${v.n}`)));
}

export function mount(el, ctx) {
  const preview = previewer();
  let seq = 0;

  async function draw() {
    const my = ++seq;
    const step = ctx.state.step;
    const mask = await highlightAt(ctx, step);
    if (my !== seq) return;
    if (!mask) { clear(el).hidden = true; return; }
    const [probes, p] = await Promise.all([probesOf(ctx), predsAt(ctx, step)]);
    if (my !== seq) return;
    const rows = rowsOf(mask);
    const right = rows.reduce((a, r) => a + (p.correct[r] ? 1 : 0), 0);
    const conf = rows.reduce((a, r) => a + p.confidence[r], 0);
    const names = ctx.run.class_names;
    const what = [ctx.state.pick ? (ctx.state.from || 'selection') : 'all images', hasFilter(ctx.state) ? 'filtered' : null].filter(Boolean).join(', ');
    const grid = h('div', {class: 'gallery pick-grid'});
    let shown = 0;
    const more = h('button', {class: 'btn small', type: 'button', 'data-testid': 'pick-more'});
    const page = () => {
      for (const r of rows.slice(shown, shown + PAGE)) {
        const id = probes.probe_id[r];
        const caption = `#${id} · ${names[probes.label[r]]} → ${names[p.pred[r]]} (${pct(p.confidence[r])})`;
        grid.append(h('figure', {'data-probe': id, class: id === ctx.state.sel ? 'selected' : null, title: caption,
          onclick: () => ctx.set({sel: id}, {push: true}),
          onmousemove: (e) => preview.show(thumbURL(ctx.run.run_id, id), caption, e.clientX, e.clientY), onmouseleave: () => preview.hide()},
        h('img', {class: `thumb ${p.correct[r] ? 'right' : 'wrong'}`, src: thumbURL(ctx.run.run_id, id), alt: `image ${id}`, loading: 'lazy'})));
      }
      shown = Math.min(rows.length, shown + PAGE);
      more.hidden = shown >= rows.length;
      more.textContent = `more (${rows.length - shown})`;
    };
    more.addEventListener('click', page);
    el.hidden = false;
    el.dataset.testid = 'pick';
    el.dataset.count = String(rows.length);
    el.dataset.step = String(step);
    clear(el).append(
      h('div', {class: 'pick-head'}, h('h2', {}, `Selection · ${rows.length} image${rows.length === 1 ? '' : 's'}`),
        h('button', {class: 'btn close', type: 'button', title: 'Clear the selection and the filters', 'aria-label': 'clear selection', 'data-testid': 'pick-clear',
          onclick: () => ctx.set(Object.fromEntries(['pick', 'from', ...FILTER_KEYS].map((k) => [k, undefined])), {push: true})}, '×')),
      h('div', {class: 'muted small', 'data-testid': 'pick-source'}, what),
      h('div', {class: 'small', 'data-testid': 'pick-stats'}, rows.length
        ? `at step ${step}: ${right} right (${pct(right / rows.length)}), mean confidence ${pct(conf / rows.length)}`
        : `no image matches at step ${step}`),
      classCounts(ctx, rows, probes.label, p.pred), grid, more);
    page();
  }

  return {
    update(changed) {
      if (KEYS.some((k) => changed.has(k))) draw().catch((err) => { el.hidden = false; showError(el, err); });
    },
    destroy() { seq += 1; preview.destroy(); clear(el); },
  };
}

// The button every source of a selection shows beside its images ("Select these 12").
export function pickButton(ctx, ids, source) {
  const list = [...ids];
  return h('button', {class: 'btn small pick-btn', type: 'button', 'data-testid': 'pick-these', title: `Make these the selection (${source})`,
    onclick: () => ctx.select(list, source)}, `Select these ${list.length}`);
}
