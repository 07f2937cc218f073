// The Inspect tab: look inside the model at the current step. Four panels,
// each computed on demand on the server (webui/inspect.py) and re-fetched
// when the timeline moves: attribution maps of the selected image, activation
// maps (and filters) of a layer, activation maximisation, and the top probe
// images of each unit of a captured layer. This parent loads what they share
// (probes, predictions, the model's layers) and tells each what changed.

import {h, clear} from '../dom.js';
import {inspectData} from './inspect/shared.js';
import * as attribution from './inspect/attribution.js';
import * as maps from './inspect/maps.js';
import * as maximize from './inspect/maximize.js';
import * as units from './inspect/units.js';

export const id = 'inspect';
export const title = 'Inspect';

export function mount(el, ctx) {
  const data = inspectData(ctx);
  const sub = {...ctx, data};
  const root = h('div', {class: 'inspect', 'data-testid': 'inspect'});
  clear(el).append(root);
  const mountPanel = (module) => {
    const section = h('section');
    root.append(section);
    return module.mount(section, sub);
  };
  const panels = {attribution: mountPanel(attribution), maps: mountPanel(maps), maximize: mountPanel(maximize), units: mountPanel(units)};
  // Keys changed since the panels were last brought up to date: an update that
  // stops early (no image yet, predictions failed) leaves them for the next one.
  const pending = new Set();

  async function refresh(changed) {
    for (const key of changed) pending.add(key);
    data.error = null;
    try {
      await data.ensureProbes();
      await data.ensurePreds();
    } catch (err) {
      data.error = err;
    }
    // The attribution panel shows the error, or picks an image (which comes back here as a change of 'sel').
    if (data.error || ctx.state.sel === undefined || ctx.state.sel === null) { panels.attribution.update(new Set()); return; }
    const todo = new Set(pending);
    pending.clear();
    panels.units.update(todo);
    data.modelError = null;
    try {
      if (await data.ensureModel()) todo.add('model');
    } catch (err) {
      data.modelError = err; // no weights at this step, or a refused model class: said where the model is needed
    }
    for (const p of [panels.attribution, panels.maps, panels.maximize]) p.update(todo);
  }

  return {
    update: refresh,
    destroy() { for (const p of Object.values(panels)) p.destroy(); clear(el); },
  };
}
