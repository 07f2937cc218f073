// Both runs' embeddings of the shared probe images in one frame: PCA of each run's layer at its step, run B
// rotated onto run A by orthogonal Procrustes on the shared ids. The selected image is marked in both.

import {getBinary} from '../../api.js';
import {h, select, field, fillPanel, classColor} from '../../dom.js';
import {panelError} from '../../charts.js';
import {createScatter} from '../../scatter.js';

export function mount(el, ctx) {
  const boxes = [h('div', {class: 'scatter-box', 'data-testid': 'compare-scatter-a'}), h('div', {class: 'scatter-box', 'data-testid': 'compare-scatter-b'})];
  const tags = boxes.map((b) => { const t = h('span', {class: 'tag'}); b.append(t); return t; });
  const controls = h('div', {class: 'toolbar'});
  const note = h('p', {class: 'note', 'data-testid': 'compare-embedding-note'});
  fillPanel(el, 'Embeddings in one frame', 'compare-embeddings', controls, h('div', {class: 'pair'}, ...boxes), note);
  let ids = null;
  const pick = (i) => { if (i !== null && ids) ctx.set({sel: ids[i]}, {push: true}); };
  const scatters = boxes.map((b) => createScatter(b, {onClick: pick}));
  let token = 0;

  function drawControls() {
    const s = ctx.summary;
    const layer = (key, layers) => select({'data-testid': key, onchange: (e) => ctx.set({[key]: e.target.value}, {push: true})},
      layers.map((l) => [l, l]), ctx.state[key] || layers[layers.length > 1 ? layers.length - 2 : 0]);
    controls.replaceChildren(field('layer of A', layer('layer_a', s.layers_a)), field('layer of B', layer('layer_b', s.layers_b)));
  }

  function mark() {
    const i = ids ? ids.indexOf(ctx.state.sel) : -1;
    for (const sc of scatters) sc.setSelected(i >= 0 ? i : null);
  }

  async function load() {
    const t = ++token;
    const {step_a, step_b} = ctx.steps();
    try {
      const {meta, arrays} = await getBinary('/api/compare/embedding', ctx.params({step_a, step_b, layer_a: ctx.state.layer_a, layer_b: ctx.state.layer_b}));
      if (t !== token) return;
      ids = Array.from(arrays.probe_id);
      scatters[0].setPositions(arrays.xy_a, {step: meta.step_a});
      scatters[1].setPositions(arrays.xy_b, {step: meta.step_b});
      for (const sc of scatters) sc.setGroups(arrays.label, classColor);
      tags[0].textContent = `A · ${ctx.runName(meta.run_a)} · ${meta.layer_a} · step ${meta.step_a}`;
      tags[1].textContent = `B · ${ctx.runName(meta.run_b)} · ${meta.layer_b} · step ${meta.step_b}, aligned to A`;
      note.textContent = `${meta.n_shared} shared images, coloured by class. Procrustes disparity ${meta.disparity.toFixed(3)} (0: the same layout up to rotation, shift and scale; 1: unrelated). Click a point to select that image in every panel.`;
      mark();
    } catch (err) { if (t === token) panelError(note, err); }
  }

  return {
    update(changed) {
      if (changed.has('summary')) drawControls();
      if (changed.has('at') || changed.has('layer_a') || changed.has('layer_b')) load();
      if (changed.has('sel')) mark();
    },
    destroy() { for (const sc of scatters) sc.destroy(); },
  };
}
