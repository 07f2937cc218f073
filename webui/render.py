"""Pixels for the browser: colormaps, PNG encoding, image grids.

Pure functions of arrays; the blueprints call them and send the bytes. The thumbnail
sprite sheet is ``deepviz.sprite``'s, shared with the TensorBoard export.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np

# Eight stops of matplotlib's "inferno" (perceptually uniform, dark = low) and
# a blue-white-red diverging map for signed values, interpolated linearly.
_SEQUENTIAL = np.array(
    [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]],
    dtype=np.float32,
)
_DIVERGING = np.array([[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]], dtype=np.float32)
_BACKGROUND = np.array([255, 255, 255], dtype=np.uint8)


def _lookup(table: np.ndarray, t: np.ndarray) -> np.ndarray:
    pos = np.clip(t, 0.0, 1.0) * (len(table) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(table) - 2)
    frac = (pos - lo)[..., None]
    return (table[lo] * (1 - frac) + table[lo + 1] * frac).round().astype(np.uint8)


def colorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(H, W)`` values -> opaque ``(H, W, 3)`` and overlay ``(H, W, 4)`` uint8, and the scale used.

    Maps with negative values use the diverging map centred on 0 (white is "no
    effect"); non-negative maps the sequential one from 0.  The overlay's alpha
    is the magnitude, so the image shows through where the map is near 0.  NaN
    (grid padding) is white in the opaque image and transparent in the overlay.
    """
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    signed = lo < 0
    clean = np.nan_to_num(values)
    if signed:
        span = max(abs(lo), abs(hi)) or 1.0
        rgb = _lookup(_DIVERGING, 0.5 + clean / (2 * span))
        strength = np.abs(clean) / span
    else:
        span = hi or 1.0
        rgb = _lookup(_SEQUENTIAL, clean / span)
        strength = clean / span
    alpha = (np.clip(strength, 0, 1) * 255).round().astype(np.uint8)
    missing = ~np.isfinite(values)
    rgb[missing] = _BACKGROUND
    alpha[missing] = 0
    return rgb, np.dstack([rgb, alpha]), {"min": lo, "max": hi, "signed": signed}


def png_bytes(pixels: np.ndarray, optimize: bool = False) -> bytes:
    """uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` -> PNG bytes."""
    from PIL import Image

    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()


def png_data_url(pixels: np.ndarray) -> str:
    """``png_bytes`` as a ``data:image/png`` URL."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")


def to_display(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` model input -> uint8 ``(H, W, C)``, scaled per channel by the probes' range."""
    scaled = (image - lo[:, None, None]) / np.maximum(hi - lo, 1e-12)[:, None, None]
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)


CELL_PX = 30  # a filter is drawn about this many pixels wide, whatever its kernel size
GAP_PX = 2


def filter_layout(shape: tuple[int, ...]) -> dict:
    """Where each filter of a ``(out, in, kh, kw)`` weight sits in the grid ``filter_grid`` draws."""
    n, _, kh, kw = shape
    zoom = max(1, math.ceil(CELL_PX / max(kh, kw)))
    cols = max(1, math.ceil(math.sqrt(n)))
    return {"n_filters": int(n), "cols": cols, "rows": math.ceil(n / cols), "zoom": zoom, "cell_w": kw * zoom, "cell_h": kh * zoom, "gap": GAP_PX}


def filter_grid(tiles: np.ndarray, layout: dict) -> np.ndarray:
    """Display tiles ``(out, kh, kw, 3 or 1)`` in [0, 1] -> one uint8 RGB grid, row-major, on white."""
    tiles = (np.clip(tiles, 0, 1) * 255).round().astype(np.uint8)
    if tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    tiles = tiles.repeat(layout["zoom"], axis=1).repeat(layout["zoom"], axis=2)
    gap, ch, cw = layout["gap"], layout["cell_h"], layout["cell_w"]
    canvas = np.full((gap + layout["rows"] * (ch + gap), gap + layout["cols"] * (cw + gap), 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, layout["cols"])
        y, x = gap + r * (ch + gap), gap + c * (cw + gap)
        canvas[y : y + ch, x : x + cw] = tile
    return canvas
