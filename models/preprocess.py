"""Turning BGR crops into a network's input tensor as an ``InputSpec`` describes it."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from models.images import check_bgr_image
from models.manifest import InputSpec


def to_tensor(crops: Sequence[np.ndarray], spec: InputSpec) -> npt.NDArray[np.float32]:
    """A float32 batch ``(n, 3, h, w)`` or ``(n, h, w, 3)``: resized, reordered, normalised."""
    if not crops:
        raise ValueError("at least one crop is needed")
    batch = np.empty((len(crops), spec.height, spec.width, 3), dtype=np.uint8)
    for i, crop in enumerate(crops):
        check_bgr_image(crop, "a face crop")
        if crop.shape[:2] != (spec.height, spec.width):
            crop = cv2.resize(crop, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        batch[i] = crop
    if spec.colour == "rgb":
        batch = batch[..., ::-1]
    tensor = batch.astype(np.float32)
    # Skipped when neutral: SFace normalises inside its graph and takes raw values.
    if spec.mean != (0.0, 0.0, 0.0):
        tensor -= np.asarray(spec.mean, dtype=np.float32)
    if spec.std != (1.0, 1.0, 1.0):
        tensor /= np.asarray(spec.std, dtype=np.float32)
    if spec.layout == "nchw":
        tensor = tensor.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(tensor)
