// The Embedding tab's A | B panel: the layout at the current step (A) beside
// the one at step B (state.ab), with the same selection highlighted and the
// same colouring (each side coloured by its own step's data), and "what
// moved most": the images whose k nearest neighbours in the layer changed
// most between A and B (the server's measure, named in the panel).
// ctx.emb: layoutAt(step), colourAt(step) -> {groups, palette}, highlightAt(step), probes().

import {getJSON, thumbURL} from '../../api.js';
import {h, clear, fmt, showError, fillPanel, select} from '../../dom.js';
import {createScatter} from '../../scatter.js';
import {pickButton} from '../selection/gallery.js';
import {encodeRows, rowsOf} from '../../pick.js';

const TOP = 24;

export function mount(el, ctx) {
  const steps = () => ctx.timeline.steps().map((s) => s.step);
  const bSel = select({'aria-label': 'step B', 'data-testid': 'ab-step'}, [['', 'off'], ...steps().map((s) => [s, `step ${s}`])], ctx.state.ab ?? '');
  bSel.addEventListener('change', () => ctx.set({ab: bSel.value === '' ? undefined : Number(bSel.value)}, {push: true}));
  const boxes = [0, 1].map((i) => h('div', {class: 'scatter-box ab-box', 'data-testid': `ab-scatter-${'ab'[i]}`}));
  const titles = [0, 1].map(() => h('div', {class: 'small muted'}));
  const grid = h('div', {class: 'ab-grid'}, ...[0, 1].map((i) => h('div', {class: 'ab-side'}, titles[i], boxes[i])));
  const measure = h('p', {class: 'muted small', 'data-testid': 'moved-measure'});
  const moved = h('div', {class: 'gallery moved', 'data-testid': 'moved'});
  const body = h('div', {hidden: true}, grid, h('h3', {}, 'What moved most'), measure, moved);
  fillPanel(el, 'Two steps side by side', 'ab', h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'A = the current step, B =', bSel)), body);
  let scatters = null; // made when B is first chosen; until then the panel shows only the B control
  let seq = 0;

  async function side(i, step, my) {
    const [xy, colour, mask] = await Promise.all([ctx.emb.layoutAt(step), ctx.emb.colourAt(step), ctx.emb.highlightAt(step)]);
    if (my !== seq || !xy) return;
    titles[i].textContent = `${'AB'[i]} · step ${step}`;
    scatters[i].setGroups(colour.groups, colour.palette);
    scatters[i].setPositions(xy, {step, animate: false});
    scatters[i].setHighlight(mask);
    boxes[i].dataset.highlighted = mask ? ctx.emb.probes().probe_id.filter((_, r) => mask[r]).join(',') : '';
  }

  // Ranked within what is highlighted at A (the selection and the filters), when anything is.
  async function loadMoved(a, b, my) {
    clear(moved); measure.textContent = 'Comparing neighbourhoods…';
    const mask = await ctx.emb.highlightAt(a);
    const rows = mask ? encodeRows(rowsOf(mask)) : undefined;
    if (mask && !rows) { measure.textContent = 'Nothing is highlighted at A: no image to rank.'; return; }
    const query = {layer: ctx.state.layer, a, b, top: TOP, ...(mask ? {rows} : {})};
    const res = await getJSON(`/api/runs/${encodeURIComponent(ctx.run.run_id)}/moved`, query);
    if (my !== seq) return;
    const among = mask ? `the ${res.ranked} highlighted images (selection and filters)` : 'all images';
    measure.textContent = `Ranked among ${among}. Measure: ${res.measure}; ${res.tie_break}. `
      + `Mean ${fmt(res.mean, 2)}; the ${res.probe_id.length} highest:`;
    measure.append(' ', pickButton(ctx, res.probe_id, `moved most ${a}→${b}`));
    moved.append(...res.probe_id.map((id, j) => h('figure', {'data-probe': id, title: `#${id}: ${fmt(res.change[j], 2)}, drift ${fmt(res.drift[j], 2)}`, onclick: () => ctx.set({sel: id}, {push: true})},
      h('img', {class: 'thumb', src: thumbURL(ctx.run.run_id, id), alt: `image ${id}`, loading: 'lazy'}), h('figcaption', {}, fmt(res.change[j], 2), h('br'), `d ${fmt(res.drift[j], 2)}`))));
  }

  async function draw() {
    const my = ++seq;
    const b = ctx.state.ab;
    bSel.value = b ?? '';
    body.hidden = b === undefined || b === null || !steps().includes(b);
    if (body.hidden) return;
    if (!scatters) scatters = boxes.map((box) => createScatter(box, {onClick: (i) => ctx.set({sel: ctx.emb.probes().probe_id[i]}, {push: true})}));
    const a = ctx.state.step;
    try { await Promise.all([side(0, a, my), side(1, b, my), loadMoved(a, b, my)]); } catch (err) { if (my === seq) showError(measure, err); }
  }

  return {
    update(changed) {
      if (['ab', 'step', 'layer', 'method', 'color', 'view', 'pick', 'ft', 'fp', 'fc', 'fconf', 'fflip', 'fid'].some((k) => changed.has(k))) draw();
    },
    destroy() { seq += 1; if (scatters) scatters.forEach((s) => s.destroy()); clear(el); },
  };
}
