// UI state, mirrored in the URL query string (?step=&layer=&view=&...), so
// links and the back button work. Views subscribe and get the changed keys.

const listeners = new Set();
export const state = {};
// pick/from: the selection (a set of probe images, see pick.js) and where it
// came from; ft…fid: its filters; ab: step B of the A | B view; trail: trails
// on; nk: neighbour k; subcls/subk: the sub-cluster class and k; fa/fb: the flow steps.
const URL_KEYS = ['step', 'layer', 'view', 'sel', 'color', 'method', 'metric', 'k',
  'pick', 'from', 'ft', 'fp', 'fc', 'fconf', 'fflip', 'fid', 'ab', 'trail', 'nk', 'subcls', 'subk', 'fa', 'fb', 'mcs', 'ms',
  'cell',
  'subref']; // subref: the step whose sub-groups colour the scatter (color=subgroup)
const NUMERIC = new Set(['step', 'sel', 'k', 'ab', 'nk', 'subcls', 'subk', 'fa', 'fb', 'mcs', 'ms',
  'subref']);
URL_KEYS.push('cmethod'); // the cluster method, kmeans or hdbscan (views/embedding/clusters.js)

function readURL() {
  const params = new URLSearchParams(location.search);
  const out = {};
  for (const key of URL_KEYS) {
    const v = params.get(key);
    if (v === null || v === '') continue;
    out[key] = NUMERIC.has(key) ? Number(v) : v;
  }
  return out;
}

function writeURL(push) {
  const params = new URLSearchParams(location.search);
  for (const key of URL_KEYS) {
    if (state[key] === undefined || state[key] === null || state[key] === '') params.delete(key);
    else params.set(key, state[key]);
  }
  const next = `${location.pathname}?${params.toString()}`;
  if (next === `${location.pathname}${location.search}`) return;
  history[push ? 'pushState' : 'replaceState'](null, '', next);
}

export function init(defaults) {
  Object.assign(state, defaults, readURL());
  writeURL(false);
  window.addEventListener('popstate', () => {
    const fromURL = readURL();
    const changed = new Set();
    for (const key of URL_KEYS) {
      const v = fromURL[key] ?? defaults[key];
      if (state[key] !== v) { state[key] = v; changed.add(key); }
    }
    if (changed.size) notify(changed);
  });
}

// set({step: 5}) updates the state and the URL. push=true adds a history
// entry (a deliberate change: a click, an arrow key); the default replaces the
// current entry (playback). url=false leaves the URL alone until commit(), so
// dragging the slider does not rewrite the entry Back should return to.
export function set(patch, {push = false, url = true} = {}) {
  const changed = new Set();
  for (const [k, v] of Object.entries(patch)) {
    if (state[k] !== v) { state[k] = v; changed.add(k); }
  }
  if (url) writeURL(push);
  if (changed.size) notify(changed);
}

// Write the state to the URL as a new history entry (the end of a slider drag).
export function commit() { writeURL(true); }

export function subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function notify(changed) { for (const fn of listeners) fn(changed); }
