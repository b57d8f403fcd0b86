"""``edge bench facepay``: recognition per frame, and the 1:N search against faiss.

- ``frame_ms``: one camera frame (640x480, a real photo of a face, moved, lit and noised a little
  differently each time) from pixels to decision: detection, picking the face in front, the
  quality gate, alignment, embedding, the gallery search and the decision; with galleries of
  10,000 and 100,000 members (random unit templates plus the photographed member, who must be
  the decision every time). Not the seconds a person takes for a liveness challenge.
- ``search_1m_ms``: one 1:N search of 1,000,000 members; ``faiss_1m_ms``: faiss-cpu's exact
  ``IndexFlatIP`` on the same data, timed query by query alternating with ours; ``ratio`` is
  ours over faiss, at the median.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench.facepay_search import measure_search
from edge.bench.report import emit, machine, percentiles, progress
from edge.demo.photos import load_photo
from edge.facepay.analysis import FaceAnalyser
from edge.facepay.decision import Outcome, Thresholds, decide
from edge.facepay.gallery import Gallery
from edge.facepay.quality import QualitySettings
from models.faces import load_face_models
from models.prepare import prepare_models

GALLERY_SIZES = (10_000, 100_000)
THREADS = 2
FRAME_SIZE = (640, 480)


def camera_frames(photo: np.ndarray, count: int, seed: int = 0) -> list[np.ndarray]:
    """The photo as a 640x480 camera would see it, a little different in every frame."""
    rng = np.random.default_rng(seed)
    width, height = FRAME_SIZE
    scale = 0.8 * height / photo.shape[0]
    base = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frames = []
    for _ in range(count):
        canvas = np.full((height, width, 3), 90, np.uint8)
        dx = int(rng.integers(0, width - base.shape[1]))
        dy = int(rng.integers(0, height - base.shape[0]))
        canvas[dy : dy + base.shape[0], dx : dx + base.shape[1]] = base
        gain = rng.uniform(0.85, 1.15)
        noise = rng.normal(0.0, 3.0, canvas.shape)
        frames.append(np.clip(canvas * gain + noise, 0, 255).astype(np.uint8))
    return frames


def measure_frames(
    analyser: FaceAnalyser,
    frames: list[np.ndarray],
    member: np.ndarray,
    size: int,
    thresholds: Thresholds,
) -> tuple[list[float], int]:
    rng = np.random.default_rng(size)
    gallery = Gallery(member.shape[0], threads=THREADS)
    chunk = 50_000
    for start in range(0, size - 1, chunk):
        rows = rng.standard_normal((min(chunk, size - 1 - start), member.shape[0]), np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        gallery.bulk_load([f"random-{start + i}" for i in range(rows.shape[0])], rows)
    gallery.upsert("photographed", member)
    analyser.analyse(frames[0])  # the first run warms the sessions up: not timed
    gallery.search(member, k=8, floor=0.0)
    times: list[float] = []
    right = 0
    for frame in frames:
        started = time.perf_counter()
        analysis = analyser.analyse(frame)
        decision = None
        if analysis.embedding is not None:
            decision = decide(gallery.search(analysis.embedding, k=8, floor=0.0), thresholds)
        times.append((time.perf_counter() - started) * 1e3)
        if decision is not None and decision.member_id == "photographed":
            right += decision.outcome is Outcome.MATCH
        progress(len(times), len(frames), f"face frames, {size:,} members")
    return times, right


def run_facepay_bench(frames: int, search_members: int) -> int:
    with tempfile.TemporaryDirectory(prefix="edge-bench-models-") as cache:
        prepare_models(Path(cache))
        models = load_face_models(Path(cache), threads=THREADS)
    thresholds_spec = models.recognizer_spec.thresholds
    thresholds = Thresholds(
        match=thresholds_spec.match,
        margin=thresholds_spec.margin,
        candidate=thresholds_spec.candidate,
        phone_digits_above=1_000_000,
    )
    analyser = FaceAnalyser(models.detector, models.embedder, QualitySettings())
    photo = load_photo("grace_hopper")
    enrolment = analyser.analyse(camera_frames(photo, 1, seed=99)[0])
    if enrolment.embedding is None:
        raise RuntimeError("the benchmark photo gave no usable face")
    sample = camera_frames(photo, frames)
    frame_ms: dict[str, Any] = {}
    decided_right: dict[str, str] = {}
    for size in GALLERY_SIZES:
        times, right = measure_frames(analyser, sample, enrolment.embedding, size, thresholds)
        frame_ms[str(size)] = percentiles(times)
        decided_right[str(size)] = f"{right}/{len(sample)}"
    search = measure_search(search_members, progress=progress)
    result: dict[str, Any] = {
        "bench": "facepay",
        "machine": machine(),
        "frame_ms": frame_ms,
        "frame_measured": f"{len(sample)} 640x480 frames of a real photo per gallery size; "
        "detect + quality + align + embed + search + decide; onnxruntime threads="
        f"{THREADS}",
        "frames_decided_right": decided_right,
        "search_1m_ms": search["search_ms"],
        "faiss_1m_ms": search["faiss_ms"],
        "ratio": search["ratio"],
        "search_members": search_members,
        "search_agree_with_faiss": search["agree"],
        "bytes_per_member": search["bytes_per_member"],
        "faiss_threads": search["faiss_threads"],
    }
    emit(result)
    return 0
