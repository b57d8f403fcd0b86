"""Geometry of a detected face: five landmarks, its box, the ArcFace template, head pose.

Landmarks are YuNet's five points in the pixels of the image they were found in, in this order:
the image-left eye, the image-right eye, the nose tip, the image-left mouth corner and the
image-right mouth corner. A box is ``(x, y, w, h)`` in the same pixels.

Head pose sign conventions (for a camera whose image is *not* mirrored, i.e. the shopper's left
appears on the image's right):

- ``yaw`` > 0: the nose tip sits towards the image-right eye, i.e. the shopper turned to *their*
  left. Unit: the nose's offset from the eye midpoint along the eye line, divided by the
  inter-eye distance, measured parallel to the eyes-to-mouth line (so that shear, which a
  tilted flat photo shows, does not count as a turn). 0 is frontal; a head turned 24 degrees
  reads about 0.25, 30 degrees about 0.32 (nose tip 30 mm in front of the eyes, seen from 45 cm).
- ``roll`` > 0 (degrees): the image-right eye is lower than the image-left eye, i.e. the shopper
  tilted their head towards their left shoulder.
- ``pitch`` > 0: the nose tip moved up towards the eye line, i.e. the chin went up (looking up).
  Unit: ``(nose-to-mouth - eyes-to-nose) / eyes-to-mouth`` along the eyes-to-mouth line, minus
  the same value for the ArcFace template, so a frontal face gives about 0 (YuNet's nose point
  sits a little lower than the template's: its frontal faces read about -0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from models.align import ARCFACE_TEMPLATE as _TEMPLATE
from models.align import TEMPLATE_SIZE
from models.align import align_face as align_face  # the one alignment, re-exported

Box = tuple[float, float, float, float]
"""``(x, y, w, h)`` in image pixels."""

Points = NDArray[np.float64]

LEFT_EYE, RIGHT_EYE, NOSE, LEFT_MOUTH, RIGHT_MOUTH = range(5)

# One alignment in the project: the recognizer's (models.align), so liveness and quality look
# at exactly the crop that is embedded.
ARCFACE_SIZE: Final = TEMPLATE_SIZE
"""Side of the aligned crop the recognizer takes, in pixels."""
ARCFACE_TEMPLATE: Final[Points] = _TEMPLATE.astype(np.float64)
"""Where the five landmarks land in a 112 x 112 aligned crop (the standard ArcFace template)."""


class InvalidFaceInput(ValueError):
    """Landmarks, a box or a face crop that cannot describe a face (wrong shape, not finite)."""


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head pose from five 2-D landmarks; see the module docstring for units and signs."""

    yaw: float
    pitch: float
    roll: float


def as_landmarks(landmarks: NDArray[np.floating] | NDArray[np.integer]) -> Points:
    """Landmarks as a (5, 2) float64 array, or :class:`InvalidFaceInput` saying what is wrong."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise InvalidFaceInput(
            f"face landmarks have shape {points.shape}, expected (5, 2): pass the detector's "
            "five points (eyes, nose tip, mouth corners) in frame pixels"
        )
    if not np.all(np.isfinite(points)):
        raise InvalidFaceInput("face landmarks contain NaN or infinity: drop this detection")
    if float(np.hypot(*(points[RIGHT_EYE] - points[LEFT_EYE]))) < 1e-6:
        raise InvalidFaceInput("both eye landmarks are at the same point: drop this detection")
    return points


def as_box(box: Box | tuple[float, ...] | NDArray[np.floating]) -> Box:
    """A box as four floats, or :class:`InvalidFaceInput` saying what is wrong."""
    values = [float(v) for v in np.asarray(box, dtype=np.float64).ravel()]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidFaceInput(f"face box {box!r} is not four finite numbers (x, y, w, h)")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise InvalidFaceInput(f"face box {box!r} has no area: width and height must be > 0")
    return x, y, w, h


def as_grey_crop(aligned: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The aligned crop in grey; it must be a square uint8 BGR (or grey) image."""
    crop = np.asarray(aligned)
    square = crop.ndim in (2, 3) and crop.shape[0] == crop.shape[1] and crop.shape[0] >= 32
    if crop.dtype != np.uint8 or not square or (crop.ndim == 3 and crop.shape[2] != 3):
        raise InvalidFaceInput(
            f"aligned face crop has shape {crop.shape} and dtype {crop.dtype}: expected a square "
            f"uint8 BGR image such as ({ARCFACE_SIZE}, {ARCFACE_SIZE}, 3)"
        )
    if crop.ndim == 2:
        return crop
    return np.asarray(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def inter_eye_distance(landmarks: NDArray[np.floating]) -> float:
    points = as_landmarks(landmarks)
    return float(np.hypot(*(points[RIGHT_EYE] - points[LEFT_EYE])))


def _face_axes(points: Points) -> tuple[Points, Points, float]:
    """Unit vectors along the eye line (image-left to image-right eye) and down the face."""
    eye_line = points[RIGHT_EYE] - points[LEFT_EYE]
    eye_distance = float(np.hypot(*eye_line))
    across = eye_line / eye_distance
    # A quarter turn clockwise in image coordinates (y grows downwards): from the eyes to the chin.
    down = np.array([-across[1], across[0]])
    return across, down, eye_distance


def _nose_in_face_frame(points: Points) -> tuple[float, float]:
    """The nose tip in the face's own frame: ``(across, down)`` such that
    ``nose = eye_mid + across * eye_line + down * (mouth_mid - eye_mid)``.

    Both numbers survive any affine change of the picture (rotation, scale, shear), so a flat
    photo tilted or turned in front of the camera keeps them, up to perspective. A real head
    turning moves its protruding nose tip across the face and changes ``across``.
    """
    eye_mid = (points[LEFT_EYE] + points[RIGHT_EYE]) / 2
    mouth_mid = (points[LEFT_MOUTH] + points[RIGHT_MOUTH]) / 2
    frame = np.column_stack([points[RIGHT_EYE] - points[LEFT_EYE], mouth_mid - eye_mid])
    if abs(float(np.linalg.det(frame))) < 1e-9 * float(np.abs(frame).max()) ** 2:
        # The mouth lies on the eye line: no face pose makes sense, call it maximally turned.
        return math.inf, math.inf
    across, down = np.linalg.solve(frame, points[NOSE] - eye_mid)
    return float(across), float(down)


_TEMPLATE_NOSE_DOWN: Final = _nose_in_face_frame(ARCFACE_TEMPLATE)[1]


def head_pose(landmarks: NDArray[np.floating]) -> HeadPose:
    """Yaw, pitch and roll of a face from its five landmarks (conventions: module docstring).

    Yaw and pitch are the nose tip's place in the face's own frame (spanned by the eye line and
    the eyes-to-mouth line), so a flat picture keeps them however it is turned or tilted in
    front of the camera (perspective moves them by a few hundredths), while a real head turning
    swings its protruding nose tip across the face.
    """
    points = as_landmarks(landmarks)
    across, down = _nose_in_face_frame(points)
    eye_line = points[RIGHT_EYE] - points[LEFT_EYE]
    roll = math.degrees(math.atan2(float(eye_line[1]), float(eye_line[0])))
    # Down the face, 0.5 is the nose half-way between eyes and mouth: nearer the eyes, chin up.
    return HeadPose(yaw=across, pitch=2 * (_TEMPLATE_NOSE_DOWN - down), roll=roll)


def face_shape(landmarks: NDArray[np.floating]) -> Points:
    """The landmarks with position, scale and in-plane rotation taken out (eye-distance units).

    Two frames of the same rigid, unmoving face give the same shape whatever the face's place
    and size in the frame; any change means something in the face moved.
    """
    points = as_landmarks(landmarks)
    across, down, eye_distance = _face_axes(points)
    eye_mid = (points[LEFT_EYE] + points[RIGHT_EYE]) / 2
    centred = points - eye_mid
    return np.stack([centred @ across, centred @ down], axis=1) / eye_distance


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when either has no area)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    overlap_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    overlap_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    overlap = overlap_w * overlap_h
    union = max(aw, 0.0) * max(ah, 0.0) + max(bw, 0.0) * max(bh, 0.0) - overlap
    return overlap / union if union > 0 else 0.0
