// Inspect panel 2: the activation maps of a spatial layer for the selected
// image and, for a conv layer, its filters.

import {getJSON} from '../../api.js';
import {h, clear, fmt, showError, spinner, fillPanel, select, field} from '../../dom.js';
import {weightsLine} from '../../weights.js';
import {moved, sig, fillPicker} from './shared.js';

function mapsFigure(ctx, layer, res) {
  const [mh, mw] = res.map_shape;
  const natural = res.ncols * (mw + 1) - 1;
  const grid = h('img', {class: 'insp-grid-img', src: res.png, alt: `${layer} activation maps`, 'data-testid': 'inspect-act-img', style: `width:${Math.max(420, natural)}px`});
  const info = h('div', {class: 'small muted'}, `${res.n} channels of ${mh}×${mw} · ${res.signed ? '±' : ''}${sig(Math.max(Math.abs(res.min), Math.abs(res.max)))} · ${res.cached ? 'cached' : fmt(res.seconds, 2) + ' s'}`);
  const hover = h('div', {class: 'small'}, 'Hover a map for its channel.');
  grid.addEventListener('mousemove', (e) => {
    const px = (e.offsetX / grid.clientWidth) * grid.naturalWidth;
    const py = (e.offsetY / grid.clientHeight) * grid.naturalHeight;
    const c = Math.floor(py / (mh + 1)) * res.ncols + Math.floor(px / (mw + 1));
    hover.textContent = c < res.n ? `channel ${c} · max ${fmt(res.channel_max[c], 3)}` : '';
  });
  return h('figure', {class: 'insp-card'}, h('div', {class: 'insp-title'}, `${layer} for probe #${ctx.state.sel}`), grid, info, hover);
}

function filtersFigure(layer, filt) {
  const [fh, fw] = filt.filter_shape;
  const natural = filt.ncols * (fw + 1) - 1;
  return h('figure', {class: 'insp-card'}, h('div', {class: 'insp-title'}, `${layer} filters`),
    h('img', {class: 'insp-grid-img', src: filt.png, alt: `${layer} filters`, style: `width:${Math.max(240, natural)}px`}),
    h('div', {class: 'small muted'}, `${filt.n} filters of ${fh}×${fw}${filt.rgb ? ' (RGB)' : ' (mean over input channels)'} · grey = 0`));
}

export function mount(el, ctx) {
  const {data} = ctx;
  const layerSel = h('select', {'aria-label': 'activation layer', 'data-testid': 'inspect-act-layer'});
  const norm = select({'aria-label': 'normalisation'}, [['layer', 'one scale for the layer'], ['channel', 'each channel stretched']], 'layer');
  const out = h('div', {class: 'insp-row'});
  const weights = weightsLine('inspect-act-weights');
  layerSel.addEventListener('change', () => render());
  norm.addEventListener('change', () => render());
  fillPanel(el, 'Activation maps', 'inspect-actmaps',
    h('div', {class: 'controls'}, field('layer', layerSel), field('scale', norm)), weights.el, out);
  let gen = 0;

  async function render() {
    const my = ++gen;
    if (ctx.state.sel === undefined || !layerSel.value) return;
    spinner(out, 'Computing activation maps…');
    weights.show(null);
    const layer = layerSel.value;
    try {
      const res = await getJSON(`${data.stepBase()}/activation_maps`, {probe: ctx.state.sel, layer, norm: norm.value});
      const filt = data.model.conv_layers.includes(layer) ? await getJSON(`${data.stepBase()}/filters`, {layer}) : null;
      if (my !== gen) return;
      clear(out).append(...[mapsFigure(ctx, layer, res), filt && filtersFigure(layer, filt)].filter(Boolean));
      weights.show(res);
    } catch (err) {
      if (my === gen) showError(out, err);
    }
  }

  return {
    update(changed) {
      if (data.modelError) { showError(out, data.modelError); return; }
      if (changed.has('model')) fillPicker(layerSel, data.layerOptions((l) => l.spatial), data.model.conv_layers[0]);
      if (moved(changed) || changed.has('sel')) render();
    },
    destroy() { gen += 1; clear(el); },
  };
}
