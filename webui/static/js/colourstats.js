// Per-probe colour statistics for "colour the scatter by mean colour,
// brightness or saturation" (the route is webui/analysis.py colour_stats).
//
//   const stats = await colourStats(runId);
//   // {probe_id: Int32Array(N), mean_rgb: Float32Array(N*3, shape [N, 3]),
//   //  brightness: Float32Array(N), saturation: Float32Array(N)}, all in [0, 1], probe order
//   const colourOf = colourBy(stats, 'brightness'); // 'mean_colour' | 'brightness' | 'saturation'
//   colourOf(i) // a CSS colour for probe row i
//
// One request per run; the answer never changes (the probe images are fixed).

import {getBinary} from './api.js';

export const COLOUR_BY = [['mean_colour', 'mean colour'], ['brightness', 'brightness'], ['saturation', 'saturation']];

const cache = new Map();

export function colourStats(runId) {
  if (!cache.has(runId)) {
    const p = getBinary(`/api/runs/${encodeURIComponent(runId)}/analysis/colour_stats`).then((r) => r.arrays);
    p.catch(() => cache.delete(runId));
    cache.set(runId, p);
  }
  return cache.get(runId);
}

const byte = (v) => Math.round(255 * Math.max(0, Math.min(1, v)));

// The point is drawn in the image's own mean colour; brightness as its grey
// level; saturation from grey (0) to a vivid orange (1).
export function colourBy(stats, by) {
  const {mean_rgb: rgb, brightness, saturation} = stats;
  if (by === 'mean_colour') return (i) => `rgb(${byte(rgb[3 * i])},${byte(rgb[3 * i + 1])},${byte(rgb[3 * i + 2])})`;
  if (by === 'brightness') return (i) => { const v = byte(brightness[i]); return `rgb(${v},${v},${v})`; };
  if (by === 'saturation') {
    return (i) => {
      const t = Math.max(0, Math.min(1, saturation[i]));
      return `rgb(${byte(0.6 + 0.31 * t)},${byte(0.6 - 0.25 * t)},${byte(0.6 - 0.55 * t)})`;
    };
  }
  throw new Error(`Unknown colouring '${by}'. Available: ${COLOUR_BY.map((c) => c[0]).join(', ')}.`);
}
