"""Finding the CJK font: the configured one, else a well-known one, else a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.labels.rendering import FontNotFound, LabelRenderer, find_cjk_font
from edge.labels.rendering.fonts import WELL_KNOWN_FONTS

INSTALLED = next((path for path in WELL_KNOWN_FONTS if path.is_file()), None)
needs_font = pytest.mark.skipif(INSTALLED is None, reason="no CJK font installed")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@needs_font
def test_configured_font_is_used(tmp_path: Path) -> None:
    assert INSTALLED is not None
    configured = tmp_path / "label-font.ttc"
    configured.symlink_to(INSTALLED)
    assert find_cjk_font(configured) == configured


def test_configured_font_that_is_missing_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ttf"
    with pytest.raises(FontNotFound, match=str(missing)):
        find_cjk_font(missing)


def test_first_well_known_font_installed(tmp_path: Path) -> None:
    second = tmp_path / "wqy-zenhei.ttc"
    second.write_bytes(b"")
    candidates = (tmp_path / "wqy-microhei.ttc", second)
    assert find_cjk_font(None, candidates, search_dirs=()) == second


def test_font_directories_searched_by_file_name(tmp_path: Path) -> None:
    nested = tmp_path / "fonts" / "noto" / "cjk"
    nested.mkdir(parents=True)
    (nested / "NotoSansCJK-Regular.ttc").write_bytes(b"")
    (tmp_path / "fonts" / "other.ttf").write_bytes(b"")
    found = find_cjk_font(None, (tmp_path / "absent.ttc",), search_dirs=(tmp_path / "fonts",))
    assert found == nested / "NotoSansCJK-Regular.ttc"


def test_no_font_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FontNotFound, match="fonts-wqy-microhei") as error:
        find_cjk_font(None, (tmp_path / "absent.ttc",), search_dirs=(tmp_path,))
    assert "font path" in str(error.value)


def test_renderer_refuses_a_font_without_chinese() -> None:
    if not DEJAVU.is_file():
        pytest.skip(f"{DEJAVU} is not installed")
    with pytest.raises(FontNotFound, match="no Chinese characters"):
        LabelRenderer(DEJAVU)


def test_renderer_refuses_a_file_that_is_no_font(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    with pytest.raises(FontNotFound, match="cannot load"):
        LabelRenderer(broken)
