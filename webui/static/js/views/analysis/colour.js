// Analysis panel: colour or meaning? Per layer, how far an image's nearest
// neighbours are also its nearest in colour, against how many share its
// class, from the quality answer (ctx.shared.quality).

import {h, clear, fillPanel} from '../../dom.js';
import {lineChart} from '../../charts.js';

const HELP = 'For each layer: how far each image\'s 10 nearest neighbours in the layer are also its nearest '
  + 'in colour (mean colour and colour histogram), against how many share its class. Both are scaled so that 0 is what a random '
  + 'embedding scores and 1 is perfect agreement. Dashed: the same for raw pixels.';
// How to read the charts: they share one scale, so heights compare across layers.
const HOW = 'How to read it: every chart has the same vertical scale, so compare heights across layers as well as along the steps. '
  + 'Where the orange (colour) line is above the blue (class) line, images sit near images of the same colour; where blue is above orange, near images of the same class. '
  + 'Colour gives way to meaning where orange falls and blue rises over the steps; the first layer, left to right, whose blue line ends above its orange one is where meaning takes over.';

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

// One vertical scale for every layer: from 0 (chance) or below, to the highest value of any layer, on tenths
// (not always to 1: values that all sit below 0.3 would be squeezed into the bottom of the chart).
function sharedDomain(values) {
  const known = values.filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  const lo = Math.min(0, ...known), hi = Math.max(0.1, ...known);
  return [Math.floor(lo * 10) / 10, Math.ceil(hi * 10) / 10];
}

export function mount(el, ctx) {
  const box = h('div', {class: 'colour-charts'});
  fillPanel(el, 'Colour or meaning?', 'colour-class', h('p', {class: 'muted small', text: HELP}),
    h('p', {class: 'small colour-how', 'data-testid': 'colour-how', text: HOW}), box);

  function draw() {
    const q = ctx.shared.quality;
    if (!q) return;
    clear(box);
    if (!q.layers.some((l) => q.values.colour_agreement[l].some((v) => v !== null))) { box.append(h('p', {class: 'muted', text: 'Nothing computed yet.'})); return; }
    const series = q.layers.map((layer) => seriesOf(q, layer));
    const yDomain = sharedDomain(series.flat().flatMap((s) => s.values));
    q.layers.forEach((layer, i) => {
      box.append(h('figure', {class: 'chart-box'}, h('figcaption', {}, layer),
        lineChart(series[i], {xs: q.steps, width: 300, height: 170, marker: ctx.state.step, testid: `colour-${layer}`, yDomain,
          onClick: (x) => ctx.set({step: x}, {push: true}), yFormat: (v) => v.toFixed(2)})));
    });
  }

  return {
    update(changed) { if (changed.has('step') || changed.has('quality')) draw(); },
    destroy() { clear(el); },
  };
}
