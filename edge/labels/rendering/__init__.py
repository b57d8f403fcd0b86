"""Shelf label images: templates for the common panels, rendered in their exact palettes.

``LabelRenderer(font_path).render(content, "2.9-bwr")`` gives a palette image with only the
colours the panel shows (text is drawn without anti-aliasing; bars and QR modules are whole
pixels). ``encode_png`` and ``encode_for_upload`` (JPEG for the OpenEPaperLink access point)
turn it into bytes. Layouts are described in :mod:`edge.labels.rendering.layout`.
"""

from edge.labels.rendering.encode import encode_for_upload, encode_png
from edge.labels.rendering.fonts import FontNotFound, find_cjk_font
from edge.labels.rendering.model import (
    PALETTES,
    TEMPLATES,
    LabelContent,
    LabelTemplate,
)
from edge.labels.rendering.renderer import LabelRenderer

__all__ = [
    "PALETTES",
    "TEMPLATES",
    "FontNotFound",
    "LabelContent",
    "LabelRenderer",
    "LabelTemplate",
    "encode_for_upload",
    "encode_png",
    "find_cjk_font",
]
