"""The pluggable anti-spoofing role: any ONNX image classifier telling live faces from fakes.

No such model ships on PyPI; an operator who has one (MiniFASNet and the like) describes it
with an ``AntispoofSpec``: input size, colour order, mean/std, which output class means "live",
whether the output is logits or probabilities, and how much larger than the detected box the
crop it was trained on is (``crop_scale``; MiniFASNet uses 2.7 or 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.errors import ModelLoadError
from models.images import check_bgr_image
from models.manifest import AntispoofSpec
from models.preprocess import to_tensor
from models.runtime import open_session

Box = tuple[float, float, float, float]


class SpoofClassifier:
    """An anti-spoofing classifier on onnxruntime."""

    def __init__(self, model_path: Path, spec: AntispoofSpec, *, threads: int = 1) -> None:
        self.spec = spec
        self._session = open_session(model_path, threads=threads)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelLoadError(
                f"model file {model_path} does not take one image tensor: give a classifier"
            )
        self._input_name = inputs[0].name
        self._output_name = self._session.get_outputs()[0].name
        blank = np.zeros((spec.input.height, spec.input.width, 3), dtype=np.uint8)
        classes = self._scores(blank).size
        live_class = spec.thresholds.live_class
        if live_class >= classes:
            raise ModelLoadError(
                f"model file {model_path} has {classes} output class(es), so live class "
                f"{live_class} does not exist: correct the spec's live_class"
            )

    def live_probability(self, face_bgr: np.ndarray) -> float:
        """Probability (0..1) that the crop shows a live face."""
        scores = self._scores(face_bgr)
        live_class = self.spec.thresholds.live_class
        if self.spec.output == "probabilities":
            return float(np.clip(scores[live_class], 0.0, 1.0))
        if scores.size == 1:
            return float(1.0 / (1.0 + np.exp(-scores[0])))
        shifted = np.exp(scores - scores.max())  # softmax without overflow
        return float(shifted[live_class] / shifted.sum())

    def live_probability_in_frame(self, frame_bgr: np.ndarray, box: Box) -> float:
        """The same, for a detected box, cropped as the model expects (``crop_scale``)."""
        return self.live_probability(crop_around(frame_bgr, box, self.spec.crop_scale))

    def is_live(self, probability: float) -> bool:
        return probability >= self.spec.thresholds.live

    def _scores(self, crop: np.ndarray) -> np.ndarray:
        tensor = to_tensor([crop], self.spec.input)
        (raw,) = self._session.run([self._output_name], {self._input_name: tensor})
        return np.asarray(raw, dtype=np.float64).reshape(-1)


def crop_around(frame_bgr: np.ndarray, box: Box, scale: float) -> np.ndarray:
    """The box enlarged ``scale`` times about its centre; black where that passes the edge."""
    check_bgr_image(frame_bgr)
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half_w, half_h = w * scale / 2, h * scale / 2
    left, top = round(cx - half_w), round(cy - half_h)
    right, bottom = round(cx + half_w), round(cy + half_h)
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} is empty")
    height, width = frame_bgr.shape[:2]
    crop = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)
    src_left, src_top = max(left, 0), max(top, 0)
    src_right, src_bottom = min(right, width), min(bottom, height)
    if src_right > src_left and src_bottom > src_top:
        crop[src_top - top : src_bottom - top, src_left - left : src_right - left] = frame_bgr[
            src_top:src_bottom, src_left:src_right
        ]
    return crop
