"""The one image format this package takes: 8-bit BGR, as OpenCV decodes and cameras give."""

from __future__ import annotations

import numpy as np


def check_bgr_image(image: np.ndarray, what: str = "frame") -> None:
    """Raise ``ValueError`` unless ``image`` is a non-empty ``(height, width, 3)`` uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(
            f"{what} must be a BGR image of shape (height, width, 3) and dtype uint8, "
            f"not shape {image.shape} dtype {image.dtype}"
        )
