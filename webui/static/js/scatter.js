// A canvas scatter plot for up to tens of thousands of points.
//
// Points move, they are not redrawn from scratch: a new layout is tweened
// from the positions on screen over ~300 ms (requestAnimationFrame), so a
// point can be followed while the timeline is scrubbed. The canvas follows
// its container's size and devicePixelRatio. Wheel zooms, drag pans,
// double-click resets (a click waits for the double-click that may follow, so
// resetting never selects). With setDragMode('lasso' | 'box') a drag draws an
// area instead and onArea(rows inside) is called. setHighlight(mask) dims the
// points outside the mask; setHidden(mask) leaves those out (not drawn, not hit); setTrails draws paths across steps. In mosaic mode each point is drawn as its thumbnail,
// cut from one sprite sheet (one image for the whole probe set).
//
// The container gets data-step, data-n and data-checksum (a hash of the
// target positions), so a test can see that the picture changed.

import {inside, area, drawArea} from './lasso.js';

const DURATION_MS = 300;
const CLICK_WAIT_MS = 260; // longer than a double-click's gap
const DIM = 0.3; // dimmed points stay readable as context; the highlighted ones are 3x as opaque
const PAD = 18;

const ease = (t) => (t < 0.5 ? 4 * t * t * t : 1 - Math.pow(-2 * t + 2, 3) / 2);

// FNV-1a over the positions rounded to 1e-3: cheap, and equal layouts give equal strings.
function checksum(xy) {
  let h = 0x811c9dc5;
  for (let i = 0; i < xy.length; i++) {
    const v = Math.round(xy[i] * 1000) | 0;
    h ^= v & 0xffff; h = Math.imul(h, 0x01000193);
    h ^= v >>> 16; h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export function createScatter(container, {onHover = () => {}, onClick = () => {}, onArea = () => {}} = {}) {
  const canvas = document.createElement('canvas');
  canvas.className = 'scatter-canvas';
  container.append(canvas);
  const ctx = canvas.getContext('2d');

  let n = 0;
  let shown = new Float32Array(0); // positions on screen now (data space)
  let from = null; let to = null; let t0 = 0; let frame = 0;
  let groups = new Int32Array(0);
  let palette = () => '#4e79a7';
  let buckets = []; // [{color, idx: Int32Array}], points grouped by colour: one fill per colour
  let selected = -1; let hovered = -1;
  let highlight = null; // Uint8Array mask, or null: nothing dimmed
  let hidden = null; // Uint8Array mask, or null: nothing left out
  const gone = (i) => hidden !== null && hidden[i] === 1;
  let trails = null; // {rows, xy: [Float32Array per step], current}
  let dragMode = 'pan'; let drawn = null; // the lasso or box being drawn (screen pixels)
  let mosaic = null; // {image, cols, cell}
  let view = {k: 1, x: 0, y: 0}; // user zoom/pan, in CSS pixels
  let fit = {s: 1, ox: 0, oy: 0};
  let width = 0; let height = 0;

  function resize() {
    const rect = container.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    width = Math.max(1, Math.round(rect.width));
    height = Math.max(1, Math.round(rect.height));
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    draw();
  }

  // Fit the current positions, and the trails at every step, into the canvas with one
  // scale for both axes (distances in a projection mean the same in x and y).
  function computeFit() {
    let x0 = Infinity; let x1 = -Infinity; let y0 = Infinity; let y1 = -Infinity;
    const grow = (x, y) => { if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; };
    for (let i = 0; i < n; i++) grow(shown[2 * i], shown[2 * i + 1]);
    if (trails) for (const pos of trails.xy) for (const i of trails.rows) grow(pos[2 * i], pos[2 * i + 1]);
    if (!n || !Number.isFinite(x0)) { fit = {s: 1, ox: width / 2, oy: height / 2}; return; }
    const pad = mosaic ? Math.max(PAD, cellSize() / Math.sqrt(view.k) / 2 + 4) : PAD; // whole thumbnails stay inside
    const s = Math.min((width - 2 * pad) / Math.max(x1 - x0, 1e-9), (height - 2 * pad) / Math.max(y1 - y0, 1e-9));
    fit = {s, ox: width / 2 - s * (x0 + x1) / 2, oy: height / 2 + s * (y0 + y1) / 2};
  }
  const sx = (x) => (fit.ox + fit.s * x) * view.k + view.x;
  const sy = (y) => (fit.oy - fit.s * y) * view.k + view.y; // y up, like a plot

  function radius() { return Math.max(1.6, Math.min(5, 110 / Math.sqrt(Math.max(n, 1)))) * Math.sqrt(view.k); }
  function cellSize() {
    const base = 0.5 * Math.sqrt(((width - 2 * PAD) * (height - 2 * PAD)) / Math.max(n, 1));
    return Math.max(6, Math.min(28, base)) * Math.sqrt(view.k);
  }

  function draw() {
    ctx.clearRect(0, 0, width, height);
    if (!n) return;
    computeFit();
    if (mosaic && mosaic.image.complete && mosaic.image.naturalWidth) drawMosaic(); else drawPoints();
    if (trails) drawTrails();
    drawMark(selected, '#1d2330', 2.5, 4);
    if (drawn) drawArea(ctx, area(dragMode, drawn));
    drawMark(hovered, '#3563e9', 1.5, 2);
  }

  function drawPoints() {
    const r = radius();
    const round = n <= 4000;
    // Dimmed points first, the highlighted ones on top: larger, and outlined so they stand out in any colour.
    for (const lit of highlight ? [0, 1] : [1]) {
      ctx.globalAlpha = !lit ? DIM : n > 3000 ? 0.75 : 0.9;
      const outlined = highlight && lit;
      const pr = outlined ? r * 1.4 : r;
      for (const b of buckets) {
        ctx.fillStyle = b.color;
        ctx.beginPath();
        for (const i of b.idx) {
          if ((highlight && highlight[i] !== lit) || gone(i)) continue;
          const x = sx(shown[2 * i]); const y = sy(shown[2 * i + 1]);
          if (round) { ctx.moveTo(x + pr, y); ctx.arc(x, y, pr, 0, 2 * Math.PI); } else ctx.rect(x - pr, y - pr, 2 * pr, 2 * pr);
        }
        ctx.fill();
        if (outlined) { ctx.lineWidth = 1; ctx.strokeStyle = 'rgba(20, 20, 20, 0.8)'; ctx.stroke(); }
      }
    }
    ctx.globalAlpha = 1;
  }

  function drawMosaic() {
    const {image, cols, cell} = mosaic;
    const s = cellSize(); const half = s / 2;
    for (const b of buckets) {
      ctx.fillStyle = b.color;
      for (const i of b.idx) {
        const x = sx(shown[2 * i]) - half; const y = sy(shown[2 * i + 1]) - half;
        if (x > width || y > height || x < -s || y < -s || gone(i)) continue;
        ctx.globalAlpha = highlight && !highlight[i] ? DIM : 1;
        ctx.fillRect(x - 1.5, y - 1.5, s + 3, s + 3); // a frame in the point's colour
        ctx.drawImage(image, (i % cols) * cell, Math.floor(i / cols) * cell, cell, cell, x, y, s, s);
      }
    }
    ctx.globalAlpha = 1;
  }

  // Each trail row's path over every step, in its point's colour; a ring at the current step.
  function drawTrails() {
    const {rows, xy, current} = trails;
    ctx.lineWidth = 1.2; ctx.globalAlpha = 0.8;
    for (const i of rows) {
      ctx.strokeStyle = palette(groups.length === n ? groups[i] : 0);
      ctx.beginPath();
      xy.forEach((pos, t) => { const x = sx(pos[2 * i]); const y = sy(pos[2 * i + 1]); if (t) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      ctx.stroke();
      if (xy[current]) {
        ctx.beginPath(); ctx.arc(sx(xy[current][2 * i]), sy(xy[current][2 * i + 1]), 4, 0, 2 * Math.PI);
        ctx.strokeStyle = '#1d2330'; ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
  }

  function drawMark(i, color, lineWidth, extra) {
    if (i < 0 || i >= n) return;
    const x = sx(shown[2 * i]); const y = sy(shown[2 * i + 1]);
    const r = (mosaic ? cellSize() / 2 : radius()) + extra;
    ctx.lineWidth = lineWidth; ctx.strokeStyle = '#fff';
    ctx.beginPath(); ctx.arc(x, y, r + lineWidth, 0, 2 * Math.PI); ctx.stroke();
    ctx.strokeStyle = color;
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
  }

  function tick(now) {
    const t = Math.min(1, (now - t0) / DURATION_MS);
    const e = ease(t);
    for (let i = 0; i < shown.length; i++) shown[i] = from[i] + (to[i] - from[i]) * e;
    draw();
    frame = t < 1 ? requestAnimationFrame(tick) : 0;
  }

  function rebucket() {
    const byColor = new Map();
    for (let i = 0; i < n; i++) {
      const c = palette(groups.length === n ? groups[i] : 0);
      if (!byColor.has(c)) byColor.set(c, []);
      byColor.get(c).push(i);
    }
    // Bigger groups first, so small groups (errors, rare classes) are drawn on top.
    buckets = [...byColor].map(([color, idx]) => ({color, idx: Int32Array.from(idx)})).sort((a, b) => b.idx.length - a.idx.length);
  }

  function nearest(clientX, clientY) {
    const rect = canvas.getBoundingClientRect();
    const px = clientX - rect.left; const py = clientY - rect.top;
    const reach = Math.max(7, mosaic ? cellSize() / 2 : radius() + 3);
    let best = -1; let bestD = reach * reach;
    for (let i = 0; i < n; i++) {
      if (gone(i)) continue;
      const dx = sx(shown[2 * i]) - px; const dy = sy(shown[2 * i + 1]) - py;
      const d = dx * dx + dy * dy;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  const local = (e) => { const rect = canvas.getBoundingClientRect(); return [e.clientX - rect.left, e.clientY - rect.top]; };
  function finishArea() {
    const poly = area(dragMode, drawn); drawn = null;
    const rows = [];
    for (let i = 0; i < n; i++) if (!gone(i) && inside(poly, sx(shown[2 * i]), sy(shown[2 * i + 1]))) rows.push(i);
    draw();
    onArea(rows);
  }

  let drag = null; let clickTimer = 0;
  canvas.addEventListener('mousemove', (e) => {
    if (drawn) { drawn.push(local(e)); draw(); return; }
    if (drag) {
      view.x = drag.vx + e.clientX - drag.x; view.y = drag.vy + e.clientY - drag.y;
      drag.moved = drag.moved || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3;
      draw();
      return;
    }
    const i = nearest(e.clientX, e.clientY);
    if (i !== hovered) { hovered = i; draw(); }
    canvas.style.cursor = dragMode !== 'pan' ? 'crosshair' : i >= 0 ? 'pointer' : 'grab';
    onHover(i >= 0 ? i : null, e.clientX, e.clientY);
  });
  canvas.addEventListener('mouseleave', () => { drag = null; drawn = null; if (hovered >= 0) { hovered = -1; draw(); } onHover(null); });
  canvas.addEventListener('mousedown', (e) => {
    if (dragMode !== 'pan') { drawn = [local(e)]; return; }
    drag = {x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false};
  });
  canvas.addEventListener('mouseup', (e) => {
    if (drawn) { if (drawn.length > 2) { finishArea(); return; } drawn = null; }
    const moved = drag && drag.moved; drag = null;
    if (moved) return;
    const i = nearest(e.clientX, e.clientY);
    clearTimeout(clickTimer);
    if (i >= 0 && e.detail < 2) clickTimer = setTimeout(() => onClick(i), CLICK_WAIT_MS);
  });
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect();
    const px = e.clientX - rect.left; const py = e.clientY - rect.top;
    const f = Math.exp(-e.deltaY * 0.0015);
    const k = Math.max(0.5, Math.min(40, view.k * f));
    const g = k / view.k;
    view = {k, x: px - (px - view.x) * g, y: py - (py - view.y) * g};
    draw();
  }, {passive: false});
  canvas.addEventListener('dblclick', () => { clearTimeout(clickTimer); view = {k: 1, x: 0, y: 0}; draw(); });

  const observer = new ResizeObserver(() => resize());
  observer.observe(container);
  resize();

  return {
    // xy: Float32Array (2N) in probe order. Same N: tween from what is on screen.
    setPositions(xy, {step = null, animate = true} = {}) {
      cancelAnimationFrame(frame);
      const target = Float32Array.from(xy);
      container.dataset.checksum = checksum(target);
      container.dataset.n = String(target.length / 2);
      if (step !== null) container.dataset.step = String(step);
      if (animate && shown.length === target.length && n > 0) {
        from = Float32Array.from(shown); to = target; t0 = performance.now();
        frame = requestAnimationFrame(tick);
      } else {
        n = target.length / 2;
        shown = target;
        rebucket();
        draw();
      }
    },
    // groups: Int32Array, one group per point; color(g) -> CSS colour.
    setGroups(g, color) { groups = g; palette = color; rebucket(); draw(); },
    setSelected(i) { selected = i === null || i === undefined ? -1 : i; draw(); },
    setHighlight(mask) { highlight = mask; draw(); },
    setHidden(mask) { hidden = mask; draw(); },
    // rows: the points to trail; xy: their layouts at every step (probe order); current: this step's index.
    setTrails(t) { trails = t && t.rows.length ? t : null; draw(); },
    setDragMode(mode) { dragMode = mode; canvas.style.cursor = mode === 'pan' ? '' : 'crosshair'; },
    setMosaic(m) {
      mosaic = m;
      if (m && !m.image.complete) m.image.addEventListener('load', () => draw(), {once: true});
      container.dataset.mode = m ? 'mosaic' : 'points';
      draw();
    },
    resetView() { view = {k: 1, x: 0, y: 0}; draw(); },
    get size() { return n; },
    destroy() { observer.disconnect(); cancelAnimationFrame(frame); clearTimeout(clickTimer); canvas.remove(); },
  };
}
