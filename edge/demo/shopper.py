"""A simulated shopper in front of a face camera: a real photo that turns and blinks on request.

For the demo and the tests: the frames go to the camera simulator (``drivers.camera.simulator``),
so the whole path (camera, detector, liveness, gallery) sees what it would see of a person.

- A turn warps the photo as a head turning about its vertical axis would look: the face is a
  smooth dome with a nose on it, rotated, so the nose swings across while the far cheek
  narrows. (Shifting the nose alone does not fool the detector into seeing a turn.) The angle is
  calibrated once against the real detector, so the landmarks it finds really read as turned.
- A blink paints the eyelids shut over a few frames.
- Every frame gets fresh sensor noise: a live camera never repeats a frame bit for bit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from edge.facepay.landmarks import head_pose, inter_eye_distance
from models.detector import FaceDetector

# Yaw (landmark units) a calibrated turn reaches: well past the liveness turn threshold (0.25).
TARGET_YAW = 0.32
TURN_SECONDS = 1.2
BLINK_SECONDS = 0.25


class ShopperPhoto:
    """The photo, its face, and the warped versions of it (computed once)."""

    def __init__(self, photo: np.ndarray, detector: FaceDetector) -> None:
        faces = detector.detect(photo)
        if not faces:
            raise ValueError("the photo shows no face")
        face = faces[0]
        self.photo = photo
        self.landmarks = face.landmarks.astype(np.float64)
        self.eye_distance = inter_eye_distance(face.landmarks)
        self.frontal = photo
        self.closed = close_eyes(photo, face.landmarks)
        self.yaw: dict[str, float] = {}
        """The yaw the detector reads on each calibrated turn."""
        self.turned = {
            side: self._calibrated_turn(detector, side) for side in ("turn_left", "turn_right")
        }

    def _calibrated_turn(self, detector: FaceDetector, side: str) -> np.ndarray:
        """The warp whose detected yaw goes furthest to that side (past a point the warp folds
        and the detector stops following), first reaching ``TARGET_YAW`` if any does."""
        sign = 1.0 if side == "turn_left" else -1.0  # the shopper's left: nose to image-right
        best, best_yaw = self.photo, 0.0
        for degrees in range(20, 61, 5):
            frame = self.turn(sign * degrees)
            faces = detector.detect(frame)
            yaw = sign * head_pose(faces[0].landmarks).yaw if faces else 0.0
            if yaw > best_yaw:
                best, best_yaw = frame, yaw
            if yaw >= TARGET_YAW:
                break
        self.yaw[side] = best_yaw
        return best

    def turn(self, degrees: float) -> np.ndarray:
        lm = self.landmarks
        ed = self.eye_distance
        cx, cy = (lm[0, 0] + lm[1, 0]) / 2, (lm[0, 1] + lm[4, 1]) / 2
        a, b = 1.3 * ed, 1.7 * ed
        nose_x, nose_y = lm[2]
        theta = math.radians(degrees)
        h, w = self.photo.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)

        def displacement(x: np.ndarray) -> np.ndarray:
            r2 = ((x - cx) / a) ** 2 + ((ys - cy) / b) ** 2
            depth = ed * np.exp(-(r2**2) / 1.5)
            depth += (
                0.5
                * ed
                * np.exp(-((x - nose_x) ** 2 + ((ys - nose_y) * 0.8) ** 2) / (2 * (0.25 * ed) ** 2))
            )
            weight = np.exp(-(r2**3) / 3)
            shift: np.ndarray = weight * (
                (x - cx) * (math.cos(theta) - 1) + depth * math.sin(theta)
            )
            return shift

        source = xs.copy()
        for _ in range(10):  # invert x -> x + d(x) by fixed-point iteration
            source = xs - displacement(source)
        return cv2.remap(
            self.photo,
            source.astype(np.float32),
            ys.astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )


def close_eyes(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Eyelids painted shut: skin from just above each eye over the eye, a dark lash line."""
    eye_distance = inter_eye_distance(landmarks)
    out = frame.astype(np.float32)
    for cx, cy in landmarks[:2].astype(np.float64):
        half_w, half_h = 0.27 * eye_distance, 0.13 * eye_distance
        above = frame[
            round(cy - 0.25 * eye_distance) : round(cy - 0.10 * eye_distance),
            round(cx - half_w / 2) : round(cx + half_w / 2),
        ].reshape(-1, 3)
        brightness = above.mean(axis=1)  # the brighter part of the band: skin, not brows
        skin = np.median(above[brightness >= np.percentile(brightness, 60)], axis=0)
        lid = np.zeros(frame.shape[:2], np.float32)
        cv2.ellipse(lid, (round(cx), round(cy)), (round(half_w), round(half_h)), 0, 0, 360, 1.0, -1)
        soft = cv2.GaussianBlur(lid, (0, 0), 0.03 * eye_distance)[..., None]
        out = out * (1 - soft) + skin * soft
        lashes = (round(cx), round(cy + 0.03 * eye_distance))
        axes = (round(0.85 * half_w), round(0.5 * half_h))
        thickness = max(1, round(0.025 * eye_distance))
        cv2.ellipse(out, lashes, axes, 0, 15, 165, (40, 40, 50), thickness, cv2.LINE_AA)
    return np.clip(out, 0, 255).astype(np.uint8)


class SimulatedShopper:
    """What the camera sees, frame by frame: a frame source for the camera simulator.

    ``act(step)`` makes the shopper do a challenge step (``blink``, ``turn_left``,
    ``turn_right``) from now on, then look straight again; ``leave()`` empties the picture.
    """

    def __init__(
        self,
        photo: ShopperPhoto,
        *,
        seed: int = 0,
        noise_sigma: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.photo = photo
        self._rng = np.random.default_rng(seed)
        self._sigma = noise_sigma
        self._clock = clock
        self._lock = threading.Lock()
        self._action: tuple[str, float] | None = None
        self._present = True
        self.blank = np.full_like(photo.photo, 80)

    def act(self, step: str) -> None:
        with self._lock:
            self._action = (step, self._clock())

    def leave(self) -> None:
        with self._lock:
            self._present = False

    def __call__(self, _index: int) -> np.ndarray:
        with self._lock:
            action, present = self._action, self._present
        if not present:
            picture = self.blank
        else:
            picture = self.photo.frontal
            if action is not None:
                step, since = action
                elapsed = self._clock() - since
                if step == "blink" and elapsed < BLINK_SECONDS:
                    picture = self.photo.closed
                elif step in self.photo.turned and elapsed < TURN_SECONDS:
                    picture = self.photo.turned[step]
        noise = self._rng.normal(0.0, self._sigma, picture.shape)
        return np.clip(picture + noise, 0, 255).astype(np.uint8)
