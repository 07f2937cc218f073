// The Embedding tab: a 2-D projection of the chosen layer at the current step,
// aligned across steps so points move smoothly while scrubbing, coloured by
// class, prediction, correctness or cluster, and the clusters panel below.
// Layouts are fetched and cached by ./embedding/layouts.js. The selection
// (pick.js) is highlighted, the rest dimmed; a lasso, a box or a legend click
// makes one; the filter bar, trails and the A | B panel are modules of ./embedding/.

import {thumbURL} from '../api.js';
import {h, clear, classColor, pct, showError, select} from '../dom.js';
import {createScatter} from '../scatter.js';
import {probesOf, predsAt, highlightAt, decodeRows, encodeRows, rowsOf} from '../pick.js';
import {layouts, methodOf, trailsFor, MAX_TRAILS} from './embedding/layouts.js';
import * as clustersPanel from './embedding/clusters.js';
import * as query from './embedding/query.js';
import * as compare from './embedding/compare.js';
import {COLOUR_BY, colourStats, colourBy} from '../colourstats.js';

export const id = 'embedding';
export const title = 'Embedding';

const METHODS = [['pca', 'PCA'], ['tsne', 't-SNE'], ['umap', 'UMAP']];
const COLORS = [['label', 'true class'], ['pred', 'predicted class'], ['correct', 'correct / wrong'], ['cluster', 'cluster'], ...COLOUR_BY,
  ['subgroup', 'sub-groups of one class']];
const byImage = (color) => COLOUR_BY.some(([c]) => c === color);
// The legend of a colouring by the image itself (no groups to click).
const IMAGE_LEGEND = {mean_colour: [['#888', "each point in its image's mean colour"]],
  brightness: [['#111', 'dark'], ['#eee', 'bright']], saturation: [['#999', 'grey'], ['#e8591a', 'vivid']]};
const GOOD = '#2f9e44'; const BAD = '#d9480f';
const DRAG = [['pan', 'pan'], ['lasso', 'lasso'], ['box', 'box']];
const HIGHLIGHT_KEYS = ['pick', 'ft', 'fp', 'fc', 'fconf', 'fflip', 'fid', 'trail', 'sel'];

function controls(ctx) {
  const {run, state} = ctx;
  const ui = {
    layerSel: select({'aria-label': 'layer', 'data-testid': 'emb-layer'}, run.layers.map((l) => [l, l]), state.layer),
    methodSel: select({'aria-label': 'projection method', 'data-testid': 'emb-method'}, METHODS, methodOf(ctx)),
    colorSel: select({'aria-label': 'colour by', 'data-testid': 'emb-color'}, COLORS, state.color || 'label'),
    mosaicBox: h('input', {type: 'checkbox', 'data-testid': 'emb-mosaic'}),
    dragSel: select({'aria-label': 'drag to', 'data-testid': 'emb-drag'}, DRAG, 'pan'),
    trailBox: h('input', {type: 'checkbox', 'data-testid': 'emb-trails', checked: !!state.trail}),
    filters: h('div'),
    progress: h('div', {class: 'emb-progress', 'data-testid': 'emb-progress', hidden: true}),
    note: h('span', {class: 'muted small emb-note', 'data-testid': 'emb-note'}),
    box: h('div', {class: 'scatter-box', 'data-testid': 'scatter'}),
    overlay: h('div', {class: 'scatter-overlay', hidden: true}),
    legend: h('div', {class: 'emb-legend', 'data-testid': 'emb-legend'}),
    tooltip: h('div', {class: 'tooltip emb-tooltip', 'data-testid': 'emb-tooltip', hidden: true}),
  };
  ui.layerSel.addEventListener('change', () => ctx.set({layer: ui.layerSel.value}, {push: true}));
  ui.methodSel.addEventListener('change', () => ctx.set({method: ui.methodSel.value}, {push: true}));
  ui.colorSel.addEventListener('change', () => ctx.set({color: ui.colorSel.value}, {push: true}));
  ui.trailBox.addEventListener('change', () => ctx.set({trail: ui.trailBox.checked ? '1' : undefined}, {push: true}));
  ui.panel = h('div', {class: 'panel emb-panel'},
    h('div', {class: 'controls'},
      h('label', {class: 'inline'}, 'Layer', ui.layerSel),
      h('label', {class: 'inline'}, 'Projection', ui.methodSel),
      h('label', {class: 'inline'}, 'Colour by', ui.colorSel),
      h('label', {class: 'inline', title: 'Draw each image at its position'}, ui.mosaicBox, 'Mosaic'),
      h('label', {class: 'inline', title: 'Drag to pan, or to draw a lasso or a box that selects the points inside'}, 'Drag to', ui.dragSel),
      h('label', {class: 'inline', title: `Each highlighted point's path over every step (at most ${MAX_TRAILS})`}, ui.trailBox, 'Trails'),
      ui.note),
    ui.filters,
    ui.progress,
    h('div', {class: 'emb-main'}, h('div', {class: 'scatter-wrap'}, ui.box, ui.overlay), ui.legend),
    h('p', {class: 'muted small emb-help'}, 'Hover a point to see its image; click to select it. Scroll to zoom, drag to pan (or lasso / box), double-click to reset. '
      + 'Click a legend entry to select its images, shift-click to hide them (shift-click again to show them).'));
  return ui;
}

// Group and palette of every point, and the legend's items ([colour, text, group]; no group: not clickable).
function colouring(ctx, probes, preds, clusters, stats) {
  const names = ctx.run.class_names;
  const colorBy = ctx.state.color || 'label';
  if (byImage(colorBy) && stats) {
    return {groups: Int32Array.from(probes.label, (_, i) => i), palette: colourBy(stats, colorBy), items: IMAGE_LEGEND[colorBy]};
  }
  const byClass = (labels) => ({groups: Int32Array.from(labels), palette: classColor, items: names.map((name, i) => [classColor(i), name, i])});
  if (colorBy === 'pred') return byClass(preds.pred);
  if (colorBy === 'correct') {
    const groups = Int32Array.from(preds.correct, (c) => (c ? 1 : 0));
    const right = groups.reduce((a, b) => a + b, 0);
    return {groups, palette: (g) => (g ? GOOD : BAD), items: [[GOOD, `correct (${right})`, 1], [BAD, `wrong (${probes.label.length - right})`, 0]]};
  }
  if (colorBy === 'subgroup' && clusters) return clusters; // already a colouring: clusters.js subgroups()
  if (colorBy === 'cluster' && clusters) {
    const items = clusters.meta.clusters.map((c) => [clustersPanel.clusterColor(c.id), `cluster ${c.id} · mostly ${names[c.majority]} (${pct(c.purity)})`, c.id]);
    if (clusters.meta.noise) items.push([clustersPanel.NOISE, `noise (${clusters.meta.noise})`, -1]);
    return {groups: clusters.labels, palette: clustersPanel.clusterColor, items};
  }
  return byClass(probes.label);
}

export function mount(el, ctx) {
  if (!METHODS.some(([m]) => m === methodOf(ctx))) ctx.set({method: 'tsne'});
  const ui = controls(ctx);
  const api = (path) => `/api/runs/${encodeURIComponent(ctx.run.run_id)}${path}`;
  let probes = null; // {probe_id, label, row: Map(probe id -> row)}
  let current = null; // the predictions on screen
  let seq = 0;
  let shownStep = null; let shownProvisional = false;

  const sequence = layouts(ctx, {
    progress: ui.progress,
    methodLabel: () => (ui.methodSel.selectedOptions[0] ? ui.methodSel.selectedOptions[0].textContent : null),
    // The step on screen was pending or provisional and is now cached: show the real one.
    onCached: (cached) => {
      if ((shownProvisional || shownStep === null) && cached.has(ctx.state.step)) {
        sequence.forget(ctx.state.step);
        showStep().catch((err) => showError(ui.overlay, err));
      }
    },
  });
  const clusterEl = h('div');
  const compareEl = h('div');
  // What the colouring needs beside the predictions: the step's clusters, or the images' colour statistics.
  const extrasAt = (step) => {
    const color = ctx.state.color || 'label';
    const groups = color === 'cluster' ? clusters.labelsAt(step) : color === 'subgroup' ? clusters.subgroups() : null;
    return [groups, byImage(color) ? colourStats(ctx.run.run_id) : null];
  };
  const colourAt = async (step) => {
    const [p, cl, stats] = await Promise.all([predsAt(ctx, step), ...extrasAt(step)]);
    return colouring(ctx, probes, p, cl, stats);
  };
  const sub = {...ctx, emb: {probes: () => probes, preds: () => current, redraw: () => showStep().catch(() => {}),
    layoutAt: (step) => sequence.at(step).then((l) => l.xy), colourAt, highlightAt: (step) => highlightAt(ctx, step)}};
  const clusters = clustersPanel.mount(clusterEl, sub);
  const filters = query.mount(ui.filters, ctx);
  const ab = compare.mount(compareEl, sub);
  clear(el).append(ui.panel, compareEl, clusterEl, ui.tooltip);
  const idsOf = (rows) => rows.map((i) => probes.probe_id[i]);
  const scatter = createScatter(ui.box, {
    onHover: (i, x, y) => showTooltip(i, x, y),
    onClick: (i) => ctx.set({sel: probes.probe_id[i]}, {push: true}),
    onArea: (rows) => ctx.select(idsOf(rows), ui.dragSel.value),
  });
  ui.mosaicBox.addEventListener('change', () => setMosaic(ui.mosaicBox.checked));
  ui.dragSel.addEventListener('change', () => scatter.setDragMode(ui.dragSel.value));

  // A legend click selects the group's images. Shift-click hides a group (its points are not
  // drawn; the selection is the rest), shift-click again shows it: `hiding` holds the hidden
  // groups and the selection they were taken from, while the pick is the one it made.
  let hiding = null; // {groups: Set, base, baseFrom, color, pick}
  let shownGroups = null;
  const hidingNow = () => (hiding && hiding.pick === ctx.state.pick && hiding.color === (ctx.state.color || 'label') ? hiding : null);
  function legendClick(e, g, groups, items) {
    const what = ui.colorSel.selectedOptions[0].textContent;
    const rowsWhere = (keep) => { const out = []; for (let i = 0; i < groups.length; i++) if (keep(i)) out.push(i); return out; };
    if (!e.shiftKey) { ctx.select(idsOf(rowsWhere((i) => groups[i] === g)), `${what} ${items.find((it) => it[2] === g)[1]}`); return; }
    const hz = hidingNow() || {groups: new Set(), base: ctx.state.pick, baseFrom: ctx.state.from, color: ctx.state.color || 'label'};
    if (hz.groups.has(g)) hz.groups.delete(g); else hz.groups.add(g);
    if (!hz.groups.size) { hiding = null; ctx.set({pick: hz.base, from: hz.baseFrom}, {push: true}); return; }
    const base = hz.base ? decodeRows(hz.base, groups.length) : null;
    const rows = rowsWhere((i) => (!base || base[i]) && !hz.groups.has(groups[i]));
    hz.pick = encodeRows(rows) || undefined;
    hiding = rows.length ? hz : null; // hiding everything clears the selection, and starts afresh
    const names = items.filter((it) => hz.groups.has(it[2])).map((it) => it[1]).join(', ');
    ctx.select(idsOf(rows), `${hz.base ? `${hz.baseFrom || 'selection'} ` : ''}without ${what} ${names}`);
  }

  // The hidden groups' points are left out of the scatter and struck through in the legend.
  function showHiding() {
    const hz = hidingNow();
    scatter.setHidden(hz && shownGroups ? Uint8Array.from(shownGroups, (x) => (hz.groups.has(x) ? 1 : 0)) : null);
    ui.box.dataset.hiddenGroups = hz ? [...hz.groups].sort((a, b) => a - b).join(',') : '';
    for (const b of ui.legend.querySelectorAll('button[data-group]')) {
      const off = !!hz && hz.groups.has(Number(b.dataset.group));
      b.classList.toggle('off', off); b.setAttribute('aria-pressed', String(off));
    }
  }

  // Dim what is not highlighted; the highlighted probe ids go on the scatter's element (data-highlighted).
  async function showHighlight(step, my) {
    const mask = await highlightAt(ctx, step);
    if (my !== seq) return;
    scatter.setHighlight(mask);
    showHiding();
    ui.box.dataset.highlighted = mask ? idsOf(rowsOf(mask)).join(',') : '';
    ui.box.dataset.highlightStep = String(step);
    const selRow = probes.row.has(ctx.state.sel) ? probes.row.get(ctx.state.sel) : -1;
    const t = ctx.state.trail ? await trailsFor(ctx.timeline.steps().map((s) => s.step), (s) => sequence.at(s), step, mask, selRow) : null;
    if (my !== seq) return;
    scatter.setTrails(t);
    ui.box.dataset.trails = t ? String(t.rows.length) : '0';
    if (t && t.cut) ui.note.textContent = `trails of the first ${MAX_TRAILS} highlighted images`;
  }

  async function showStep() {
    const my = ++seq;
    const step = ctx.state.step;
    const [layout, p, cl, stats] = await Promise.all([sequence.at(step), predsAt(ctx, step), ...extrasAt(step)]).catch((err) => { if (my === seq) { showError(ui.overlay, err); ui.overlay.hidden = false; } return [null]; });
    if (my !== seq || !layout) return; // a later step was asked for meanwhile
    ui.overlay.hidden = true;
    if (layout.pending) {
      shownStep = null;
      clear(ui.overlay).append(h('div', {class: 'progress'}, h('span', {class: 'spin'}), 'Computing the first layout…'));
      ui.overlay.hidden = false;
      return;
    }
    current = p;
    shownStep = step; shownProvisional = !!layout.provisional;
    ui.note.textContent = layout.provisional ? `step ${step}: provisional layout (aligned to step ${layout.alignedTo ?? '–'}), the aligned one is being computed` : '';
    const {groups, palette, items} = colouring(ctx, probes, p, cl, stats);
    scatter.setGroups(groups, palette);
    shownGroups = groups;
    clear(ui.legend).append(...items.map(([c, text, g]) => (g === undefined
      ? h('span', {class: 'legend-item'}, h('span', {class: 'swatch', style: `background:${c}`}), text)
      : h('button', {class: 'legend-item', type: 'button', title: 'Click: select these; shift-click: hide them (again: show them)',
        'data-group': g, onclick: (e) => legendClick(e, g, groups, items)}, h('span', {class: 'swatch', style: `background:${c}`}), text))));
    scatter.setPositions(layout.xy, {step});
    // A User Timing mark (the browser's performance panel; bench/payload.py counts the first paint's bytes up to it).
    performance.mark('embedding:drawn', {detail: {step}});
    sequence.drawn();
    prefetchAround(step);
    scatter.setSelected(probes.row.has(ctx.state.sel) ? probes.row.get(ctx.state.sel) : null);
    await showHighlight(step, my);
  }

  // Once a step is drawn, the predictions of the steps beside it are fetched, so stepping
  // with the arrow keys or playing waits for no request (about 3 bytes an image each).
  function prefetchAround(step) {
    const steps = ctx.timeline.steps().map((s) => s.step);
    const i = steps.indexOf(step);
    for (const s of [steps[i + 1], steps[i - 1]]) if (i >= 0 && s !== undefined) predsAt(ctx, s).catch(() => {});
  }

  // The mosaic's thumbnails come as tiles of the rows on screen, at the size their cells are drawn.
  function setMosaic(on) { scatter.setMosaic(on ? (size, rows) => api(`/tiles.png?size=${size}&rows=${rows}`) : null); }

  function showTooltip(i, x, y) {
    const tip = ui.tooltip;
    if (i === null || i === undefined || !probes) { tip.hidden = true; return; }
    const names = ctx.run.class_names;
    const pid = probes.probe_id[i]; const label = probes.label[i];
    const pred = current ? current.pred[i] : null;
    clear(tip).append(
      h('img', {class: 'thumb big', src: thumbURL(ctx.run.run_id, pid), alt: `probe ${pid}`}),
      h('div', {class: 'tip-text'},
        h('div', {}, h('b', {}, names[label]), h('span', {class: 'muted'}, ` · #${pid}`)),
        current ? h('div', {class: pred === label ? 'good' : 'bad'}, `predicted ${names[pred]}`) : null,
        current ? h('div', {class: 'muted'}, `confidence ${pct(current.confidence[i])}`) : null));
    tip.hidden = false;
    const w = 300; const left = x + 14 + w > window.innerWidth ? x - w - 10 : x + 14;
    tip.style.left = `${left}px`; tip.style.top = `${Math.min(y + 12, window.innerHeight - 180)}px`;
  }

  return {
    async update(changed) {
      const {state} = ctx;
      if (changed.has('layer')) ui.layerSel.value = state.layer;
      if (changed.has('method') && state.method) ui.methodSel.value = state.method;
      if (changed.has('color')) ui.colorSel.value = state.color || 'label';
      if (changed.has('trail')) ui.trailBox.checked = !!state.trail;
      filters.update(changed);
      try {
        if (!probes) probes = await probesOf(ctx);
        if (changed.has('layer') || changed.has('method') || changed.has('view')) await sequence.start();
        if (['step', 'layer', 'method', 'color', 'k', 'view', 'subref', 'subcls', 'subk'].some((k) => changed.has(k))) await showStep();
        else if (HIGHLIGHT_KEYS.some((k) => changed.has(k)) && shownStep !== null) await showHighlight(shownStep, seq);
        if (changed.has('sel') || changed.has('view')) scatter.setSelected(probes.row.has(state.sel) ? probes.row.get(state.sel) : null);
        clusters.update(changed);
        ab.update(changed);
      } catch (err) {
        showError(ui.overlay, err); ui.overlay.hidden = false;
      }
    },
    destroy() { seq += 1; sequence.destroy(); clusters.destroy(); ab.destroy(); filters.destroy(); scatter.destroy(); clear(el); },
  };
}
