// The mosaic's thumbnails, as tiles of a level-of-detail atlas.
//
// A level is a thumbnail size (4 to 64 px); a tile is one PNG of up to
// TILE_PX pixels holding the thumbnails of a list of rows at one level (the
// server's /tiles.png). The scatter says which rows are on screen and how big
// a cell is drawn; only the rows on screen that no tile of the right level
// holds yet are asked for, and a view never asks for more than VIEW_PX pixels
// of thumbnails (the level drops until it fits: 100,000 points on screen get
// 4 px thumbnails, about 0.4 MB). A point whose tile has not come yet is drawn
// from a level already held, else as its colour alone.

import {encodeRows} from '../pick.js';

export const LEVELS = [4, 8, 16, 32, 64];
export const TILE_PX = 1 << 18; // pixels of one tile (512 x 512); the server (webui/tiles.py) refuses more,
const TILE_ROWS = 4096; // and more thumbnails than this: 4,096 scattered rows still fit a URL
const VIEW_PX = 1 << 21;
// For each wanted level, the levels to draw from, nearest first (the larger of two equally near).
const PREFER = LEVELS.map((_, w) => [...LEVELS.keys()].sort((a, b) => Math.abs(a - w) - Math.abs(b - w) || b - a));

// The level for cells drawn `cellPx` device pixels wide, `count` of them on screen.
export function levelFor(cellPx, count) {
  let k = LEVELS.findIndex((s) => s >= cellPx / 1.5);
  if (k < 0) k = LEVELS.length - 1;
  while (k > 0 && count * LEVELS[k] * LEVELS[k] > VIEW_PX) k--;
  return k;
}

// tileURL(size, rowsText) -> the URL of a tile; onTile() is called when one arrives.
export function createMosaic(n, tileURL, onTile) {
  // Per level: where row i's thumbnail is: tile[i] = tile index + 1 (0: not asked, -1: asked), cell[i] = its cell.
  const levels = LEVELS.map((size) => ({size, tile: new Int32Array(n), cell: new Int32Array(n), images: []}));
  let loaded = 0; let failed = 0; let asked = 0; let alive = true;

  function ask(level, rows) {
    const index = level.images.length;
    const cols = Math.max(1, Math.ceil(Math.sqrt(rows.length)));
    const image = new Image();
    level.images.push({image, cols});
    rows.forEach((r) => { level.tile[r] = -1; });
    image.addEventListener('load', () => {
      if (!alive) return;
      rows.forEach((r, k) => { level.tile[r] = index + 1; level.cell[r] = k; });
      loaded++; onTile();
    }, {once: true});
    image.addEventListener('error', () => { failed++; onTile(); }, {once: true}); // not asked again: its rows keep their colour
    image.src = tileURL(level.size, encodeRows(rows));
    asked++;
  }

  return {
    // rows: the rows on screen (ascending); ask for the tiles they lack at the level their cells need.
    want(rows, cellPx) {
      const level = levels[levelFor(cellPx, rows.length)];
      const missing = rows.filter((r) => level.tile[r] === 0);
      const per = Math.min(TILE_ROWS, TILE_PX / (level.size * level.size));
      for (let k = 0; k < missing.length; k += per) ask(level, missing.slice(k, k + per));
      return level.size;
    },
    // The best thumbnail held for row i, for the level index `want` (levelFor): {image, x, y, size} or null.
    source(i, want) {
      for (const k of PREFER[want]) {
        const level = levels[k]; const t = level.tile[i];
        if (t > 0) {
          const {image, cols} = level.images[t - 1]; const c = level.cell[i];
          return {image, x: (c % cols) * level.size, y: Math.floor(c / cols) * level.size, size: level.size};
        }
      }
      return null;
    },
    get stats() { return {asked, loaded, failed}; },
    destroy() { alive = false; },
  };
}
