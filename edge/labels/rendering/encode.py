"""Rendered labels as files: PNG to keep or show, JPEG for the OpenEPaperLink access point.

The access point's ``/imgupload`` takes a JPEG, decodes it (to RGB565, or RGB332 on boards
without PSRAM) and maps each pixel to the nearest colour of the tag's palette, dithering
unless asked not to: upload with ``dither=0``. A JPEG at quality 95 without chroma
subsampling stays close enough to the palette colours for that mapping to give back exactly
the rendered pixels (tests/labels check this on every template).
"""

from __future__ import annotations

import io

from PIL import Image

JPEG_QUALITY = 95


def encode_png(image: Image.Image) -> bytes:
    """PNG, palette kept (1 bit a pixel for black/white, 2 for black/white/red)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_for_upload(image: Image.Image) -> bytes:
    """High-quality JPEG (4:4:4, no chroma subsampling, which would smear the red)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()
