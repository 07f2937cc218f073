// Metrics & filters tab: loss and accuracy over the steps (current step marked,
// click a point to jump there), per-class accuracy as a classes x steps
// heatmap, and the filters of a conv layer at the current step with how much
// each one changed since the previous step.

import {getJSON} from '../api.js';
import {h, clear, spinner, pct, fmt} from '../dom.js';
import {lineChart, heatmap, sequential, inkOn, panelError} from '../charts.js';

function api(ctx, path) { return `/api/runs/${encodeURIComponent(ctx.run.run_id)}/${path}`; }

const COLORS = {train: '#3563e9', val: '#f08c00', probe: '#2f9e44'};
// The first logged name found wins (Lightning logs train_loss and train_loss_epoch).
const LOSS = [['train', ['train_loss_epoch', 'train_loss']], ['val', ['val_loss']], ['probe', ['probe_loss']]];
const ACC = [['train', ['train_acc_epoch', 'train_acc']], ['val', ['val_acc']], ['probe', ['probe_acc']]];

function pick(series, groups) {
  const out = [];
  for (const [kind, names] of groups) {
    const name = names.find((n) => series[n] && series[n].some((v) => v !== null));
    if (name) out.push({name: `${kind}`, values: series[name], color: COLORS[kind], dash: kind === 'probe' ? '4 3' : null, full: name});
  }
  return out;
}

export const id = 'metrics';
export const title = 'Metrics & filters';

export function mount(el, ctx) {
  let data, filtersFor;
  const charts = h('div', {class: 'metric-charts'});
  const perClass = h('div', {class: 'per-class', 'data-testid': 'per-class'});
  const metricsNote = h('div', {});
  const metrics = h('section', {class: 'panel', 'data-testid': 'metrics'}, h('h2', {}, 'Metrics over the steps'),
    h('p', {class: 'muted small', text: 'Click a point to jump to that step. "probe" is the fixed probe set deepviz records.'}),
    charts, h('h3', {}, 'Accuracy per class (probe set)'), perClass, metricsNote);

  const convs = ctx.run.conv_layers || [];
  const convSel = h('select', {'aria-label': 'conv layer', 'data-testid': 'filters-layer', onchange: () => loadFilters()},
    convs.map((c) => h('option', {value: c}, c)));
  const filtersTitle = h('h2', {}, 'Filters');
  const filtersInfo = h('span', {class: 'muted small'});
  const filtersEl = h('div', {class: 'filters-box'});
  const filters = h('section', {class: 'panel', 'data-testid': 'filters'}, filtersTitle,
    h('div', {class: 'controls'}, convs.length > 1 ? h('label', {class: 'inline'}, 'layer', convSel) : null, filtersInfo),
    filtersEl);
  clear(el).append(metrics, filters);
  if (!convs.length) clear(filtersEl).append(h('p', {class: 'muted', text: 'This run stored no conv layer weights.'}));

  // ---- metrics
  async function loadMetrics() {
    // A running run gains steps: refetch when the timeline knows more than we do.
    if (data && data.steps.length === ctx.timeline.steps().length) { drawMetrics(); return; }
    spinner(charts, 'Loading…');
    try {
      data = await getJSON(api(ctx, 'metrics'));
      drawMetrics();
    } catch (err) { panelError(charts, err, {step: ctx.state.step}); }
  }

  function drawMetrics() {
    const d = data;
    if (!d) return;
    const names = ctx.run.class_names;
    const jump = (x) => ctx.set({step: x}, {push: true});
    const step = ctx.state.step;
    const width = Math.max(300, Math.min(520, Math.floor((charts.clientWidth || 900) / 2) - 12));
    const loss = pick(d.series, LOSS), acc = pick(d.series, ACC);
    clear(charts);
    const box = (title, testid, series, opts) => h('figure', {class: 'chart-box', 'data-testid': testid},
      h('figcaption', {}, title, h('span', {class: 'muted small'}, ' ', series.map((s) => {
        const i = d.steps.indexOf(step);
        const v = i >= 0 ? s.values[i] : null;
        return `${s.name} ${v === null || v === undefined ? '–' : opts.fmt(v)}`;
      }).join(' · '))),
      series.length ? lineChart(series, {xs: d.steps, width, height: 190, marker: step, onClick: jump, testid: `${testid}-chart`, ...opts.chart})
        : h('p', {class: 'muted small', text: 'Nothing logged.'}));
    charts.append(
      box('Loss', 'loss', loss, {fmt: (v) => fmt(v, 3), chart: {}}),
      box('Accuracy', 'accuracy', acc, {fmt: pct, chart: {yDomain: [0, 1], yFormat: (v) => `${Math.round(v * 100)}%`}}));

    const C = names.length, S = d.steps.length;
    const avail = Math.max(300, (perClass.clientWidth || 900) - 140);
    const cellW = Math.max(4, Math.min(44, Math.floor(avail / Math.max(1, S))));
    const cell = Math.max(8, Math.min(22, Math.floor(360 / Math.max(1, C))));
    const colLabels = d.steps.map((s, j) => (S <= 12 || j % Math.ceil(S / 12) === 0 ? String(s) : ''));
    const col = d.steps.indexOf(step);
    clear(perClass).append(heatmap(d.per_class_acc, {
      rowLabels: names, colLabels, cell, cellW, labelH: 18, colTitle: 'step', testid: 'per-class-heatmap',
      color: (v) => sequential(v), ink: (v) => inkOn(v),
      text: (v) => (cellW >= 30 && cell >= 16 && v !== null ? String(Math.round(100 * v)) : ''),
      title: (v, i, j) => `${names[i]} at step ${d.steps[j]}: ${v === null ? 'no data' : pct(v)}`,
      cellClass: (v, i, j) => (j === col ? 'current' : null),
      onClick: (i, j) => jump(d.steps[j]),
    }));
    clear(metricsNote);
    if (d.errors.length) {
      metricsNote.append(h('div', {class: 'error small', role: 'alert'},
        `Unreadable step${d.errors.length > 1 ? 's' : ''} ${d.errors.map((e) => e.step).join(', ')} (left blank): ${d.errors[0].error}`));
    }
  }

  // ---- filters
  async function loadFilters() {
    const conv = convSel.value;
    if (!conv) return;
    const step = ctx.state.step;
    const key = `${conv}|${step}`;
    filtersFor = key;
    filtersTitle.textContent = `Filters of ${conv} at step ${step}`;
    spinner(filtersEl, 'Loading…');
    clear(filtersInfo);
    try {
      const f = await getJSON(api(ctx, `steps/${step}/filters`), {conv});
      if (filtersFor !== key) return;
      const src = `${api(ctx, `steps/${step}/filters.png`)}?conv=${encodeURIComponent(conv)}`;
      // The grid is one PNG; each filter's cell shows its part of it (a sprite),
      // so the bar of its change can sit right under it.
      const img = h('img', {src, alt: `filters of ${conv}`, class: 'filters-png', 'data-testid': 'filters-image'});
      await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error(`The filter image of step ${step} could not be drawn.`)); });
      if (filtersFor !== key) return;
      const cells = [];
      const scale = f.cell_w < 36 ? 2 : 1;
      for (let i = 0; i < f.n_filters; i++) {
        const r = Math.floor(i / f.cols), c = i % f.cols;
        const x = f.gap + c * (f.cell_w + f.gap), y = f.gap + r * (f.cell_h + f.gap);
        const change = f.change ? f.change[i] : null;
        const dead = f.dead[i];
        cells.push(h('figure', {class: `filter${dead ? ' dead' : ''}`, 'data-dead': String(dead),
          title: `filter ${i} · L2 norm ${fmt(f.norm[i])}${dead ? ` · dead (norm under ${Math.round(100 * f.dead_fraction)}% of the layer median)` : ''}${change === null ? '' : ` · change ${fmt(change, 3)} since step ${f.prev_step}`}`},
          h('div', {class: 'filter-img', style: `width:${f.cell_w * scale}px;height:${f.cell_h * scale}px;background-image:url("${src}");` +
            `background-size:${img.naturalWidth * scale}px ${img.naturalHeight * scale}px;background-position:-${x * scale}px -${y * scale}px`}),
          // The change is bounded (0 = unchanged, 1 = replaced), so bars read the same at every step.
          change === null ? null : h('div', {class: 'bar', title: fmt(change, 3)}, h('span', {style: `width:${100 * change}%`})),
          h('figcaption', {}, dead ? 'dead' : change === null ? `#${i}` : fmt(change, 2))));
      }
      const grid = h('div', {class: 'filter-grid', 'data-testid': 'filters-grid'}, cells);
      const what = f.rgb ? 'RGB' : f.shape[1] > 1 ? `mean over ${f.shape[1]} input channels` : 'grey';
      const nDead = f.dead.filter(Boolean).length;
      filtersInfo.textContent = `${f.n_filters} filters of ${f.shape.slice(1).join('×')} · ${what}, one scale for the whole layer (mid-grey = 0), so a dead filter fades to grey`
        + ` · ${nDead ? `${nDead} dead (L2 norm under ${Math.round(100 * f.dead_fraction)}% of the layer's median)` : 'no dead filter'}.`;
      const changes = (f.change || []).filter((v) => v !== null).sort((a, b) => a - b);
      const note = f.prev_error ? h('div', {class: 'error small', role: 'alert'}, `Step ${f.prev_step} cannot be read, so no change is shown: ${f.prev_error}`)
        : changes.length ? h('p', {class: 'muted small'}, `Bars: change of each filter since step ${f.prev_step}, |w − w₀| / (|w| + |w₀|): 0 = unchanged, 0.5 = a change as large as the filter, 1 = replaced (it fell to zero, came back from zero, or flipped sign). Median ${fmt(changes[Math.floor(changes.length / 2)], 3)}, largest ${fmt(changes[changes.length - 1], 3)}.`)
          : h('p', {class: 'muted small'}, 'This is the first step: no change to show.');
      img.hidden = true;
      clear(filtersEl).append(grid, note, img);
    } catch (err) {
      if (filtersFor !== key) return;
      filtersFor = null; // try again next time
      panelError(filtersEl, err, {step: ctx.state.step});
    }
  }

  return {
    async update(changed) {
      if (!data || changed.has('view')) await loadMetrics();
      else if (changed.has('step')) drawMetrics();
      if (filtersFor !== `${convSel.value}|${ctx.state.step}`) loadFilters();
    },
    destroy() { clear(el); },
  };
}
