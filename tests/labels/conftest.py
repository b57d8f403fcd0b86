"""Renderers for the label tests: one per session (fonts and symbols load once)."""

from __future__ import annotations

import pytest

from edge.labels.rendering import FontNotFound, LabelRenderer
from tests.labels.regenerate import GOLDEN_FONT


@pytest.fixture(scope="session")
def renderer() -> LabelRenderer:
    """With whatever CJK font this machine has (scripts/test installs fonts-wqy-microhei)."""
    try:
        return LabelRenderer()
    except FontNotFound as exc:
        pytest.skip(f"{exc}")


@pytest.fixture(scope="session")
def golden_renderer() -> LabelRenderer:
    """With the font the golden images were drawn with: another font draws other pixels."""
    if not GOLDEN_FONT.is_file():
        pytest.skip(
            f"the golden images are drawn with {GOLDEN_FONT} (apt-get install fonts-wqy-microhei)"
        )
    return LabelRenderer(GOLDEN_FONT)
