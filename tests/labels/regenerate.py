"""Writes the golden images again: ``.venv/bin/python -m tests.labels.regenerate``.

Run it only after a change meant to alter what labels look like, then look at every PNG in
tests/labels/golden/ (they are what shoppers see) before committing them.
"""

from __future__ import annotations

from pathlib import Path

from edge.labels.rendering import TEMPLATES, LabelRenderer, encode_png
from tests.labels.cases import CASES

GOLDEN = Path(__file__).parent / "golden"
# The font the golden images were drawn with: Debian's fonts-wqy-microhei.
GOLDEN_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def golden_path(template: str, case: str) -> Path:
    return GOLDEN / f"{template}-{case}.png"


def regenerate(renderer: LabelRenderer) -> list[Path]:
    GOLDEN.mkdir(exist_ok=True)
    written = []
    for template in TEMPLATES:
        for case, content in CASES.items():
            path = golden_path(template, case)
            path.write_bytes(encode_png(renderer.render(content, template)))
            written.append(path)
    return written


def main() -> None:
    written = regenerate(LabelRenderer(GOLDEN_FONT))
    print(f"wrote {len(written)} golden images to {GOLDEN}")


if __name__ == "__main__":
    main()
