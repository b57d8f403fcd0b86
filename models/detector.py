"""Face detection with YuNet (2023mar): boxes, five landmarks and a score per face.

The network takes a fixed 640x640 BGR image (raw 0..255 values). A frame of any size is
scaled to fit (aspect kept) into the top-left corner of a black 640x640 canvas; results are
divided by that scale to return to frame pixels. Decoding follows OpenCV's
``FaceDetectorYN::postProcess``: for each stride s in 8, 16, 32 the network gives, per cell
(row r, column c) of a (640/s)² grid, class and objectness scores, a box (dx, dy, log w,
log h) and five landmark offsets, all in units of s relative to the cell's corner:

    score = sqrt(clip(cls, 0, 1) * clip(obj, 0, 1))
    centre = ((c + dx) * s, (r + dy) * s), size = (exp(log w) * s, exp(log h) * s)
    landmark k = ((c + kx_k) * s, (r + ky_k) * s)

then non-maximum suppression (``cv2.dnn.NMSBoxes``) with the NMS IoU threshold. The tests
check this against ``cv2.FaceDetectorYN`` on the original model file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from models.errors import ModelLoadError
from models.images import check_bgr_image
from models.runtime import open_session

STRIDES = (8, 16, 32)
DEFAULT_INPUT_SIZE = 640
"""Used when the model's input size is dynamic."""
TOP_K = 5000
"""Candidates kept before NMS (as OpenCV's default)."""

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DetectedFace:
    box: tuple[float, float, float, float]
    """x, y, width, height in frame pixels (may reach past the frame's edge)."""
    landmarks: FloatArray
    """(5, 2) float32 frame pixels: image-left eye, image-right eye, nose tip, image-left
    mouth corner, image-right mouth corner."""
    score: float


class FaceDetector:
    """YuNet on onnxruntime; ``detect`` returns faces best first."""

    def __init__(
        self,
        model_path: Path,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        threads: int = 1,
    ) -> None:
        if not 0 < score_threshold < 1 or not 0 < nms_threshold < 1:
            raise ValueError("score_threshold and nms_threshold must lie between 0 and 1")
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._session = open_session(model_path, threads=threads)
        inputs = self._session.get_inputs()
        outputs = [output.name for output in self._session.get_outputs()]
        wanted = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        missing = [name for name in wanted if name not in outputs]
        if missing or len(inputs) != 1 or len(inputs[0].shape) != 4:
            lacks = f"the outputs {', '.join(missing)}" if missing else "one 4-D image input"
            raise ModelLoadError(
                f"model file {model_path} is not a YuNet face detector (it lacks {lacks}): "
                "give a YuNet 2023mar model"
            )
        self._input_name = inputs[0].name
        self._output_names = wanted
        height, width = inputs[0].shape[2:4]
        self.input_width = width if isinstance(width, int) else DEFAULT_INPUT_SIZE
        self.input_height = height if isinstance(height, int) else DEFAULT_INPUT_SIZE
        # Each grid cell's (column, row), precomputed once per stride.
        self._cells = {s: _grid(self.input_width // s, self.input_height // s) for s in STRIDES}

    def detect(self, frame_bgr: np.ndarray) -> list[DetectedFace]:
        """Faces in a BGR frame of any size, highest score first."""
        check_bgr_image(frame_bgr)
        blob, scale = self._letterbox(frame_bgr)
        outputs = self._session.run(self._output_names, {self._input_name: blob})
        by_name = dict(zip(self._output_names, outputs, strict=True))
        boxes, landmarks, scores = self._decode(by_name)
        if scores.size == 0:
            return []
        keep = self._suppress(boxes, scores)
        boxes = boxes[keep] / scale
        landmarks = landmarks[keep] / scale
        return [
            DetectedFace(
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                landmarks=np.ascontiguousarray(marks, dtype=np.float32),
                score=float(score),
            )
            for b, marks, score in zip(boxes, landmarks, scores[keep], strict=True)
        ]

    def _letterbox(self, frame: np.ndarray) -> tuple[FloatArray, float]:
        """The frame scaled into the top-left of a black input canvas, as NCHW float32."""
        height, width = frame.shape[:2]
        scale = min(self.input_width / width, self.input_height / height)
        new_w = min(self.input_width, max(1, round(width * scale)))
        new_h = min(self.input_height, max(1, round(height * scale)))
        if (new_w, new_h) != (width, height):
            # INTER_AREA averages when shrinking (no aliasing); enlarging wants interpolation.
            method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (new_w, new_h), interpolation=method)
        blob = np.zeros((1, 3, self.input_height, self.input_width), dtype=np.float32)
        blob[0, :, :new_h, :new_w] = frame.transpose(2, 0, 1)
        # The exact per-axis scale would differ by rounding only; one factor keeps boxes square.
        return blob, scale

    def _decode(self, out: dict[str, np.ndarray]) -> tuple[FloatArray, FloatArray, FloatArray]:
        boxes, landmarks, scores = [], [], []
        for stride in STRIDES:
            cls = np.clip(out[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
            obj = np.clip(out[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = np.flatnonzero(score >= self.score_threshold)
            if keep.size == 0:
                continue
            cells = self._cells[stride][keep]
            bbox = out[f"bbox_{stride}"].reshape(-1, 4)[keep]
            centre = (cells + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:]) * stride
            boxes.append(np.concatenate([centre - size / 2, size], axis=1))
            kps = out[f"kps_{stride}"].reshape(-1, 5, 2)[keep]
            landmarks.append((kps + cells[:, None, :]) * stride)
            scores.append(score[keep])
        if not scores:
            empty = np.zeros((0,), dtype=np.float32)
            return empty.reshape(0, 4), empty.reshape(0, 5, 2), empty
        return (
            np.concatenate(boxes).astype(np.float32),
            np.concatenate(landmarks).astype(np.float32),
            np.concatenate(scores).astype(np.float32),
        )

    def _suppress(self, boxes: FloatArray, scores: FloatArray) -> npt.NDArray[np.intp]:
        """Indices kept by NMS, best score first."""
        kept = cv2.dnn.NMSBoxes(
            boxes.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold, 1.0, TOP_K
        )
        keep = np.asarray(kept, dtype=np.intp).reshape(-1)
        return keep[np.argsort(-scores[keep], kind="stable")]


def _grid(columns: int, rows: int) -> FloatArray:
    """(rows * columns, 2) array of each cell's (column, row), in the network's order."""
    cols, rows_ = np.meshgrid(np.arange(columns), np.arange(rows))
    return np.stack([cols.ravel(), rows_.ravel()], axis=1).astype(np.float32)
