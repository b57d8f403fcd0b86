"""Face alignment: warp a face onto the standard ArcFace 5-point template.

Recognition networks (SFace, ArcFace) are trained on 112x112 crops in which the eyes, nose tip
and mouth corners sit at fixed places; a least-squares similarity transform (rotation, uniform
scale, translation; Umeyama's method, as OpenCV's ``FaceRecognizerSF::alignCrop``) maps the
detected landmarks onto those places.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from models.images import check_bgr_image

ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # image-left eye
        [73.5318, 51.5014],  # image-right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # image-left mouth corner
        [70.7299, 92.2041],  # image-right mouth corner
    ],
    dtype=np.float64,
)
"""Landmark positions in a 112x112 aligned crop."""

TEMPLATE_SIZE = 112


def template_for(size: int) -> npt.NDArray[np.float64]:
    """The template scaled to a ``size`` x ``size`` crop."""
    return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)


def similarity_transform(source: npt.ArrayLike, target: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The 2x3 similarity matrix that best maps ``source`` points onto ``target`` points."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    # Reflections are not allowed: a mirrored face is another face.
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = float((singular * d).sum() / variance) if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(frame_bgr: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """The face whose five landmarks are given, warped to a ``(size, size, 3)`` uint8 crop."""
    check_bgr_image(frame_bgr)
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2), not {points.shape}")
    if size < 16:
        raise ValueError(f"aligned crop size must be at least 16 pixels, not {size}")
    matrix = similarity_transform(points, template_for(size))
    return cv2.warpAffine(
        frame_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
