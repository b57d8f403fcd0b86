"""The face models' public API, and loading all of them from the prepared cache at once.

``FaceDetector`` (YuNet) finds faces and their five landmarks, ``align_face`` warps one onto
the ArcFace template, ``FaceEmbedder`` (SFace) turns the crop into a unit vector whose dot
product with another is their cosine similarity, and ``SpoofClassifier`` is the optional
anti-spoofing role. ``load_face_models`` builds them from files ``models.prepare`` made.

Once built, these objects are not changed by use, and onnxruntime sessions may be run from
several threads at once, so one set can serve an executor. Each call blocks for its inference
(~10 ms detection, ~26 ms embedding on one core): keep it off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.align import ARCFACE_TEMPLATE, align_face
from models.antispoof import SpoofClassifier, crop_around
from models.detector import DetectedFace, FaceDetector
from models.embedder import FaceEmbedder
from models.manifest import AntispoofSpec, DetectorSpec, Manifest, RecognizerSpec, load_manifest
from models.prepare import load_prepared

__all__ = [
    "ARCFACE_TEMPLATE",
    "DetectedFace",
    "FaceDetector",
    "FaceEmbedder",
    "FaceModels",
    "SpoofClassifier",
    "align_face",
    "crop_around",
    "load_face_models",
]


@dataclass(frozen=True, slots=True)
class FaceModels:
    """The loaded networks with the specs (and so the default thresholds) they came from."""

    detector: FaceDetector
    embedder: FaceEmbedder
    spoof: SpoofClassifier | None
    detector_spec: DetectorSpec
    recognizer_spec: RecognizerSpec
    antispoof_spec: AntispoofSpec | None

    def embed_face(self, frame_bgr: np.ndarray, face: DetectedFace) -> npt.NDArray[np.float32]:
        """Align a detected face of ``frame_bgr`` and embed it."""
        size = self.recognizer_spec.input.width
        return self.embedder.embed(align_face(frame_bgr, face.landmarks, size))


def load_face_models(
    cache_dir: Path,
    manifest: Manifest | None = None,
    threads: int = 1,
    *,
    detector: str | None = None,
    recognizer: str | None = None,
    antispoof: str | None = None,
) -> FaceModels:
    """Open the manifest's detector, recognizer and (if any) anti-spoofing model.

    Each prepared file is verified against its sidecar first (``ModelNotPrepared``,
    ``ModelCorrupt``); ``manifest`` None is the shipped one. A manifest with several models of a
    role needs the one to use named (``ManifestError`` otherwise).
    """
    manifest = manifest or load_manifest()
    detector_spec = manifest.detector(detector)
    recognizer_spec = manifest.recognizer(recognizer)
    antispoof_spec = manifest.antispoof(antispoof)

    def prepared(spec: DetectorSpec | RecognizerSpec | AntispoofSpec) -> Path:
        return load_prepared(cache_dir, spec.name, source_sha256=spec.source.sha256).path

    face_detector = FaceDetector(
        prepared(detector_spec),
        score_threshold=detector_spec.thresholds.score,
        nms_threshold=detector_spec.thresholds.nms,
        threads=threads,
    )
    embedder = FaceEmbedder(prepared(recognizer_spec), recognizer_spec.input, threads=threads)
    spoof = None
    if antispoof_spec is not None:
        spoof = SpoofClassifier(prepared(antispoof_spec), antispoof_spec, threads=threads)
    return FaceModels(
        detector=face_detector,
        embedder=embedder,
        spoof=spoof,
        detector_spec=detector_spec,
        recognizer_spec=recognizer_spec,
        antispoof_spec=antispoof_spec,
    )
