// A scatter plot for up to a million points.
//
// The points are drawn by WebGL2 (./scatter/points.js) into a canvas kept off
// the page, then copied onto the one canvas on the page, under what the 2-D
// context draws on top: the trails, the rings of the selected and the hovered
// point, the lasso. Where a WebGL2 context cannot be made the points are drawn
// on the 2-D canvas itself (./scatter/canvas2d.js), and a note says so.
//
// Points move, they are not redrawn from scratch: a new layout is tweened from
// the positions on screen over ~300 ms; the GPU mixes the two layouts, so a
// frame costs the same for any number of moving points (where one drawing takes
// over SLOW_FRAME_MS, software GL at 100,000 points, it jumps). The canvas follows its
// container's size and devicePixelRatio. Wheel zooms, drag pans, double-click
// resets (a click waits for the double-click that may follow, so resetting never
// selects). Hover and click find the nearest point through a grid index
// (./scatter/grid.js), built once per layout, on its first hit test: not before the
// layout's first frame. Colours, states and the draw order are worked out in the
// frame, once for all the changes before it (./scatter/looks.js). With
// setDragMode('lasso' | 'box') a drag draws an area and onArea(rows inside) is called. setHighlight(mask) dims
// the points outside the mask; setHidden(mask) leaves those out (not drawn, not
// hit); setTrails draws paths across steps. In mosaic mode each point is drawn
// as its thumbnail, from tiles of a level-of-detail atlas (./scatter/mosaic.js).
//
// The container gets data-step, data-n and data-checksum (a hash of the target
// positions), so a test can see that the picture changed, and data-renderer.

import {area, drawArea, rowsInside} from './lasso.js';
import {createPoints} from './scatter/points.js';
import {createGrid, bounds, checksum} from './scatter/grid.js';
import {drawTrails, drawMark} from './scatter/marks.js';
import {DIMMED} from './scatter/paint.js';
import {createLooks, timed} from './scatter/looks.js';
import {drawPoints2d} from './scatter/canvas2d.js';
import {createMosaic, levelFor} from './scatter/mosaic.js';

const DURATION_MS = 300;
const CLICK_WAIT_MS = 260; // longer than a double-click's gap
const DIM = 0.3; // dimmed points stay readable as context; the highlighted ones are 3x as opaque
const PAD = 18;
const TILE_WAIT_MS = 150; // the mosaic asks for tiles once the view has stopped moving
const SLOW_FRAME_MS = 60; // a device that draws the points slower than this jumps to a new layout (no tween)

const ease = (t) => (t < 0.5 ? 4 * t * t * t : 1 - Math.pow(-2 * t + 2, 3) / 2);

function glOrNull(canvas) {
  try { return createPoints(canvas); } catch (err) { console.warn(err); return null; }
}

export function createScatter(container, {onHover = () => {}, onClick = () => {}, onArea = () => {}} = {}) {
  const canvas = document.createElement('canvas');
  canvas.className = 'scatter-canvas';
  container.append(canvas);
  const ctx = canvas.getContext('2d');
  const glCanvas = document.createElement('canvas'); // off the page: drawn by WebGL, copied onto `layer`
  const layer = document.createElement('canvas'); // off the page: the points (or thumbnails), redrawn only when they change
  const lctx = layer.getContext('2d');
  const gl = glOrNull(glCanvas);
  container.dataset.renderer = gl ? 'webgl2' : '2d';
  const note = gl ? null : Object.assign(document.createElement('div'), {
    className: 'scatter-note', textContent: 'WebGL2 is not available in this browser: points are drawn on a 2-D canvas, slowly beyond ~50,000.'});
  if (note) { note.style.cssText = 'position:absolute;left:8px;bottom:6px;padding:1px 5px;border-radius:3px;font-size:12px;color:#8a4b00;background:rgba(255,255,255,.85);pointer-events:none'; container.append(note); }

  let n = 0;
  let from = new Float32Array(0); let to = from; let mix = 1; let t0 = 0; let frame = 0;
  let boxFrom = bounds(from); let boxTo = boxFrom;
  const looks = createLooks(gl, () => later(true));
  const {gone} = looks;
  let grid = null; // of `to`, built by the first hit test that needs it
  const gridNow = () => grid || (grid = timed('grid', () => createGrid(to)));
  let selected = -1; let hovered = -1; let pointer = null;
  let trails = null; // {rows, xy: [Float32Array per step], current}
  let dragMode = 'pan'; let drawn = null; // the lasso or box being drawn (screen pixels)
  let tileURL = null; let tiles = null; let tileTimer = 0;
  let dirty = true; let tweening = false; // dirty: the points layer is out of date
  let paintMs = 0; // how long the last drawing of the points took
  let view = {k: 1, x: 0, y: 0}; // user zoom/pan, in CSS pixels
  let fit = {s: 1, ox: 0, oy: 0};
  let width = 0; let height = 0; let dpr = 1;

  const px = (i) => from[2 * i] + (to[2 * i] - from[2 * i]) * mix; // data space, now
  const py = (i) => from[2 * i + 1] + (to[2 * i + 1] - from[2 * i + 1]) * mix;
  // Screen (CSS px) = offset + scale * data; y up, like a plot.
  const scale = () => fit.s * view.k;
  const sx = (x) => (fit.ox + fit.s * x) * view.k + view.x;
  const sy = (y) => (fit.oy - fit.s * y) * view.k + view.y;

  function resize() {
    const rect = container.getBoundingClientRect();
    dpr = window.devicePixelRatio || 1;
    width = Math.max(1, Math.round(rect.width));
    height = Math.max(1, Math.round(rect.height));
    canvas.width = glCanvas.width = layer.width = Math.round(width * dpr);
    canvas.height = glCanvas.height = layer.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    lctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    dirty = true; draw(); // now: a resized canvas is blank until drawn
  }

  // Fit the positions, and the trails at every step, into the canvas with one scale for both axes
  // (distances in a projection mean the same in x and y). Mid-tween every point lies inside the
  // mix of the two layouts' bounds.
  function computeFit() {
    const b = boxFrom.map((v, k) => v + (boxTo[k] - v) * mix);
    const grow = (x, y) => { if (x < b[0]) b[0] = x; if (x > b[1]) b[1] = x; if (y < b[2]) b[2] = y; if (y > b[3]) b[3] = y; };
    if (trails) for (const pos of trails.xy) for (const i of trails.rows) grow(pos[2 * i], pos[2 * i + 1]);
    const [x0, x1, y0, y1] = b;
    if (!n || !Number.isFinite(x0)) { fit = {s: 1, ox: width / 2, oy: height / 2}; return; }
    const pad = tileURL ? Math.max(PAD, cellSize() / Math.sqrt(view.k) / 2 + 4) : PAD; // whole thumbnails stay inside
    const s = Math.min((width - 2 * pad) / Math.max(x1 - x0, 1e-9), (height - 2 * pad) / Math.max(y1 - y0, 1e-9));
    fit = {s, ox: width / 2 - s * (x0 + x1) / 2, oy: height / 2 + s * (y0 + y1) / 2};
  }

  function radius() { return Math.max(1.6, Math.min(5, 110 / Math.sqrt(Math.max(n, 1)))) * Math.sqrt(view.k); }
  function cellSize() {
    const base = 0.5 * Math.sqrt(((width - 2 * PAD) * (height - 2 * PAD)) / Math.max(n, 1));
    return Math.max(6, Math.min(28, base)) * Math.sqrt(view.k);
  }

  // The points layer when it is out of date, then the marks over it. Every change asks for a frame
  // (later): many changes in one task cost one drawing; the marks alone never redraw the points.
  function draw() {
    if (dirty) {
      dirty = false;
      const look = looks.derive();
      const t = performance.now();
      timed('draw', () => {
        lctx.clearRect(0, 0, width, height);
        computeFit();
        if (n && tileURL) drawMosaic(lctx, look); else if (n) drawPoints(lctx, look);
      });
      paintMs = performance.now() - t;
    }
    ctx.clearRect(0, 0, width, height);
    if (!n) return;
    ctx.drawImage(layer, 0, 0, width, height);
    if (trails) drawTrails(ctx, trails, looks.colourOf, sx, sy);
    const r = tileURL ? cellSize() / 2 : radius();
    if (selected >= 0 && selected < n) drawMark(ctx, sx(px(selected)), sy(py(selected)), r + 4, '#1d2330', 2.5);
    if (drawn) drawArea(ctx, area(dragMode, drawn));
    if (hovered >= 0 && hovered < n) drawMark(ctx, sx(px(hovered)), sy(py(hovered)), r + 2, '#3563e9', 1.5);
  }
  const later = (points = false) => { dirty = dirty || points; if (!frame) frame = requestAnimationFrame(onFrame); };

  function onFrame(now) {
    frame = 0;
    if (tweening) {
      const t = Math.min(1, (now - t0) / DURATION_MS);
      mix = ease(t); dirty = true; tweening = t < 1;
      if (tweening) frame = requestAnimationFrame(onFrame);
      else if (pointer) hover(pointer); // the point under a still pointer may have changed
    }
    draw();
  }

  function drawPoints(g, {order, colours, states}) {
    const style = {radius: radius(), alpha: n > 3000 ? 0.75 : 0.9, dim: DIM};
    if (!gl) { drawPoints2d(g, {order, colours, states, at: (i) => [sx(px(i)), sy(py(i))], ...style}); return; }
    const s = scale();
    gl.draw({width, height, dpr, mix, scale: [s, -s], offset: [fit.ox * view.k + view.x, fit.oy * view.k + view.y], ...style});
    g.drawImage(glCanvas, 0, 0, width, height);
  }

  // Each point as its thumbnail in a frame of its colour, dimmed as the points are; then, once the view
  // has stopped moving, the tiles of the thumbnails on screen that are not held yet are asked for.
  function drawMosaic(g, {order, colours, states}) {
    if (!tiles) tiles = createMosaic(n, tileURL, () => { container.dataset.tiles = `${tiles.stats.loaded}/${tiles.stats.asked}`; later(true); });
    const s = cellSize(); const half = s / 2; const want = levelFor(s * dpr, 1);
    const onScreen = new Uint32Array(order.length); let m = 0;
    for (const i of order) {
      const x = sx(px(i)) - half; const y = sy(py(i)) - half;
      if (x > width || y > height || x < -s || y < -s) continue;
      onScreen[m++] = i;
      g.globalAlpha = states[i] === DIMMED ? DIM : 1;
      g.fillStyle = colours.css[colours.bucket[i]];
      g.fillRect(x - 1.5, y - 1.5, s + 3, s + 3);
      const src = tiles.source(i, want);
      if (src) g.drawImage(src.image, src.x, src.y, src.size, src.size, x, y, s, s);
    }
    g.globalAlpha = 1;
    clearTimeout(tileTimer);
    const mine = tiles;
    tileTimer = setTimeout(() => { if (tiles === mine) container.dataset.tileLevel = String(tiles.want(onScreen.slice(0, m).sort(), s * dpr)); }, TILE_WAIT_MS);
  }

  // The nearest point to the pointer, among the positions being shown (or tweened to).
  function nearest(clientX, clientY) {
    const rect = canvas.getBoundingClientRect();
    const s = scale();
    const x = (clientX - rect.left - fit.ox * view.k - view.x) / s;
    const y = -(clientY - rect.top - fit.oy * view.k - view.y) / s;
    const reach = Math.max(7, tileURL ? cellSize() / 2 : radius() + 3) / s;
    return gridNow().nearest(x, y, reach, gone);
  }

  function hover(e) {
    const i = nearest(e.clientX, e.clientY);
    if (i !== hovered) { hovered = i; later(); }
    canvas.style.cursor = dragMode !== 'pan' ? 'crosshair' : i >= 0 ? 'pointer' : 'grab';
    onHover(i >= 0 ? i : null, e.clientX, e.clientY);
  }

  const local = (e) => { const rect = canvas.getBoundingClientRect(); return [e.clientX - rect.left, e.clientY - rect.top]; };
  function finishArea() {
    const poly = area(dragMode, drawn); drawn = null;
    const s = scale();
    const rows = rowsInside(poly, {width, height}, n, (i) => !gone(i),
      (i) => fit.ox * view.k + view.x + s * px(i), (i) => fit.oy * view.k + view.y - s * py(i));
    later();
    onArea(rows);
  }

  let drag = null; let clickTimer = 0;
  canvas.addEventListener('mousemove', (e) => {
    pointer = {clientX: e.clientX, clientY: e.clientY};
    if (drawn) { drawn.push(local(e)); later(); return; }
    if (drag) {
      view.x = drag.vx + e.clientX - drag.x; view.y = drag.vy + e.clientY - drag.y;
      drag.moved = drag.moved || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3;
      later(true);
      return;
    }
    hover(e);
  });
  canvas.addEventListener('mouseleave', () => { pointer = null; drag = null; drawn = null; if (hovered >= 0) { hovered = -1; later(); } onHover(null); });
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
    const [x, y] = local(e);
    const k = Math.max(0.5, Math.min(40, view.k * Math.exp(-e.deltaY * 0.0015)));
    const g = k / view.k;
    view = {k, x: x - (x - view.x) * g, y: y - (y - view.y) * g};
    later(true);
  }, {passive: false});
  canvas.addEventListener('dblclick', () => { clearTimeout(clickTimer); view = {k: 1, x: 0, y: 0}; later(true); });

  const observer = new ResizeObserver(() => resize());
  observer.observe(container);
  resize();

  return {
    // xy: Float32Array (2N) in probe order. Same N: tween from what is on screen.
    setPositions(xy, {step = null, animate = true} = {}) {
      const target = new Float32Array(xy); // a copy: the caller keeps its array
      container.dataset.checksum = checksum(target);
      container.dataset.n = String(target.length / 2);
      if (step !== null) container.dataset.step = String(step);
      const tween = animate && to.length === target.length && n > 0 && paintMs < SLOW_FRAME_MS; // a slow tween shows nothing
      from = tween ? (mix === 1 ? to : Float32Array.from(from, (v, k) => v + (to[k] - v) * mix)) : target;
      to = target; boxFrom = tween ? bounds(from) : bounds(to); boxTo = bounds(to);
      grid = null;
      if (gl) gl.setPositions(from, to);
      mix = tween ? 0 : 1; tweening = tween; t0 = performance.now();
      if (target.length / 2 !== n) { n = target.length / 2; if (tiles) tiles.destroy(); tiles = null; looks.setCount(n); } else later(true);
    },
    // groups: Int32Array, one group per point; color(g) -> CSS colour.
    setGroups: looks.setGroups,
    setSelected(i) { selected = i === null || i === undefined ? -1 : i; later(); },
    setHighlight: looks.setHighlight, // a Uint8Array mask: the others are dimmed; null: none
    setHidden: looks.setHidden, // a Uint8Array mask: those are not drawn, nor hit; null: none
    // rows: the points to trail; xy: their layouts at every step (probe order); current: this step's index.
    setTrails(t) { trails = t && t.rows.length ? t : null; later(true); }, // the fit holds the trails
    setDragMode(mode) { dragMode = mode; canvas.style.cursor = mode === 'pan' ? '' : 'crosshair'; },
    // tile(size, rows) -> the URL of a tile of thumbnails (the mosaic), or null: points.
    setMosaic(tile) {
      if (tiles) tiles.destroy();
      tileURL = tile || null; tiles = null;
      container.dataset.mode = tileURL ? 'mosaic' : 'points';
      later(true);
    },
    resetView() { view = {k: 1, x: 0, y: 0}; later(true); },
    get size() { return n; },
    destroy() {
      observer.disconnect(); cancelAnimationFrame(frame); clearTimeout(clickTimer); clearTimeout(tileTimer);
      if (tiles) tiles.destroy();
      if (gl) gl.destroy();
      canvas.remove(); if (note) note.remove();
    },
  };
}
