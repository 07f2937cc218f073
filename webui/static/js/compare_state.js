// The comparison page's state, mirrored in its URL (/compare?runs=a,b&match=&step=&pin_a=&pin_b=&...), so a
// comparison is a link and Back works. set() tells the subscribers which keys changed.

const KEYS = ['runs', 'match', 'step', 'pin_a', 'pin_b', 'layer_a', 'layer_b', 'sel', 'cka_a', 'cka_b'];
const NUMBERS = new Set(['step', 'pin_a', 'pin_b', 'sel']);

export function createState(onChange) {
  const state = {};
  const read = () => {
    const p = new URLSearchParams(location.search);
    const out = {};
    for (const k of KEYS) {
      const v = p.get(k);
      out[k] = v === null || v === '' ? null : NUMBERS.has(k) ? Number(v) : v;
    }
    return out;
  };
  const write = (push) => {
    const p = new URLSearchParams();
    for (const k of KEYS) if (state[k] !== null && state[k] !== undefined && state[k] !== '') p.set(k, state[k]);
    const next = `${location.pathname}?${p.toString().replace(/%2C/g, ',')}`;
    if (next !== location.pathname + location.search) history[push ? 'pushState' : 'replaceState'](null, '', next);
  };
  const apply = (patch, push) => {
    const changed = new Set();
    for (const [k, v] of Object.entries(patch)) if (state[k] !== v) { state[k] = v; changed.add(k); }
    write(push);
    if (changed.size) onChange(changed);
  };
  Object.assign(state, read());
  window.addEventListener('popstate', () => apply(read(), false));
  return {state, set: (patch, {push = false} = {}) => apply(patch, push)};
}
