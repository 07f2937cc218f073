// Analysis panel: colour or meaning? Per layer, how far an image's nearest
// neighbours are also its nearest in colour, against how many share its
// class, from the quality answer (ctx.shared.quality).

import {h, clear, fillPanel} from '../../dom.js';
import {lineChart} from '../../charts.js';

const HELP = 'For each layer: how far each image\'s 10 nearest neighbours in the layer are also its nearest '
  + 'in colour (mean colour and colour histogram), against how many share its class. Both are scaled so that 0 is what a random '
  + 'embedding scores and 1 is perfect agreement. Dashed: the same for raw pixels. If similarity moves from colour to '
  + 'meaning during training, the colour line falls while the class line rises.';

// 0 = what a random embedding scores, 1 = perfect agreement.
const lift = (v, chance) => (v === null || v === undefined ? null : (v - chance) / (1 - chance));

function seriesOf(q, layer) {
  const cc = q.chance.colour_agreement, kc = q.chance.class_agreement;
  const px = q.baselines;
  const series = [
    {name: 'colour', values: q.values.colour_agreement[layer].map((v) => lift(v, cc)), color: '#e8590c'},
    {name: 'class', values: q.values.class_agreement[layer].map((v) => lift(v, kc)), color: '#3563e9'},
  ];
  if (px.colour_agreement.pixels !== undefined) {
    series.push({name: 'pixels: colour', legend: false, values: q.steps.map(() => lift(px.colour_agreement.pixels, cc)), color: '#e8590c', dash: '4 4', dots: false, opacity: 0.6});
    series.push({name: 'pixels: class', legend: false, values: q.steps.map(() => lift(px.class_agreement.pixels, kc)), color: '#3563e9', dash: '4 4', dots: false, opacity: 0.6});
  }
  return series;
}

export function mount(el, ctx) {
  const box = h('div', {class: 'colour-charts'});
  fillPanel(el, 'Colour or meaning?', 'colour-class', h('p', {class: 'muted small', text: HELP}), box);

  function draw() {
    const q = ctx.shared.quality;
    if (!q) return;
    clear(box);
    if (!q.layers.some((l) => q.values.colour_agreement[l].some((v) => v !== null))) { box.append(h('p', {class: 'muted', text: 'Nothing computed yet.'})); return; }
    for (const layer of q.layers) {
      box.append(h('figure', {class: 'chart-box'}, h('figcaption', {}, layer),
        lineChart(seriesOf(q, layer), {xs: q.steps, width: 300, height: 170, marker: ctx.state.step, testid: `colour-${layer}`,
          onClick: (x) => ctx.set({step: x}, {push: true}), yFormat: (v) => v.toFixed(2)})));
    }
  }

  return {
    update(changed) { if (changed.has('step') || changed.has('quality')) draw(); },
    destroy() { clear(el); },
  };
}
