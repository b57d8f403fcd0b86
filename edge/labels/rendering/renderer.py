"""``LabelRenderer``: label content and a template in, the panel's palette image out."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from edge.labels.rendering.canvas import Canvas, Symbols
from edge.labels.rendering.fonts import FontSet, find_cjk_font
from edge.labels.rendering.layout import draw_label
from edge.labels.rendering.model import TEMPLATES, LabelContent, LabelTemplate


class LabelRenderer:
    """Renders labels with one CJK font, loaded once per size and kept with the symbols made.

    Not thread-safe (the caches are not locked): one renderer per thread or process.
    """

    def __init__(self, font_path: Path | None = None) -> None:
        self.font_path = find_cjk_font(font_path)
        self._fonts = FontSet(self.font_path)
        self._symbols = Symbols(self._fonts)

    def render(self, content: LabelContent, template: LabelTemplate | str) -> Image.Image:
        """A mode "P" image whose palette is exactly the panel's colours: [white, black, red]
        (bwr) or [white, black] (bw), turned by the template's rotation."""
        if isinstance(template, str):
            try:
                template = TEMPLATES[template]
            except KeyError:
                raise ValueError(f"no label template {template!r}") from None
        canvas = Canvas(template, self._fonts, self._symbols)
        draw_label(canvas, content)
        return canvas.finish()
