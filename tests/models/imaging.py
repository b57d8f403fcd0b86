"""Deterministic image changes for the recognition tests, each with where points move to.

Every transform returns the changed image and the 2x3 affine matrix taking a point of the
original image to the changed one (identity for changes of colour, blur or compression), so a
face found in the changed image can be traced back to the person it is in the original.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Transformed = tuple[np.ndarray, np.ndarray]
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def shifted(image: np.ndarray, dx: float = 41, dy: float = -27) -> Transformed:
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    height, width = image.shape[:2]
    return cv2.warpAffine(image, matrix, (width, height)), matrix


def scaled(image: np.ndarray, factor: float) -> Transformed:
    height, width = image.shape[:2]
    size = (round(width * factor), round(height * factor))
    method = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    out = cv2.resize(image, size, interpolation=method)
    matrix = np.array([[size[0] / width, 0.0, 0.0], [0.0, size[1] / height, 0.0]])
    return out, matrix


def rotated(image: np.ndarray, degrees: float = 10.0) -> Transformed:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE), matrix


def brightness(image: np.ndarray, gain: float, offset: float) -> Transformed:
    return cv2.convertScaleAbs(image, alpha=gain, beta=offset), IDENTITY


def blurred(image: np.ndarray, sigma: float = 1.6) -> Transformed:
    return cv2.GaussianBlur(image, (0, 0), sigma), IDENTITY


def jpeg(image: np.ndarray, quality: int = 30) -> Transformed:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert ok and decoded is not None
    return decoded, IDENTITY


TRANSFORMS: dict[str, Callable[[np.ndarray], Transformed]] = {
    "original": lambda image: (image, IDENTITY),
    "shift": shifted,
    "smaller_0.6x": lambda image: scaled(image, 0.6),
    "larger_1.6x": lambda image: scaled(image, 1.6),
    "rotate_6deg": lambda image: rotated(image, 6.0),
    "rotate_-6deg": lambda image: rotated(image, -6.0),
    "brighter": lambda image: brightness(image, 1.0, 45),
    "darker_low_contrast": lambda image: brightness(image, 0.55, -5),
    "blur_sigma_1.6": blurred,
    "jpeg_q30": jpeg,
}


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (n, 2) moved by a 2x3 affine matrix."""
    moved: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return moved


def invert(matrix: np.ndarray) -> np.ndarray:
    inverse: np.ndarray = cv2.invertAffineTransform(matrix)
    return inverse
