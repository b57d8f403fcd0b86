"""The face quality gate: is this detection good enough to recognise, and which face is in front.

A face is recognised only when it is big enough, sharp, roughly frontal and well exposed; a
rejected face comes with stable reason codes the kiosk turns into words ("come closer", "look at
the camera", ...). Sharpness and exposure are measured on the inner face of the aligned crop, so
background and hair do not count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.facepay.landmarks import (
    ARCFACE_SIZE,
    Box,
    HeadPose,
    as_box,
    as_grey_crop,
    as_landmarks,
    head_pose,
    inter_eye_distance,
)

__all__ = [
    "DEFAULT_QUALITY",
    "HeadPose",
    "QualityReason",
    "QualityReport",
    "QualitySettings",
    "assess",
    "head_pose",
    "inner_face",
    "pick_front_face",
    "sharpness",
]

T = TypeVar("T")

# The inner face of a 112 x 112 ArcFace crop: brows to chin, cheek to cheek (no background).
_INNER_FACE: Final = (slice(28, 106), slice(20, 92))

# A face in a frame corner counts for this fraction less than the same face in the centre.
_CENTRE_WEIGHT: Final = 0.5


class QualityReason(StrEnum):
    """Why a face was rejected; stable codes for the kiosk and the logs."""

    TOO_SMALL = "too_small"
    CUT_OFF = "cut_off"
    BLURRY = "blurry"
    TURNED = "turned"
    PITCHED = "pitched"
    TILTED = "tilted"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """Limits of the quality gate (the units are in each field's description)."""

    min_eye_distance_px: float = 28.0
    """Distance between the eye landmarks in frame pixels; the template has 35."""
    min_box_px: float = 64.0
    """The face box's shorter side in frame pixels."""
    min_inside_fraction: float = 0.9
    """Fraction of the face box's area that must lie inside the frame."""
    min_sharpness: float = 25.0
    """Variance of the Laplacian of the grey inner face of the aligned crop (grey levels^2)."""
    max_abs_yaw: float = 0.15
    """Head turn, in the normalised unit of :func:`head_pose` (about 15 degrees)."""
    max_abs_pitch: float = 0.4
    """Looking up or down, in the normalised unit of :func:`head_pose` (about 15 degrees down
    or 25 up: a camera above the screen sees shoppers looking down)."""
    max_abs_roll_deg: float = 15.0
    """Head tilt towards a shoulder, degrees."""
    min_brightness: float = 50.0
    """Mean grey level (0-255) of the inner face."""
    max_brightness: float = 210.0
    """Mean grey level (0-255) of the inner face."""
    dark_level: int = 15
    """A grey level at or below this is clipped black."""
    bright_level: int = 245
    """A grey level at or above this is clipped white."""
    max_clipped_fraction: float = 0.2
    """Fraction of the inner face allowed to be clipped black (or, separately, white)."""


DEFAULT_QUALITY: Final = QualitySettings()


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The gate's decision and everything it measured."""

    passed: bool
    reasons: tuple[QualityReason, ...]
    eye_distance_px: float
    box_px: float
    """The face box's shorter side, frame pixels."""
    inside_fraction: float
    sharpness: float
    pose: HeadPose
    brightness: float
    dark_fraction: float
    bright_fraction: float


def _inside_fraction(frame_shape: tuple[int, ...], box: Box) -> float:
    frame_h, frame_w = frame_shape[:2]
    x, y, w, h = box
    inside_w = max(0.0, min(x + w, frame_w) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, frame_h) - max(y, 0.0))
    return inside_w * inside_h / (w * h)


def inner_face(aligned: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The grey inner face of an aligned crop (any square size, scaled from the 112 template)."""
    grey = as_grey_crop(aligned)
    scale = grey.shape[0] / ARCFACE_SIZE
    rows, cols = _INNER_FACE
    return grey[
        round(rows.start * scale) : round(rows.stop * scale),
        round(cols.start * scale) : round(cols.stop * scale),
    ]


def sharpness(aligned: NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of the grey inner face: high for crisp edges, low for blur."""
    face = inner_face(aligned)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


def assess(
    frame_shape: tuple[int, ...],
    box: Box,
    landmarks: NDArray[np.floating],
    aligned: NDArray[np.uint8],
    settings: QualitySettings = DEFAULT_QUALITY,
) -> QualityReport:
    """Measure one detected face and decide whether it is good enough to recognise."""
    face_box = as_box(box)
    points = as_landmarks(landmarks)
    eye_distance = inter_eye_distance(points)
    box_px = min(face_box[2], face_box[3])
    inside = _inside_fraction(frame_shape, face_box)
    sharp = sharpness(aligned)
    pose = head_pose(points)
    face = inner_face(aligned)
    brightness = float(face.mean())
    dark = float(np.count_nonzero(face <= settings.dark_level)) / face.size
    bright = float(np.count_nonzero(face >= settings.bright_level)) / face.size

    reasons: list[QualityReason] = []
    if eye_distance < settings.min_eye_distance_px or box_px < settings.min_box_px:
        reasons.append(QualityReason.TOO_SMALL)
    if inside < settings.min_inside_fraction:
        reasons.append(QualityReason.CUT_OFF)
    if sharp < settings.min_sharpness:
        reasons.append(QualityReason.BLURRY)
    if abs(pose.yaw) > settings.max_abs_yaw:
        reasons.append(QualityReason.TURNED)
    if abs(pose.pitch) > settings.max_abs_pitch:
        reasons.append(QualityReason.PITCHED)
    if abs(pose.roll) > settings.max_abs_roll_deg:
        reasons.append(QualityReason.TILTED)
    if brightness < settings.min_brightness or dark > settings.max_clipped_fraction:
        reasons.append(QualityReason.TOO_DARK)
    if brightness > settings.max_brightness or bright > settings.max_clipped_fraction:
        reasons.append(QualityReason.TOO_BRIGHT)
    return QualityReport(
        passed=not reasons,
        reasons=tuple(reasons),
        eye_distance_px=eye_distance,
        box_px=box_px,
        inside_fraction=inside,
        sharpness=sharp,
        pose=pose,
        brightness=brightness,
        dark_fraction=dark,
        bright_fraction=bright,
    )


def _box_attribute(face: Any) -> Box:
    box: Box = face.box
    return box


def pick_front_face(
    faces: Sequence[T],
    frame_shape: tuple[int, ...],
    box_of: Callable[[T], Box] = _box_attribute,
) -> T | None:
    """The face of the shopper in front of the terminal: the largest, preferring the centre.

    Each face scores the square root of its box area, reduced by up to half as its centre moves
    from the frame's centre to a corner; the best score wins (None when there are no faces). A
    big face at the edge can still beat a tiny one in the middle: the closest person is in front.
    """
    frame_h, frame_w = frame_shape[:2]
    half_diagonal = math.hypot(frame_w, frame_h) / 2
    best: T | None = None
    best_score = -math.inf
    for face in faces:
        x, y, w, h = box_of(face)
        size = math.sqrt(max(w, 0.0) * max(h, 0.0))
        off_centre = math.hypot(x + w / 2 - frame_w / 2, y + h / 2 - frame_h / 2) / half_diagonal
        score = size * (1 - _CENTRE_WEIGHT * min(off_centre, 1.0))
        if score > best_score:
            best, best_score = face, score
    return best
