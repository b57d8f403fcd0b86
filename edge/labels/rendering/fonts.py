"""The CJK font labels are drawn with: found once, loaded once per size, glyphs kept.

Fonts are loaded with Pillow's basic layout engine: raqm (HarfBuzz) measured 20x slower here
(0.5 ms to measure one product name) and shaping buys nothing for Chinese and Latin text.
Pillow rasterises every glyph of every string it draws (about 12 us a Chinese character,
80 % of a label's rendering time), so each glyph is rasterised once and kept as a mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Debian/Ubuntu (fonts-wqy-microhei, fonts-wqy-zenhei, fonts-noto-cjk), then Alpine
# (font-noto-cjk, font-wqy-zenhei), best first.
WELL_KNOWN_FONTS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc"),
)
# Where else to look for the same files by name (other distributions put them elsewhere).
FONT_DIRS: tuple[Path, ...] = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
_KNOWN_FILE_NAMES = (
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "SourceHanSansSC-Regular.otf",
)
# Noto Sans CJK collections hold JP, KR, SC, TC, HK in that order: Chinese labels want SC.
_SIMPLIFIED_CHINESE_FACE = {"NotoSansCJK-Regular.ttc": 2, "NotoSansCJK-Bold.ttc": 2}
# Shows a font's kerning or unhinted (fractional) advances: then text is measured and drawn
# as whole strings, not glyph by glyph.
_PROBE = "AVAWToTyLT.Wa国价"


class FontNotFound(Exception):
    """No usable CJK font: the configured one is missing, or none is installed."""


def find_cjk_font(
    explicit: Path | None,
    candidates: tuple[Path, ...] = WELL_KNOWN_FONTS,
    search_dirs: tuple[Path, ...] = FONT_DIRS,
) -> Path:
    """The configured font, else the first well-known CJK font installed.

    A configured path that does not exist is an error, never silently replaced: the labels
    would look different from what was configured.
    """
    if explicit is not None:
        if explicit.is_file():
            return explicit
        raise FontNotFound(f"the configured label font {explicit} does not exist")
    for path in candidates:
        if path.is_file():
            return path
    found = _search(search_dirs)
    if found is not None:
        return found
    raise FontNotFound(
        "no CJK font for shelf labels: install fonts-wqy-microhei "
        "(apt-get install fonts-wqy-microhei) or set the label font path"
    )


def _search(search_dirs: tuple[Path, ...]) -> Path | None:
    found: dict[str, Path] = {}
    for directory in search_dirs:
        for root, _dirs, files in os.walk(directory):
            for name in files:
                if name in _KNOWN_FILE_NAMES:
                    found.setdefault(name, Path(root) / name)
    for name in _KNOWN_FILE_NAMES:
        if name in found:
            return found[name]
    return None


@dataclass(frozen=True, slots=True)
class LineMetrics:
    ascent: int
    """Pixels above the baseline that ink reaches (CJK ideographs, capitals)."""
    descent: int
    """Pixels below the baseline (descenders of g, y, p)."""


@dataclass(frozen=True, slots=True)
class Glyph:
    mask: Image.Image | None
    """Mode "1" (crisp) or "L" (smooth); None for a glyph without ink (a space)."""
    left: int
    top: int
    """Where the mask's top-left corner goes, from the pen position on the baseline."""
    advance: int
    """How far the pen moves on (whole pixels: hinted)."""


class FontSet:
    """One font file, loaded once per pixel size, its advances and rasterised glyphs kept.

    Not thread-safe: give each rendering thread its own renderer.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index = _SIMPLIFIED_CHINESE_FACE.get(path.name, 0)
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._advances: dict[int, dict[str, float]] = {}
        self._metrics: dict[int, LineMetrics] = {}
        self._digit_heights: dict[int, int] = {}
        self._whole: dict[int, bool] = {}
        self._glyphs: dict[tuple[str, int, int, str], Glyph] = {}
        self._check_cjk()

    def font(self, size: int) -> ImageFont.FreeTypeFont:
        font = self._fonts.get(size)
        if font is None:
            try:
                font = ImageFont.truetype(
                    str(self.path), size, index=self._index, layout_engine=ImageFont.Layout.BASIC
                )
            except OSError as exc:
                raise FontNotFound(f"cannot load the label font {self.path}: {exc}") from exc
            self._fonts[size] = font
            self._advances[size] = {}
            advances = [font.getlength(c) for c in _PROBE]
            self._whole[size] = font.getlength(_PROBE) != sum(advances) or not all(
                advance.is_integer() for advance in advances
            )
        return font

    def width(self, text: str, size: int) -> float:
        """The advance width of ``text`` as it will be drawn (a sum of cached advances)."""
        font = self.font(size)
        if self._whole[size]:
            return font.getlength(text)
        advances = self._advances[size]
        total = 0.0
        for char in text:
            advance = advances.get(char)
            if advance is None:
                advance = advances[char] = font.getlength(char)
            total += advance
        return total

    def by_glyph(self, size: int) -> bool:
        """Whether a string is its glyphs side by side, whole pixels apart (no kerning, hinted
        advances), so it can be measured and drawn from cached glyphs."""
        self.font(size)
        return not self._whole[size]

    def glyph(self, char: str, size: int, bold: int, mode: str) -> Glyph:
        """``char`` rasterised as Pillow draws it in a string (``bold``: stroke width)."""
        key = (char, size, bold, mode)
        glyph = self._glyphs.get(key)
        if glyph is None:
            glyph = self._glyphs[key] = self._rasterise(char, size, bold, mode)
        return glyph

    def _rasterise(self, char: str, size: int, bold: int, mode: str) -> Glyph:
        font = self.font(size)
        advance = int(self.width(char, size))
        left, top, right, bottom = (
            int(v) for v in font.getbbox(char, mode=mode, anchor="ls", stroke_width=bold)
        )
        if right <= left or bottom <= top:
            return Glyph(None, 0, 0, advance)
        mask = Image.new(mode, (right - left, bottom - top), 0)
        draw = ImageDraw.Draw(mask)
        draw.fontmode = mode
        ink = 1 if mode == "1" else 255
        draw.text(
            (-left, -top),
            char,
            fill=ink,
            font=font,
            anchor="ls",
            stroke_width=bold,
            stroke_fill=ink,
        )
        return Glyph(mask, left, top, advance)

    def metrics(self, size: int) -> LineMetrics:
        metrics = self._metrics.get(size)
        if metrics is None:
            _left, top, _right, bottom = self.font(size).getbbox("国Agy", anchor="ls")
            metrics = self._metrics[size] = LineMetrics(ascent=-int(top), descent=int(bottom))
        return metrics

    def digit_height(self, size: int) -> int:
        """Pixels from the baseline to the top of the digits."""
        height = self._digit_heights.get(size)
        if height is None:
            top = self.font(size).getbbox("0123456789", anchor="ls")[1]
            height = self._digit_heights[size] = -int(top)
        return height

    def _check_cjk(self) -> None:
        # A font without Chinese draws its "missing glyph" box for every character.
        font = self.font(16)
        if bytes(font.getmask("价")) == bytes(font.getmask("\U0010fffd")):
            raise FontNotFound(
                f"the label font {self.path} has no Chinese characters: "
                "install fonts-wqy-microhei or set a CJK font"
            )
