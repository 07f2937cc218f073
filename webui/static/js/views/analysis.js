// The Analysis tab: similarity search (a probe image or an uploaded one),
// how good each layer's representation is over the steps, how much a layer
// changed (linear CKA), the data map of training dynamics, and whether
// neighbourhoods follow colour or class. One module per panel; this parent
// mounts them and hands each every change, plus 'quality' when the layer
// quality answer (shared by two panels) arrives.

import {h, clear} from '../dom.js';
import * as search from './analysis/search.js';
import * as quality from './analysis/quality.js';
import * as cka from './analysis/cka.js';
import * as datamap from './analysis/datamap.js';
import * as colour from './analysis/colour.js';

export const id = 'analysis';
export const title = 'Analysis';

export function mount(el, ctx) {
  clear(el);
  const panels = [];
  const sub = {
    ...ctx,
    shared: {quality: null},
    announce: (key) => { for (const p of panels) p.update(new Set([key])); },
  };
  for (const module of [search, quality, cka, datamap, colour]) {
    const section = h('section');
    el.append(section);
    panels.push(module.mount(section, sub));
  }
  return {
    update(changed) { for (const p of panels) p.update(changed); },
    destroy() { for (const p of panels) p.destroy(); clear(el); },
  };
}
