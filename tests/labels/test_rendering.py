"""Rendered labels: golden images, exact palettes, codes that scan, uploads that survive the AP.

Golden images: tests/labels/golden/<template>-<case>.png, one for every shipped template and
every case of tests/labels/cases.py, compared pixel for pixel. After a change meant to alter
what labels look like, write them again with either of

    EDGE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/labels -q
    .venv/bin/python -m tests.labels.regenerate

and look at every changed PNG (scaled up 3x, nearest neighbour) before committing: they are
what shoppers see. They are drawn with Debian's fonts-wqy-microhei; without it they are
skipped.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image, JpegImagePlugin

from edge.labels.rendering import (
    PALETTES,
    TEMPLATES,
    LabelRenderer,
    LabelTemplate,
    encode_for_upload,
    encode_png,
)
from edge.labels.rendering.bench import render_rate
from tests.labels.cases import CASES
from tests.labels.regenerate import golden_path

ALL = [(template, case) for template in TEMPLATES for case in CASES]
RED = (255, 0, 0)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def rgb_colours(image: Image.Image) -> set[tuple[int, ...]]:
    colours = image.convert("RGB").getcolors(maxcolors=256)
    assert colours is not None, "more than 256 colours"
    return {colour for _count, colour in colours if isinstance(colour, tuple)}


@pytest.mark.parametrize(("template", "case"), ALL)
def test_matches_its_golden_image(
    golden_renderer: LabelRenderer, template: str, case: str, tmp_path: Path
) -> None:
    image = golden_renderer.render(CASES[case], template)
    path = golden_path(template, case)
    if os.environ.get("EDGE_UPDATE_GOLDEN") == "1":
        path.write_bytes(encode_png(image))
    assert path.is_file(), f"no golden image {path}: run python -m tests.labels.regenerate"
    golden = Image.open(path)
    assert golden.mode == "P"
    assert golden.getpalette() == image.getpalette()
    differing = int((pixels(golden) != pixels(image)).sum())
    if differing:
        actual = tmp_path / path.name
        image.save(actual)
        pytest.fail(f"{differing} pixels differ from {path}; this rendering: {actual}")


@pytest.mark.parametrize(("template", "case"), ALL)
def test_only_the_panel_colours(renderer: LabelRenderer, template: str, case: str) -> None:
    spec = TEMPLATES[template]
    image = renderer.render(CASES[case], template)

    assert image.mode == "P"
    assert image.size == (spec.width, spec.height)
    assert image.getpalette() == [
        channel for colour in PALETTES[spec.colours] for channel in colour
    ]
    assert int(pixels(image).max()) < len(PALETTES[spec.colours])
    assert rgb_colours(image) <= set(PALETTES[spec.colours])
    if spec.colours == "bw":
        assert RED not in rgb_colours(image)


@pytest.mark.parametrize("template", [t for t in TEMPLATES if TEMPLATES[t].colours == "bwr"])
def test_red_marks_promotions_only(renderer: LabelRenderer, template: str) -> None:
    assert RED in rgb_colours(renderer.render(CASES["promotion"], template))
    assert RED not in rgb_colours(renderer.render(CASES["normal"], template))


@pytest.mark.parametrize("template", [t for t in TEMPLATES if TEMPLATES[t].colours == "bw"])
def test_promotion_on_black_and_white_is_inverse(renderer: LabelRenderer, template: str) -> None:
    """The badge is a black block with white text: many more black pixels than without it."""
    promoted = CASES["promotion"]
    plain = dataclasses.replace(promoted, promotion=None)
    black = {
        name: int((pixels(renderer.render(content, template)) == 1).sum())
        for name, content in (("promoted", promoted), ("plain", plain))
    }
    assert black["promoted"] > black["plain"] + 200


@pytest.mark.parametrize(("template", "case"), ALL)
def test_code_scans_as_the_gtin(renderer: LabelRenderer, template: str, case: str) -> None:
    content = CASES[case]
    image = renderer.render(content, template)

    found = zxingcpp.read_barcodes(image.convert("L"))

    assert len(found) == 1
    if TEMPLATES[template].code == "ean13":
        assert found[0].format == zxingcpp.BarcodeFormat.EAN13
        assert found[0].text == content.gtin[1:]
    else:
        assert found[0].format == zxingcpp.BarcodeFormat.QRCode
        assert found[0].text == content.gtin


def test_gtin_without_ean13_gets_a_qr_code(renderer: LabelRenderer) -> None:
    """A GTIN-14 with a packaging indicator (1 to 8) cannot be an EAN-13."""
    content = dataclasses.replace(CASES["normal"], gtin="16907992513260")
    image = renderer.render(content, "2.9-bwr")

    found = zxingcpp.read_barcodes(image.convert("L"))

    assert [(f.format, f.text) for f in found] == [(zxingcpp.BarcodeFormat.QRCode, content.gtin)]


def test_no_code_when_the_template_has_none(renderer: LabelRenderer) -> None:
    template = dataclasses.replace(TEMPLATES["2.9-bwr"], name="2.9-bwr-nocode", code="none")
    assert zxingcpp.read_barcodes(renderer.render(CASES["normal"], template).convert("L")) == []


def access_point_colours(
    jpeg: bytes, palette: tuple[tuple[int, int, int], ...], bits: tuple[int, int, int]
) -> np.ndarray:
    """The palette index the OpenEPaperLink AP gives each pixel of an uploaded JPEG.

    As its firmware does (makeimage.cpp, dither off): the decoded pixel kept at the sprite's
    colour depth (RGB565, or RGB332 without PSRAM), then the nearest palette colour by
    3·dr² + 6·dg² + db².
    """
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(np.int64)
    rgb &= np.array([(0xFF << (8 - b)) & 0xFF for b in bits])
    diff = rgb[:, :, None, :] - np.array(palette)[None, None, :, :]
    distance = 3 * diff[..., 0] ** 2 + 6 * diff[..., 1] ** 2 + diff[..., 2] ** 2
    return np.asarray(distance.argmin(axis=2))


def nearest_colours(jpeg: bytes, palette: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")).astype(np.int64)
    diff = rgb[:, :, None, :] - np.array(palette)[None, None, :, :]
    return np.asarray((diff**2).sum(axis=3).argmin(axis=2))


@pytest.mark.parametrize(("template", "case"), ALL)
def test_upload_jpeg_comes_back_exact(renderer: LabelRenderer, template: str, case: str) -> None:
    palette = TEMPLATES[template].palette
    image = renderer.render(CASES[case], template)

    jpeg = encode_for_upload(image)

    decoded = Image.open(io.BytesIO(jpeg))
    assert decoded.format == "JPEG"
    assert decoded.size == image.size
    assert (nearest_colours(jpeg, palette) == pixels(image)).all()
    assert (access_point_colours(jpeg, palette, (5, 6, 5)) == pixels(image)).all()
    assert (access_point_colours(jpeg, palette, (3, 3, 2)) == pixels(image)).all()


def test_upload_jpeg_is_not_chroma_subsampled(renderer: LabelRenderer) -> None:
    jpeg = encode_for_upload(renderer.render(CASES["promotion"], "2.9-bwr"))
    decoded = Image.open(io.BytesIO(jpeg))
    assert isinstance(decoded, JpegImagePlugin.JpegImageFile)
    assert JpegImagePlugin.get_sampling(decoded) == 0  # 4:4:4


@pytest.mark.parametrize("template", ["2.9-bw", "2.9-bwr"])
def test_png_keeps_the_palette(renderer: LabelRenderer, template: str) -> None:
    image = renderer.render(CASES["promotion"], template)

    png = encode_png(image)

    width, height, bit_depth, colour_type = struct.unpack(">IIBB", png[16:26])
    assert (width, height, colour_type) == (296, 128, 3)  # 3: indexed colour
    assert bit_depth == (1 if template == "2.9-bw" else 2)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.getpalette() == image.getpalette()
    assert (pixels(decoded) == pixels(image)).all()


@pytest.mark.parametrize(
    ("rotate", "transpose"),
    [
        (90, Image.Transpose.ROTATE_270),
        (180, Image.Transpose.ROTATE_180),
        (270, Image.Transpose.ROTATE_90),
    ],
)
def test_rotation_turns_the_finished_label_clockwise(
    renderer: LabelRenderer, rotate: int, transpose: Image.Transpose
) -> None:
    upright = renderer.render(CASES["normal"], "2.9-bwr")
    turned = TEMPLATES["2.9-bwr"]
    turned = dataclasses.replace(turned, name=f"2.9-bwr-{rotate}", rotate=rotate)

    image = renderer.render(CASES["normal"], turned)

    assert image.mode == "P"
    assert image.getpalette() == upright.getpalette()
    assert (pixels(image) == pixels(upright.transpose(transpose))).all()


def test_dithering_only_where_the_template_asks(renderer: LabelRenderer) -> None:
    crisp_template = TEMPLATES["2.9-bwr"]
    dithered_template = dataclasses.replace(crisp_template, name="2.9-bwr-dither", dither=True)

    crisp = renderer.render(CASES["promotion"], crisp_template)
    dithered = renderer.render(CASES["promotion"], dithered_template)

    assert dithered.mode == "P"
    assert dithered.getpalette() == crisp.getpalette()
    assert int(pixels(dithered).max()) <= 2
    # Smooth edges dithered: pixels differ from the crisp rendering along the text's edges.
    assert 100 < int((pixels(dithered) != pixels(crisp)).sum()) < 0.1 * crisp.width * crisp.height
    # Bars and QR modules are never dithered: the code still reads.
    found = zxingcpp.read_barcodes(dithered.convert("L"))
    assert [f.text for f in found] == [CASES["promotion"].gtin[1:]]


def test_other_currencies_and_missing_details_render(renderer: LabelRenderer) -> None:
    contents = [
        dataclasses.replace(CASES["normal"], currency="USD", price=350, unit_price="$0.35/oz"),
        dataclasses.replace(CASES["normal"], currency="JPY", price=1980, old_price=2480),
        dataclasses.replace(
            CASES["normal"], size=None, unit=None, unit_price=None, name_en="Water"
        ),
        dataclasses.replace(CASES["promotion"], price=1_299_900, old_price=1_599_900),
        dataclasses.replace(CASES["promotion"], promotion="会员日 买一送一 第二件半价 限本店"),
        dataclasses.replace(CASES["normal"], name="Supercalifragilisticexpialidocious" * 3),
        dataclasses.replace(
            CASES["promotion"],
            name="伊利\n安慕希",
            unit_price="¥2.39/\n100g",
            promotion="限时\n特价",
        ),
    ]
    for template in TEMPLATES:
        for content in contents:
            image = renderer.render(content, template)
            assert rgb_colours(image) <= set(TEMPLATES[template].palette)


def test_template_by_name_or_unknown(renderer: LabelRenderer) -> None:
    by_name = renderer.render(CASES["normal"], "4.2-bw")
    by_template = renderer.render(CASES["normal"], TEMPLATES["4.2-bw"])
    assert (pixels(by_name) == pixels(by_template)).all()
    with pytest.raises(ValueError, match="no label template"):
        renderer.render(CASES["normal"], "7.5-bwry")


def test_shipped_templates() -> None:
    sizes = {(t.width, t.height, t.colours) for t in TEMPLATES.values()}
    for size in ((296, 128), (250, 122), (400, 300)):
        for colours in ("bw", "bwr"):
            assert (*size, colours) in sizes
    assert not any(t.dither for t in TEMPLATES.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gtin": "6921168509256"}, "14 digits"),
        ({"gtin": "06921168509257"}, "check digit"),
        ({"price": -1}, "negative"),
        ({"old_price": -5}, "negative"),
        ({"currency": "RMB?"}, "ISO 4217"),
    ],
)
def test_content_is_checked(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CASES["normal"], **change)  # type: ignore[arg-type]


def test_template_is_checked() -> None:
    with pytest.raises(ValueError, match="rotate"):
        LabelTemplate("odd", 296, 128, "bwr", "ean13", rotate=45)
    with pytest.raises(ValueError, match="64x64"):
        LabelTemplate("tiny", 32, 32, "bw", "none")


def test_render_rate_is_measured(renderer: LabelRenderer) -> None:
    """A smoke run of the benchmark (the target, 300 a second, is the benchmark's to judge)."""
    rate = render_rate(0.3, renderer.font_path)
    assert rate > 30
