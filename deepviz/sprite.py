"""The probe thumbnails as one sprite sheet: the web UI's mosaic and the TensorBoard export use the same grid."""

from __future__ import annotations

import io
import math


def sprite_cols(n: int) -> int:
    """Columns of the grid of ``n`` images: ``ceil(sqrt(n))``, as TensorBoard's projector expects."""
    return max(1, math.ceil(math.sqrt(n)))


def sprite_sheet(thumbnails: list[bytes], size: int) -> bytes:
    """PNG thumbnails, in order, as one PNG grid of ``size``-px cells.

    ``ceil(sqrt(N))`` columns; image i sits at column i % cols, row i // cols.
    """
    from PIL import Image

    cols = sprite_cols(len(thumbnails))
    rows = max(1, math.ceil(len(thumbnails) / cols))
    sheet = Image.new("RGB", (cols * size, rows * size), (238, 238, 238))
    for i, png in enumerate(thumbnails):
        with Image.open(io.BytesIO(png)) as img:
            cell = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        sheet.paste(cell, ((i % cols) * size, (i // cols) * size))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=False)
    return out.getvalue()
