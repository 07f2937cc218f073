// The Embedding tab's filter bar: true class, predicted class, right or
// wrong, a confidence range (typed in percent, kept in the URL as fractions
// 0-1: `fconf=0.9-1`), "prediction changed between steps A and B" and
// probe ids. Each is a URL key (pick.js reads them); they compose with the
// selection: what is highlighted is the selection (or every image) that
// passes every filter, at the step on screen.

import {h, select} from '../../dom.js';
import {parseList, listText, FILTER_KEYS} from '../../pick.js';

export function mount(el, ctx) {
  const names = ctx.run.class_names;
  const classes = [['', 'any'], ...names.map((c, i) => [i, c])];
  const steps = () => ctx.timeline.steps().map((s) => s.step);
  const stepOptions = () => steps().map((s) => [s, `step ${s}`]);
  const ui = {
    ft: select({'aria-label': 'true class', 'data-testid': 'filter-true'}, classes, ''),
    fp: select({'aria-label': 'predicted class', 'data-testid': 'filter-pred'}, classes, ''),
    fc: select({'aria-label': 'right or wrong', 'data-testid': 'filter-correct'}, [['', 'any'], ['right', 'right'], ['wrong', 'wrong']], ''),
    lo: h('input', {type: 'number', min: 0, max: 100, step: 5, class: 'narrow', 'aria-label': 'confidence from, percent', 'data-testid': 'filter-conf-lo'}),
    hi: h('input', {type: 'number', min: 0, max: 100, step: 5, class: 'narrow', 'aria-label': 'confidence to, percent', 'data-testid': 'filter-conf-hi'}),
    flip: h('input', {type: 'checkbox', 'data-testid': 'filter-flip'}),
    fa: select({'aria-label': 'flipped from step', 'data-testid': 'filter-flip-a'}, stepOptions(), steps()[0]),
    fb: select({'aria-label': 'flipped to step', 'data-testid': 'filter-flip-b'}, stepOptions(), steps()[steps().length - 1]),
    fid: h('input', {type: 'text', class: 'ids', placeholder: 'e.g. 3.10-20', 'aria-label': 'probe ids', 'data-testid': 'filter-ids'}),
  };
  const confMsg = h('span', {class: 'bad small', 'data-testid': 'filter-conf-msg', hidden: true});
  const one = (sel) => (sel.value === '' ? undefined : sel.value);
  // Percent in the boxes, a fraction in the URL; a value outside 0-100 is refused with a message.
  const percent = (input, dflt) => (input.value === '' ? dflt : Number(input.value));
  const conf = () => {
    const [lo, hi] = [percent(ui.lo, 0), percent(ui.hi, 100)];
    const bad = [lo, hi].find((v) => !(v >= 0 && v <= 100));
    confMsg.hidden = bad === undefined;
    confMsg.textContent = bad === undefined ? '' : `Confidence is a percentage from 0 to 100; got ${bad}. Type e.g. 30 for 30 %.`;
    if (bad !== undefined) return ctx.state.fconf;
    return ui.lo.value === '' && ui.hi.value === '' ? undefined : `${lo / 100}-${hi / 100}`;
  };
  const flip = () => (ui.flip.checked ? `${ui.fa.value}-${ui.fb.value}` : undefined);
  const ids = () => (ui.fid.value.trim() ? listText(parseList(ui.fid.value.trim().replace(/[\s,]+/g, '.'), 10000)) || undefined : undefined);
  const apply = () => ctx.set({ft: one(ui.ft), fp: one(ui.fp), fc: one(ui.fc), fconf: conf(), fflip: flip(), fid: ids()}, {push: true});
  for (const c of Object.values(ui)) c.addEventListener('change', apply);
  const clearBtn = h('button', {class: 'btn small', type: 'button', 'data-testid': 'filter-clear',
    onclick: () => ctx.set(Object.fromEntries(FILTER_KEYS.map((k) => [k, undefined])), {push: true})}, 'clear filters');
  el.className = 'controls emb-filters';
  el.dataset.testid = 'emb-filters';
  el.append(h('span', {class: 'muted small'}, 'Filter:'),
    h('label', {class: 'inline'}, 'true', ui.ft), h('label', {class: 'inline'}, 'predicted', ui.fp), h('label', {class: 'inline'}, 'result', ui.fc),
    h('label', {class: 'inline'}, 'confidence', ui.lo, '–', ui.hi, '%'), confMsg,
    h('label', {class: 'inline', title: 'The prediction at step A differs from the one at step B'}, ui.flip, 'flipped between', ui.fa, 'and', ui.fb),
    h('label', {class: 'inline'}, 'ids', ui.fid), clearBtn);

  // The controls show the URL's filters (a reload, Back).
  function show() {
    const s = ctx.state;
    ui.ft.value = s.ft ? String(parseList(s.ft)[0]) : '';
    ui.fp.value = s.fp ? String(parseList(s.fp)[0]) : '';
    ui.fc.value = s.fc || '';
    const [lo, hi] = s.fconf ? String(s.fconf).split('-').map((v) => (v === '' ? '' : String(Math.round(Number(v) * 1e4) / 100))) : ['', ''];
    ui.lo.value = lo; ui.hi.value = hi;
    if (!s.fconf) confMsg.hidden = true;
    ui.flip.checked = !!s.fflip;
    const [a, b] = s.fflip ? String(s.fflip).split('-') : [steps()[0], steps()[steps().length - 1]]; // cleared: the defaults
    ui.fa.value = a; ui.fb.value = b;
    ui.fid.value = s.fid || '';
  }
  show();
  return {update(changed) { if (FILTER_KEYS.some((k) => changed.has(k))) show(); }, destroy() {}};
}
