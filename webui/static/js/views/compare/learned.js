// "First step stably correct" in run A against run B, one point per shared image (up to the current steps;
// images wrong at the current step sit in the "never" band). A click selects the image and shows its
// trajectory in both runs: the probability of its true class at every step.

import {getJSON, thumbURL} from '../../api.js';
import {h, clear, fillPanel, classColor} from '../../dom.js';
import {svg, lineChart, panelError} from '../../charts.js';

const SIZE = 300; const PAD = 36;

// A small fixed offset per image, so images learned at the same pair of steps do not hide each other.
const jitter = (id, k) => ((((id * 2654435761) >>> (k ? 8 : 0)) & 255) / 255 - 0.5) * 0.7;

export function mount(el, ctx) {
  const plot = h('div');
  const traj = h('div', {'data-testid': 'compare-trajectories'});
  fillPanel(el, 'When each image was learned', 'compare-learned', plot, traj);

  function axis(run, step) {
    const steps = ctx.summary.runs.find((r) => r.run_id === run).steps.filter((s) => s <= step);
    return {steps, pos: (v) => (v === null ? steps.length : steps.indexOf(v))}; // "never" after the last step
  }

  function draw() {
    const at = ctx.at; if (!at) return;
    const ax = axis(at.run_a, at.step_a); const ay = axis(at.run_b, at.step_b);
    const n = [ax.steps.length + 1, ay.steps.length + 1];
    const X = (i) => PAD + ((i + 0.5) / n[0]) * (SIZE - PAD - 8);
    const Y = (j) => SIZE - PAD - ((j + 0.5) / n[1]) * (SIZE - PAD - 8);
    const root = svg('svg', {class: 'chart', width: SIZE, height: SIZE, 'data-testid': 'learned-scatter'});
    // At most ~6 step labels per axis, and always 'never'.
    const shown = (list) => { const every = Math.ceil(list.length / 6); return (v, i) => i === list.length || i % every === 0; };
    const xl = shown(ax.steps); const yl = shown(ay.steps);
    ax.steps.concat(['never']).forEach((s, i) => xl(s, i) && root.append(svg('text', {x: X(i), y: SIZE - PAD + 14, 'text-anchor': 'middle', class: 'tick-label'}, s)));
    ay.steps.concat(['never']).forEach((s, j) => yl(s, j) && root.append(svg('text', {x: PAD - 4, y: Y(j) + 3, 'text-anchor': 'end', class: 'tick-label'}, s)));
    root.append(svg('text', {class: 'axis-label', x: SIZE / 2, y: SIZE - 4, 'text-anchor': 'middle'}, `run A: first stably correct step`),
      svg('text', {class: 'axis-label', transform: `translate(10 ${SIZE / 2 - 20}) rotate(-90)`, 'text-anchor': 'middle'}, 'run B'));
    const {probe_id: ids, label, a, b} = at.learned;
    ids.forEach((id, k) => {
      const i = ax.pos(a[k]); const j = ay.pos(b[k]);
      root.append(svg('circle', {class: `learned-dot${id === ctx.state.sel ? ' selected' : ''}`, 'data-probe': id, r: 3.2, fill: classColor(label[k]), opacity: 0.8,
        cx: X(i + jitter(id, 0)), cy: Y(j + jitter(id, 1)), onclick: () => ctx.set({sel: id}, {push: true})},
      svg('title', {}, `image ${id} (${ctx.summary.class_names[label[k]]}): A ${a[k] ?? 'never'}, B ${b[k] ?? 'never'}`)));
    });
    plot.replaceChildren(root, h('p', {class: 'note'}, `Up to A step ${at.step_a} and B step ${at.step_b}. On the diagonal: learned at the same time; right column / top row: one run still gets it wrong.`));
  }

  let token = 0;
  async function drawTrajectories() {
    const id = ctx.state.sel; const t = ++token;
    if (id === null || id === undefined) { clear(traj).append(h('p', {class: 'note'}, 'Click a point or a gallery image to see its trajectory in both runs.')); return; }
    const {step_a, step_b} = ctx.steps();
    try {
      const runs = [ctx.summary.run_a, ctx.summary.run_b];
      const both = await Promise.all(runs.map((r) => getJSON(`/api/runs/${encodeURIComponent(r)}/probes/${id}/trajectory`)));
      if (t !== token) return;
      const charts = both.map((tr, k) => h('div', {'data-testid': `trajectory-${'ab'[k]}`, 'data-steps': tr.steps.length},
        h('div', {class: 'small'}, `${'AB'[k]} · ${ctx.runName(runs[k])}: first stably correct at ${tr.first_stable_correct ?? 'never'} (whole run)`),
        lineChart([{name: 'p(true class)', color: k ? '#e8590c' : '#3563e9', values: tr.probs.map((p) => p[tr.label])}],
          {xs: tr.steps, width: 300, height: 130, yDomain: [0, 1], marker: k ? step_b : step_a, xFormat: (v) => String(v)})));
      clear(traj).append(h('div', {class: 'toolbar'}, h('img', {class: 'thumb', src: thumbURL(runs[0], id), alt: `image ${id}`}),
        h('span', {}, `image ${id}, class ${ctx.summary.class_names[both[0].label]}`)), h('div', {class: 'pair'}, ...charts));
    } catch (err) { if (t === token) panelError(traj, err); }
  }

  return {
    update(changed) {
      if (changed.has('at') || changed.has('sel')) draw();
      if (changed.has('summary') || changed.has('sel') || changed.has('at')) drawTrajectories();
    },
    destroy() {},
  };
}
