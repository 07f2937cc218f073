// What the points look like: their groups and palette, the highlighted and the
// hidden ones, and the arrays the drawing takes from them (./paint.js: colours,
// states, draw order). A change only marks what it makes stale; the frame asks
// for the arrays (derive) and they are worked out then, once for all the changes
// before it: a step change sets the groups, the highlight and the hidden points
// one after another. Setting the same groups or masks again costs nothing.
// Each piece of work over every point is a User Timing measure (timed), seen in
// the browser's performance panel and counted by tests.

import {colourPoints, statesOf, drawOrder} from './paint.js';

// The performance timeline keeps every measure it is given (a drawing is one a frame while points move):
// past KEEP of one name, those are cleared, and the count starts again from the new one.
export const KEEP = 1000;
const kept = new Map();
export function timed(name, work) {
  const key = `scatter:${name}`; const k = kept.get(key) || 0;
  if (k >= KEEP) performance.clearMeasures(key);
  kept.set(key, k >= KEEP ? 1 : k + 1);
  const t = performance.now(); const out = work();
  performance.measure(key, {start: t});
  return out;
}

// Equal groups or masks (null: none). A caller gives new arrays; it does not change one it has given.
const same = (a, b) => a === b || (a !== null && b !== null && a.length === b.length && a.every((v, k) => v === b[k]));

// gl: the WebGL points (./points.js) or null; changed() asks for a frame.
export function createLooks(gl, changed) {
  let n = 0;
  let groups = new Int32Array(0); let palette = () => '#4e79a7';
  let highlight = null; // Uint8Array mask, or null: nothing dimmed
  let hidden = null; // Uint8Array mask, or null: nothing left out
  let colours = colourPoints(0, groups, palette); let states = new Uint8Array(0); let order = new Uint32Array(0);
  let stale = {};
  const mark = (what) => { Object.assign(stale, what); changed(); };
  const forN = (mask) => (mask && mask.length === n ? mask : null);

  return {
    setCount(m) { n = m; mark({colour: true, state: true}); },
    // g: Int32Array, one group per point; color(g) -> CSS colour.
    setGroups(g, color) { const was = color === palette && same(g, groups); groups = g; palette = color; if (!was) mark({colour: true}); },
    setHighlight(mask) { if (!same(mask, highlight)) { highlight = mask; mark({state: true}); } },
    setHidden(mask) { if (!same(mask, hidden)) { hidden = mask; mark({order: true}); } },
    gone: (i) => hidden !== null && hidden[i] === 1,
    colourOf: (i) => palette(groups.length === n ? groups[i] : 0),
    // -> {colours, states, order}, up to date (and on the GPU).
    derive() {
      if (stale.colour) { colours = timed('colours', () => colourPoints(n, groups, palette)); if (gl) gl.setColors(colours.rgb); }
      if (stale.state) { states = timed('states', () => statesOf(n, forN(highlight))); if (gl) gl.setStates(states); }
      if (stale.colour || stale.state || stale.order) {
        order = timed('order', () => drawOrder(colours, states, forN(hidden)));
        if (gl) gl.setOrder(order);
      }
      stale = {};
      return {colours, states, order};
    },
  };
}
