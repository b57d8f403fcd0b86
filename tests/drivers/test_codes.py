"""Codes read from camera-like frames: QR (cv2.QRCodeEncoder) and 1-D codes (zxing-cpp writer).

Each label is pasted on a noisy, textured 640x480 background and then rotated, warped,
blurred, flattened or shrunk the way a camera would see it. Scenes come from fixed seeds, and
every distortion is kept inside a margin where decoding succeeded for all of 20 seeds, so the
tests are deterministic and not balanced on an edge.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
import zxingcpp

from drivers.camera import CodeReader, DecodedCode

HEIGHT, WIDTH = 480, 640


def qr_label(text: str, module: int = 4) -> np.ndarray:
    """A QR code with its 4-module quiet zone, ``module`` pixels per module (grey)."""
    symbol = cv2.QRCodeEncoder.create().encode(text)  # with a 2-module white border
    symbol = cv2.resize(symbol, None, fx=module, fy=module, interpolation=cv2.INTER_NEAREST)
    quiet = 2 * module
    return cv2.copyMakeBorder(symbol, quiet, quiet, quiet, quiet, cv2.BORDER_CONSTANT, value=255)


def barcode_label(fmt: zxingcpp.BarcodeFormat, text: str, scale: int = 3) -> np.ndarray:
    """A 1-D code drawn by zxing-cpp's writer, ``scale`` pixels per module, with quiet zones."""
    symbol = zxingcpp.create_barcode(text, fmt)
    return np.asarray(zxingcpp.write_barcode_to_image(symbol, scale=scale)).copy()


def scene(labels: list[np.ndarray], seed: int) -> np.ndarray:
    """Labels side by side on a noisy, blotchy background, as grey."""
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(50, 130, (HEIGHT, WIDTH), dtype=np.uint8), (0, 0), 3)
    x = (WIDTH - sum(label.shape[1] for label in labels) - 40 * (len(labels) - 1)) // 2
    for label in labels:
        y = (HEIGHT - label.shape[0]) // 2
        background[y : y + label.shape[0], x : x + label.shape[1]] = label
        x += label.shape[1] + 40
    return background


def camera_noise(grey: np.ndarray, seed: int) -> np.ndarray:
    """Sensor noise, and BGR as a camera delivers it."""
    noise = np.random.default_rng(seed + 1000).normal(0, 3, grey.shape)
    noisy = (grey.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR)


def plain(grey: np.ndarray) -> np.ndarray:
    return grey


def rotated_15(grey: np.ndarray) -> np.ndarray:
    turn = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 15, 1.0)
    return cv2.warpAffine(grey, turn, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderValue=90)


def rotated_90(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(grey))


def perspective(grey: np.ndarray) -> np.ndarray:
    """Seen from below and to the side: a trapezoid, not a rectangle."""
    corners = np.array([[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]], np.float32)
    seen = np.array(
        [[WIDTH * 0.12, HEIGHT * 0.05], [WIDTH * 0.9, 0], [WIDTH, HEIGHT], [0, HEIGHT * 0.92]],
        np.float32,
    )
    warp = cv2.getPerspectiveTransform(corners, seen)
    return cv2.warpPerspective(grey, warp, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderValue=90)


def blurred(grey: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(grey, (0, 0), 1.0)  # slightly out of focus


def low_contrast(grey: np.ndarray) -> np.ndarray:
    """Black and white squeezed into about 95..160: a dim, washed-out shot."""
    return (128 + (grey.astype(np.float32) - 128) * 0.25).clip(0, 255).astype(np.uint8)


def small(grey: np.ndarray) -> np.ndarray:
    """The whole frame at half size, as from twice the distance (kept at 640x480)."""
    half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    framed = np.full_like(grey, 90)
    framed[HEIGHT // 4 : HEIGHT // 4 + half.shape[0], WIDTH // 4 : WIDTH // 4 + half.shape[1]] = (
        half
    )
    return framed


DISTORTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "plain": plain,
    "rotated 15°": rotated_15,
    "rotated 90°": rotated_90,
    "perspective": perspective,
    "blurred": blurred,
    "low contrast": low_contrast,
    "small": small,
}

LABELS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "qr": ("locker:42:PICKUP-7781", lambda: qr_label("locker:42:PICKUP-7781")),
    "code128": ("LOCKER-42", lambda: barcode_label(zxingcpp.BarcodeFormat.Code128, "LOCKER-42")),
    "code39": ("PICK-881", lambda: barcode_label(zxingcpp.BarcodeFormat.Code39, "PICK-881")),
    "ean13": (
        "4006381333931",
        lambda: barcode_label(zxingcpp.BarcodeFormat.EAN13, "4006381333931"),
    ),
}


@pytest.fixture(scope="module")
def reader() -> CodeReader:
    return CodeReader()


def assert_one(codes: list[DecodedCode], symbology: str, text: str) -> DecodedCode:
    assert [(code.symbology, code.text) for code in codes] == [(symbology, text)]
    return codes[0]


@pytest.mark.parametrize("distortion", list(DISTORTIONS))
@pytest.mark.parametrize("symbology", list(LABELS))
def test_codes_are_read_from_camera_like_frames(
    reader: CodeReader, symbology: str, distortion: str
) -> None:
    text, make_label = LABELS[symbology]
    frame = camera_noise(DISTORTIONS[distortion](scene([make_label()], seed=7)), seed=7)

    code = assert_one(reader.read(frame), symbology, text)

    height, width = frame.shape[:2]
    assert len(code.corners) == 4
    assert all(0 <= x <= width and 0 <= y <= height for x, y in code.corners)


def test_corners_surround_the_code(reader: CodeReader) -> None:
    label = qr_label("where am I")
    frame = camera_noise(scene([label], seed=3), seed=3)
    code = assert_one(reader.read(frame), "qr", "where am I")
    xs = [x for x, _ in code.corners]
    ys = [y for _, y in code.corners]
    # The symbol (inside the quiet zone) is centred in the frame.
    assert (
        abs((min(xs) + max(xs)) / 2 - WIDTH / 2) < 4
        and abs((min(ys) + max(ys)) / 2 - HEIGHT / 2) < 4
    )
    assert max(xs) - min(xs) == pytest.approx(label.shape[1] - 2 * 4 * 4, abs=3)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_frame_without_a_code_gives_nothing(reader: CodeReader, seed: int) -> None:
    assert reader.read(camera_noise(scene([], seed=seed), seed=seed)) == []
    assert reader.read(np.zeros((HEIGHT, WIDTH, 3), np.uint8)) == []


@pytest.mark.parametrize("digits", ["036000291452", "4006381333931", "96385074"])
def test_a_code128_of_digits_is_reported_as_code128(reader: CodeReader, digits: str) -> None:
    # Digits that would also make a valid UPC-A, EAN-13 and EAN-8: still a Code 128.
    label = barcode_label(zxingcpp.BarcodeFormat.Code128, digits)
    assert_one(reader.read(camera_noise(scene([label], seed=5), seed=5)), "code128", digits)


def test_upc_a_and_ean8_are_told_apart_from_ean13(reader: CodeReader) -> None:
    upc = barcode_label(zxingcpp.BarcodeFormat.UPCA, "036000291452")
    assert_one(reader.read(camera_noise(scene([upc], seed=4), seed=4)), "upca", "036000291452")
    ean8 = barcode_label(zxingcpp.BarcodeFormat.EAN8, "96385074")
    assert_one(reader.read(camera_noise(scene([ean8], seed=4), seed=4)), "ean8", "96385074")
    only_ean13 = CodeReader(qr=False, linear=("ean13",))
    # Without upca configured, the same bars are the EAN-13 with a leading 0.
    frame = camera_noise(scene([upc], seed=4), seed=4)
    assert_one(only_ean13.read(frame), "ean13", "0036000291452")


def test_only_configured_symbologies_are_reported() -> None:
    ean = barcode_label(zxingcpp.BarcodeFormat.EAN13, "4006381333931")
    qr = qr_label("not wanted")
    frame = camera_noise(scene([ean, qr], seed=6), seed=6)
    assert CodeReader(qr=False, linear=("code128",)).read(frame) == []
    found = CodeReader(qr=True, linear=()).read(frame)
    assert [(code.symbology, code.text) for code in found] == [("qr", "not wanted")]


def test_several_codes_in_one_frame(reader: CodeReader) -> None:
    qr = qr_label("order 5521", module=3)
    bar = barcode_label(zxingcpp.BarcodeFormat.Code128, "PARCEL-9", scale=2)
    found = reader.read(camera_noise(scene([qr, bar], seed=8), seed=8))
    assert sorted((code.symbology, code.text) for code in found) == [
        ("code128", "PARCEL-9"),
        ("qr", "order 5521"),
    ]


def test_other_symbologies_on_request() -> None:
    reader = CodeReader(qr=False, linear=("upce", "itf", "datamatrix"))
    upce = barcode_label(zxingcpp.BarcodeFormat.UPCE, "01234565", scale=2)
    itf = barcode_label(zxingcpp.BarcodeFormat.ITF, "12345670", scale=2)
    matrix = np.asarray(
        zxingcpp.write_barcode_to_image(
            zxingcpp.create_barcode("bin 7", zxingcpp.BarcodeFormat.DataMatrix), scale=5
        )
    ).copy()
    found = reader.read(camera_noise(scene([upce, itf, matrix], seed=9), seed=9))
    assert sorted((code.symbology, code.text) for code in found) == [
        ("datamatrix", "bin 7"),
        ("itf", "12345670"),
        ("upce", "01234565"),
    ]


def test_the_upscaled_retry_recovers_tiny_codes() -> None:
    # 1.5 pixels per module after halving: too fine for a first pass at full size (it read
    # 1 of 20 such scenes; with the retry, 20 of 20).
    text = "locker:42:PICKUP-7781"
    frame = camera_noise(small(scene([qr_label(text, module=3)], seed=11)), seed=11)
    assert CodeReader(retry_upscaled=False).read(frame) == []
    assert_one(CodeReader().read(frame), "qr", text)
    label = barcode_label(zxingcpp.BarcodeFormat.Code39, "PICK-881")  # 1.5 px/module halved
    frame = camera_noise(small(scene([label], seed=11)), seed=11)
    assert CodeReader(retry_upscaled=False).read(frame) == []
    assert_one(CodeReader().read(frame), "code39", "PICK-881")


def test_grey_frames_are_read_too(reader: CodeReader) -> None:
    grey = scene([barcode_label(zxingcpp.BarcodeFormat.Code39, "GREY-1")], seed=2)
    assert_one(reader.read(grey), "code39", "GREY-1")


def test_bad_configuration_and_frames_are_refused(reader: CodeReader) -> None:
    with pytest.raises(ValueError, match="unknown barcode symbology 'pdf417'"):
        CodeReader(linear=("code128", "pdf417"))
    with pytest.raises(TypeError, match="sequence of symbology names"):
        CodeReader(linear="code128")
    with pytest.raises(ValueError, match="must be uint8"):
        reader.read(np.zeros((10, 10, 3), np.float32))
