"""The probe thumbnails as one sprite sheet: the web UI's mosaic and the TensorBoard export use the same grid."""

from __future__ import annotations

import io
import math
from typing import Iterable


def sprite_cols(n: int) -> int:
    """Columns of the grid of ``n`` images: ``ceil(sqrt(n))``, as TensorBoard's projector expects."""
    return max(1, math.ceil(math.sqrt(n)))


def sprite_sheet(thumbnails: Iterable[bytes], size: int, count: int | None = None) -> bytes:
    """PNG thumbnails, in order, as one PNG grid of ``size``-px cells.

    ``ceil(sqrt(N))`` columns; image i sits at column i % cols, row i // cols.
    ``thumbnails`` may be any iterable (read as it is drawn, never held whole)
    when ``count`` says how many it yields.
    """
    from PIL import Image

    if count is None:
        thumbnails = list(thumbnails)
        count = len(thumbnails)
    cols = sprite_cols(count)
    rows = max(1, math.ceil(count / cols))
    sheet = Image.new("RGB", (cols * size, rows * size), (238, 238, 238))
    for i, png in enumerate(thumbnails):
        if i >= count:
            raise ValueError(f"sprite_sheet was told of {count} thumbnails and given more.")
        with Image.open(io.BytesIO(png)) as img:
            cell = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        sheet.paste(cell, ((i % cols) * size, (i // cols) * size))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=False, compress_level=1)  # thumbnails barely compress: 1 is as small, far faster
    return out.getvalue()
