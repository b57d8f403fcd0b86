"""One camera frame through recognition: detect, pick the face in front, quality, align, embed.

Runs in the face worker thread (onnxruntime releases the GIL); nothing here keeps a frame or a
crop beyond the call, and nothing is written to disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.facepay.quality import QualityReport, QualitySettings, assess, pick_front_face
from models.faces import DetectedFace, FaceDetector, FaceEmbedder, SpoofClassifier, align_face


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    face: DetectedFace | None
    faces: int
    aligned: np.ndarray | None = None
    quality: QualityReport | None = None
    embedding: np.ndarray | None = None
    live_probability: float | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)


class FaceAnalyser:
    def __init__(
        self,
        detector: FaceDetector,
        embedder: FaceEmbedder,
        quality: QualitySettings,
        spoof: SpoofClassifier | None = None,
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.quality = quality
        self.spoof = spoof

    def analyse(self, frame: np.ndarray, *, embed: bool = True) -> FrameAnalysis:
        """``embed=False`` stops after quality (liveness frames need landmarks, not identity)."""
        marks = [time.perf_counter()]
        faces = self.detector.detect(frame)
        marks.append(time.perf_counter())
        face = pick_front_face(faces, frame.shape, box_of=lambda f: f.box)
        if face is None:
            return FrameAnalysis(None, len(faces), stage_ms={"detect": _ms(marks, 0)})
        aligned = align_face(frame, face.landmarks)
        report = assess(frame.shape, face.box, face.landmarks, aligned, self.quality)
        marks.append(time.perf_counter())
        embedding = None
        live = None
        if report.passed and embed:
            embedding = self.embedder.embed(aligned)
            if self.spoof is not None:
                # Cropped as the model asks (crop_scale), not the tight aligned face.
                live = self.spoof.live_probability_in_frame(frame, face.box)
        marks.append(time.perf_counter())
        return FrameAnalysis(
            face,
            len(faces),
            aligned,
            report,
            embedding,
            live,
            {"detect": _ms(marks, 0), "quality": _ms(marks, 1), "embed": _ms(marks, 2)},
        )

    def detect(self, frame: np.ndarray) -> list[DetectedFace]:
        return self.detector.detect(frame)


def _ms(marks: list[float], i: int) -> float:
    return (marks[i + 1] - marks[i]) * 1000.0
