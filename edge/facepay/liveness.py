"""Liveness: a randomised active challenge across camera frames, and the near-infrared check.

No anti-spoofing model ships on PyPI, so a face counts as live when:

1. it does what the kiosk asks, in a random order the attacker cannot know in advance: blink,
   turn to the shopper's left, turn to their right (:class:`ActiveChallenge`); and
2. where the terminal has a near-infrared camera, the face also appears in the NIR frame where
   the colour frame has it (:func:`nir_confirms`): a phone or tablet screen emits no NIR light.

What the challenge checks, frame by frame, and the reason code when it fails:

- before each step the face is frontal with the eyes open (``not_frontal``), and after each step
  it comes back to frontal within ``return_timeout_s`` (``not_back_to_frontal``);
- the action happens within ``step_timeout_s`` of the prompt (``challenge_timeout``, or
  ``no_motion`` when nothing at all moved: a still photo), but not sooner than
  ``min_reaction_s`` (``early_action``: a clip that was already turning);
- the wrong action fails at once (``wrong_action``: the other side, or a turn when asked to
  blink). A blink while asked to turn does not: people blink without meaning to;
- the face stays where it was between frames (``face_changed``: a cut to another face), is not
  lost for long (``face_lost``), and every step is seen in enough frames (``too_few_frames``);
- no aligned crop comes back at a non-adjacent frame (``replayed_frames``): a looped video's
  decoded frames repeat bit for bit, a live camera's sensor noise never does.

A turn is measured by the yaw of :func:`edge.facepay.landmarks.head_pose`: a real head swings
its protruding nose tip across the face, while a flat photo turned or tilted even 40 degrees in
front of the camera keeps the nose where it is within the face's own (sheared) frame: exact
landmarks move by a few hundredths of the eye distance, YuNet's by under 0.2, below
``turn_min_yaw``.

A blink is measured by :func:`eye_openness`; see its docstring for what it sees and its limits.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.facepay.landmarks import (
    ARCFACE_SIZE,
    ARCFACE_TEMPLATE,
    LEFT_EYE,
    RIGHT_EYE,
    Box,
    as_box,
    as_grey_crop,
    as_landmarks,
    box_iou,
    face_shape,
    head_pose,
)


class ChallengeStep(StrEnum):
    """What the kiosk asks for; left and right are the shopper's own, said in words."""

    BLINK = "blink"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"


class LivenessState(StrEnum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class LivenessReason(StrEnum):
    """Why a challenge failed; stable codes for the kiosk, the logs and the payment decision."""

    NOT_FRONTAL = "not_frontal"
    CHALLENGE_TIMEOUT = "challenge_timeout"
    NO_MOTION = "no_motion"
    EARLY_ACTION = "early_action"
    WRONG_ACTION = "wrong_action"
    NOT_BACK_TO_FRONTAL = "not_back_to_frontal"
    EYES_NOT_VISIBLE = "eyes_not_visible"
    FACE_CHANGED = "face_changed"
    FACE_LOST = "face_lost"
    TOO_FEW_FRAMES = "too_few_frames"
    REPLAYED_FRAMES = "replayed_frames"


class InvalidLivenessSettings(ValueError):
    """Liveness settings that contradict each other."""


class ObservationOutOfOrder(ValueError):
    """A frame older than one already observed: the caller mixed up its frames."""


@dataclass(frozen=True, slots=True)
class LivenessSettings:
    """Limits of the active challenge (units in each field's description)."""

    step_timeout_s: float = 6.0
    """Seconds from a prompt within which the action must happen (also: to face the camera)."""
    return_timeout_s: float = 2.5
    """Seconds from the action within which the face must be frontal with open eyes again."""
    min_reaction_s: float = 0.25
    """Seconds after a prompt before which no person reacts: a turn sooner is a recording."""
    frontal_max_yaw: float = 0.13
    """Largest |yaw| (normalised, see ``head_pose``) that still counts as facing the camera
    (a head turned about 13 degrees)."""
    frontal_max_pitch: float = 0.4
    """Largest |pitch| (normalised) that still counts as facing the camera: generous, since a
    camera above the screen sees shoppers looking down at it."""
    frontal_max_roll_deg: float = 20.0
    """Largest head tilt, degrees, that still counts as facing the camera."""
    turn_min_yaw: float = 0.25
    """|yaw| (normalised) a turn must reach: a real head turned about 24 degrees (nose tip 30 mm
    in front of the eyes, seen from 45 cm). A flat photo turned or tilted 40 degrees in front of
    the camera stays below 0.05 in exact landmarks and below 0.2 in YuNet's."""
    baseline_frames: int = 3
    """Consecutive frontal frames with open eyes before the first prompt."""
    baseline_window: int = 90
    """Frontal frames whose eye openness makes the face's own baseline (per eye, the 90th
    percentile, so blinks among them do not lower it)."""
    min_eye_openness: float = 2.0
    """Baseline eye openness (grey levels, see ``eye_openness``) below which the eyes are not
    visible enough to see a blink (sunglasses, a tiny face): blink steps then time out with
    ``eyes_not_visible``, and the open-eyes checks are skipped."""
    blink_closed_fraction: float = 0.5
    """Both eyes below this fraction of their baseline openness count as closed."""
    blink_open_fraction: float = 0.75
    """Both eyes at or above this fraction of their baseline openness count as open."""
    min_box_iou: float = 0.4
    """Least overlap of consecutive face boxes; less is a cut to another face."""
    max_missing_frames: int = 5
    """Consecutive frames without the face (reported with ``missing``) before failing."""
    max_gap_s: float = 0.6
    """Longest time between two frames with the face, seconds, before failing."""
    min_step_frames: int = 4
    """Frames with the face a step needs from its prompt to its end: fewer cannot show motion."""
    still_max_crop_change: float = 2.5
    """Mean absolute grey change (0-255) of the downsampled aligned crop from the prompt's frame
    below which the face did not move; sensor noise alone stays well under 1."""
    still_max_shape_change: float = 0.02
    """Largest landmark movement, in eye distances, below which the face did not move."""
    camera_mirrored: bool = False
    """True when frames arrive mirrored (the shopper's left on the image's left)."""

    def __post_init__(self) -> None:
        if not 0 < self.blink_closed_fraction < self.blink_open_fraction:
            raise InvalidLivenessSettings(
                "blink_closed_fraction must be above 0 and below blink_open_fraction: "
                "a closed eye has to be darker than an open one"
            )
        if not 0 <= self.frontal_max_yaw < self.turn_min_yaw:
            raise InvalidLivenessSettings(
                "frontal_max_yaw must be below turn_min_yaw: a frontal face cannot count as turned"
            )
        if self.min_reaction_s >= self.step_timeout_s:
            raise InvalidLivenessSettings(
                "min_reaction_s must be shorter than step_timeout_s, or no action can ever pass"
            )
        if min(self.baseline_frames, self.baseline_window, self.min_step_frames) < 1:
            raise InvalidLivenessSettings(
                "baseline_frames, baseline_window and min_step_frames must be at least 1"
            )


DEFAULT_LIVENESS: Final = LivenessSettings()


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """One camera frame's face: when, where, its five landmarks and its aligned crop."""

    at: float
    """``time.monotonic()`` seconds when the frame was captured."""
    box: Box
    landmarks: NDArray[np.float32]
    """(5, 2) frame pixels: image-left eye, image-right eye, nose tip, mouth corners."""
    aligned: NDArray[np.uint8]
    """(112, 112, 3) BGR crop aligned onto the ArcFace template."""


@dataclass(frozen=True, slots=True)
class StepTiming:
    """When a step was prompted, when its action was seen and when the face was back."""

    step: ChallengeStep
    prompted_at: float
    acted_at: float | None = None
    completed_at: float | None = None

    @property
    def reaction_s(self) -> float | None:
        return None if self.acted_at is None else self.acted_at - self.prompted_at


@dataclass(frozen=True, slots=True)
class LivenessVerdict:
    state: LivenessState
    reason: LivenessReason | None
    prompt: ChallengeStep | None
    """What the kiosk should ask for now; None while waiting for a frontal face, or when done."""
    timings: tuple[StepTiming, ...]

    @property
    def passed(self) -> bool:
        return self.state is LivenessState.PASSED


# Eye boxes in the 112 crop, around the template's eye points: wide enough for alignment error.
_EYE_HALF_WIDTH: Final = 10.0
_EYE_HALF_HEIGHT: Final = 5.0
# Dark structures smaller than this (112-crop pixels) are lifted out of the skin around them.
_DARK_DETAIL_SIZE: Final = 11
# A dark structure must be at least this tall to count: an iris is, a closed lid's lashes are not.
_IRIS_MIN_HEIGHT: Final = 4.0
_MOTION_SIDE: Final = 28


def eye_openness(aligned: NDArray[np.uint8]) -> tuple[float, float]:
    """How open each eye looks in an aligned crop: (image-left eye, image-right eye).

    The measure is the mean darkness, in grey levels, of *tall* dark detail in a box at each
    template eye point: the crop's black-hat (how much darker a pixel is than the skin and
    sclera around it) opened with a vertical line a little shorter than an iris. An open eye
    shows the iris and pupil, a dark blob taller than that line; a closed eye shows skin and a
    thin lash line, which the opening removes.

    It is meaningful only relative to the same face's baseline (lighting, skin and eye colour
    change it), and only for a frontal face (the boxes sit at the template's eye points). Limits:
    sunglasses or very dark lenses hide the iris (score near 0, no blink can be seen); a face so
    small that the iris is under 2 frame pixels is upsampled into a blur; thick dark frames of
    glasses across the eye, heavy eye make-up or deep eye-socket shadow add darkness that does
    not go away with a blink, which weakens the dip.
    """
    grey = as_grey_crop(aligned)
    scale = grey.shape[0] / ARCFACE_SIZE
    detail = max(3, round(_DARK_DETAIL_SIZE * scale) | 1)
    line = max(2, round(_IRIS_MIN_HEIGHT * scale))
    surround = cv2.morphologyEx(
        grey, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (detail, detail))
    )
    darkness = cv2.subtract(surround, grey)
    tall = cv2.morphologyEx(
        darkness, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, line))
    )
    scores: list[float] = []
    for eye in (LEFT_EYE, RIGHT_EYE):
        cx, cy = ARCFACE_TEMPLATE[eye] * scale
        half_w, half_h = _EYE_HALF_WIDTH * scale, _EYE_HALF_HEIGHT * scale
        box = tall[
            round(cy - half_h) : round(cy + half_h) + 1,
            round(cx - half_w) : round(cx + half_w) + 1,
        ]
        scores.append(float(box.mean()))
    return scores[0], scores[1]


def crop_fingerprint(aligned: NDArray[np.uint8]) -> bytes:
    """A digest of the grey aligned crop: equal only for bit-identical decoded frames."""
    grey = np.ascontiguousarray(as_grey_crop(aligned))
    return hashlib.blake2b(grey.tobytes(), digest_size=16).digest()


class _Phase(Enum):
    SETTLING = "settling"  # waiting for a frontal face with open eyes before prompting
    ACTING = "acting"  # prompted; waiting for the action
    RETURNING = "returning"  # acted; waiting for the face to be frontal with open eyes again
    DONE = "done"


@dataclass(slots=True)
class _StepProgress:
    step: ChallengeStep
    prompted_at: float
    reference_crop: NDArray[np.float32]
    reference_shape: NDArray[np.float64]
    frames: int = 0
    acted_at: float | None = None
    eyes_closed_early: bool = False
    eyes_closed_seen: bool = False
    max_crop_change: float = 0.0
    max_shape_change: float = 0.0

    def timing(self, completed_at: float | None = None) -> StepTiming:
        return StepTiming(self.step, self.prompted_at, self.acted_at, completed_at)


@dataclass(slots=True)
class _Measured:
    """What one observation shows, derived once."""

    yaw: float
    frontal: bool
    openness: tuple[float, float]
    small_crop: NDArray[np.float32]
    shape: NDArray[np.float64]


@dataclass(slots=True)
class _Track:
    """Where the face was and what the challenge has seen, across frames."""

    started_at: float | None = None
    last_at: float | None = None
    last_seen_at: float | None = None
    last_box: Box | None = None
    missing_in_a_row: int = 0
    last_fingerprint: bytes | None = None
    fingerprints: set[bytes] = field(default_factory=set)


class ActiveChallenge:
    """A liveness challenge of a few random steps, fed one camera frame at a time.

    Show ``prompt`` to the shopper after every call; feed every frame with a face to
    :meth:`observe` and every frame without one to :meth:`missing`. The verdict is final once it
    is passed or failed; later frames do not change it.
    """

    def __init__(
        self, steps: Sequence[ChallengeStep], settings: LivenessSettings = DEFAULT_LIVENESS
    ) -> None:
        if not steps:
            raise InvalidLivenessSettings("a liveness challenge needs at least one step")
        self._steps = tuple(ChallengeStep(step) for step in steps)
        self._settings = settings
        self._phase = _Phase.SETTLING
        self._index = 0
        self._track = _Track()
        self._frontal_in_a_row = 0
        self._openness: deque[tuple[float, float]] = deque(maxlen=settings.baseline_window)
        self._baseline: tuple[float, float] | None = None
        self._progress: _StepProgress | None = None
        self._done: list[StepTiming] = []
        self._state = LivenessState.PENDING
        self._reason: LivenessReason | None = None
        self._final_timings: tuple[StepTiming, ...] | None = None

    @classmethod
    def random(
        cls,
        rng: random.Random,
        *,
        steps: int = 2,
        settings: LivenessSettings = DEFAULT_LIVENESS,
    ) -> ActiveChallenge:
        """A challenge of ``steps`` random steps, each different from the one before it.

        No step follows itself, so a clip that repeats one action never passes; a blind guess at
        the order passes 1 time in 6 with two steps (1 in 12 with three). The challenge is one
        layer: replay detection, the NIR check and an anti-spoofing model are the others.
        """
        if steps < 1:
            raise InvalidLivenessSettings("a liveness challenge needs at least one step")
        drawn: list[ChallengeStep] = []
        for _ in range(steps):
            drawn.append(rng.choice([step for step in ChallengeStep if drawn[-1:] != [step]]))
        return cls(drawn, settings)

    @property
    def steps(self) -> tuple[ChallengeStep, ...]:
        return self._steps

    @property
    def prompt(self) -> ChallengeStep | None:
        """The step the kiosk should ask for now (None: "look at the camera", or finished)."""
        if self._state is not LivenessState.PENDING or self._phase is _Phase.SETTLING:
            return None
        return self._steps[self._index]

    @property
    def verdict(self) -> LivenessVerdict:
        if self._final_timings is not None:
            return LivenessVerdict(self._state, self._reason, None, self._final_timings)
        timings = list(self._done)
        if self._progress is not None and self._phase in (_Phase.ACTING, _Phase.RETURNING):
            timings.append(self._progress.timing())
        return LivenessVerdict(self._state, self._reason, self.prompt, tuple(timings))

    def missing(self, at: float) -> LivenessVerdict:
        """A frame at ``at`` in which the face was not found."""
        if self._state is not LivenessState.PENDING:
            return self.verdict
        self._advance_clock(at)
        self._track.missing_in_a_row += 1
        if self._track.missing_in_a_row > self._settings.max_missing_frames:
            return self._fail(LivenessReason.FACE_LOST)
        return self._check_timeouts(at) or self.verdict

    def observe(self, obs: FaceObservation) -> LivenessVerdict:
        """The face in the next camera frame; returns the verdict so far."""
        if self._state is not LivenessState.PENDING:
            return self.verdict
        box = as_box(obs.box)
        landmarks = as_landmarks(obs.landmarks)
        fingerprint = crop_fingerprint(obs.aligned)
        track = self._track
        self._advance_clock(obs.at)
        if track.started_at is None:
            track.started_at = obs.at
        gap = obs.at - (track.last_seen_at if track.last_seen_at is not None else obs.at)
        if gap > self._settings.max_gap_s:
            return self._fail(LivenessReason.FACE_LOST)
        if track.last_box is not None and box_iou(track.last_box, box) < self._settings.min_box_iou:
            return self._fail(LivenessReason.FACE_CHANGED)
        track.last_seen_at, track.last_box, track.missing_in_a_row = obs.at, box, 0

        if fingerprint == track.last_fingerprint:
            # The camera handed over the same buffer twice: nothing new to see in it.
            return self._check_timeouts(obs.at) or self.verdict
        if fingerprint in track.fingerprints:
            return self._fail(LivenessReason.REPLAYED_FRAMES)
        track.fingerprints.add(fingerprint)
        track.last_fingerprint = fingerprint

        measured = self._measure(landmarks, obs.aligned)
        if measured.frontal:
            self._openness.append(measured.openness)
            left, right = np.percentile(np.array(self._openness), 90, axis=0)
            self._baseline = (float(left), float(right))
        timed_out = self._check_timeouts(obs.at)
        if timed_out is not None:
            return timed_out
        if self._phase is _Phase.SETTLING:
            return self._settle(obs.at, measured)
        progress = self._progress
        assert progress is not None
        progress.frames += 1
        if self._phase is _Phase.ACTING:
            progress.max_crop_change = max(
                progress.max_crop_change,
                float(np.abs(measured.small_crop - progress.reference_crop).mean()),
            )
            progress.max_shape_change = max(
                progress.max_shape_change,
                float(np.abs(measured.shape - progress.reference_shape).max()),
            )
            return self._act(obs.at, measured, progress)
        return self._return(obs.at, measured, progress)

    # -- one frame in each phase -------------------------------------------------------------

    def _settle(self, at: float, measured: _Measured) -> LivenessVerdict:
        self._frontal_in_a_row = self._frontal_in_a_row + 1 if measured.frontal else 0
        ready = self._frontal_in_a_row >= self._settings.baseline_frames
        if ready and self._eyes_open(measured.openness):
            return self._prompt_next(at, measured)
        return self.verdict

    def _act(self, at: float, measured: _Measured, progress: _StepProgress) -> LivenessVerdict:
        early = at - progress.prompted_at < self._settings.min_reaction_s
        turned = self._turn_seen(measured.yaw)
        if turned is not None:
            if turned is not progress.step:
                return self._fail(LivenessReason.WRONG_ACTION)
            if early:
                return self._fail(LivenessReason.EARLY_ACTION)
            progress.acted_at = at
            self._phase = _Phase.RETURNING
            return self.verdict
        if not measured.frontal:
            return self.verdict  # on the way to or from a turn: the eye boxes are off the eyes
        closed = self._eyes_closed(measured.openness)
        progress.eyes_closed_seen |= closed
        if progress.step is not ChallengeStep.BLINK:
            return self.verdict  # blinking while asked to turn is no answer, and no failure
        if closed and early:
            # A blink already under way at the prompt is a reflex, not an answer.
            progress.eyes_closed_early = True
        elif closed and not progress.eyes_closed_early:
            progress.acted_at = at
            self._phase = _Phase.RETURNING
        elif not closed and self._eyes_open(measured.openness):
            progress.eyes_closed_early = False
        return self.verdict

    def _return(self, at: float, measured: _Measured, progress: _StepProgress) -> LivenessVerdict:
        turned = self._turn_seen(measured.yaw)
        if turned is not None and turned is not progress.step:
            return self._fail(LivenessReason.WRONG_ACTION)
        if measured.frontal and self._eyes_open(measured.openness):
            if progress.frames < self._settings.min_step_frames:
                return self._fail(LivenessReason.TOO_FEW_FRAMES)
            self._done.append(progress.timing(completed_at=at))
            self._index += 1
            if self._index == len(self._steps):
                self._phase, self._progress = _Phase.DONE, None
                self._state = LivenessState.PASSED
                return self.verdict
            return self._prompt_next(at, measured)
        return self.verdict

    # -- helpers --------------------------------------------------------------------------------

    def _prompt_next(self, at: float, measured: _Measured) -> LivenessVerdict:
        step = self._steps[self._index]
        self._phase = _Phase.ACTING
        self._progress = _StepProgress(
            step=step,
            prompted_at=at,
            reference_crop=measured.small_crop,
            reference_shape=measured.shape,
        )
        return self.verdict

    def _measure(self, landmarks: NDArray[np.float64], aligned: NDArray[np.uint8]) -> _Measured:
        settings = self._settings
        pose = head_pose(landmarks)
        frontal = (
            abs(pose.yaw) <= settings.frontal_max_yaw
            and abs(pose.pitch) <= settings.frontal_max_pitch
            and abs(pose.roll) <= settings.frontal_max_roll_deg
        )
        small = cv2.resize(
            as_grey_crop(aligned), (_MOTION_SIDE, _MOTION_SIDE), interpolation=cv2.INTER_AREA
        ).astype(np.float32)
        return _Measured(
            yaw=-pose.yaw if settings.camera_mirrored else pose.yaw,
            frontal=frontal,
            openness=eye_openness(aligned),
            small_crop=small,
            shape=face_shape(landmarks),
        )

    def _turn_seen(self, yaw: float) -> ChallengeStep | None:
        # Positive yaw: the nose towards the image's right, which is the shopper's left.
        if not math.isfinite(yaw):
            return None  # landmarks that are no face pose at all (the mouth on the eye line)
        if yaw >= self._settings.turn_min_yaw:
            return ChallengeStep.TURN_LEFT
        if yaw <= -self._settings.turn_min_yaw:
            return ChallengeStep.TURN_RIGHT
        return None

    def _eyes_visible(self) -> bool:
        return self._baseline is not None and min(self._baseline) >= self._settings.min_eye_openness

    def _eyes_closed(self, openness: tuple[float, float]) -> bool:
        if not self._eyes_visible():
            return False  # below the visibility floor, a "dip" is only noise
        assert self._baseline is not None
        limit = self._settings.blink_closed_fraction
        return all(now < limit * base for now, base in zip(openness, self._baseline, strict=True))

    def _eyes_open(self, openness: tuple[float, float]) -> bool:
        if not self._eyes_visible():
            # Eyes we cannot see (sunglasses) cannot be judged; turn steps still work.
            return True
        assert self._baseline is not None
        limit = self._settings.blink_open_fraction
        return all(now >= limit * base for now, base in zip(openness, self._baseline, strict=True))

    def _advance_clock(self, at: float) -> None:
        if not math.isfinite(at):
            raise ObservationOutOfOrder(f"frame time {at!r} is not a number of seconds")
        last = self._track.last_at
        if last is not None and at < last:
            raise ObservationOutOfOrder(
                f"frame at {at:.3f} s is older than the previous one at {last:.3f} s: "
                "feed frames in capture order"
            )
        self._track.last_at = at

    def _check_timeouts(self, at: float) -> LivenessVerdict | None:
        settings, progress = self._settings, self._progress
        if self._phase is _Phase.SETTLING:
            started = self._track.started_at
            if started is not None and at - started > settings.step_timeout_s:
                return self._fail(LivenessReason.NOT_FRONTAL)
            return None
        if progress is None:
            return None
        if self._phase is _Phase.ACTING and at - progress.prompted_at > settings.step_timeout_s:
            still = (
                not progress.eyes_closed_seen
                and progress.max_crop_change <= settings.still_max_crop_change
                and progress.max_shape_change <= settings.still_max_shape_change
            )
            if progress.step is ChallengeStep.BLINK and not self._eyes_visible():
                return self._fail(LivenessReason.EYES_NOT_VISIBLE)
            return self._fail(
                LivenessReason.NO_MOTION if still else LivenessReason.CHALLENGE_TIMEOUT
            )
        acted = progress.acted_at
        if (
            self._phase is _Phase.RETURNING
            and acted is not None
            and at - acted > settings.return_timeout_s
        ):
            return self._fail(LivenessReason.NOT_BACK_TO_FRONTAL)
        return None

    def _fail(self, reason: LivenessReason) -> LivenessVerdict:
        self._final_timings = self.verdict.timings  # as they stood when the challenge failed
        self._state, self._reason = LivenessState.FAILED, reason
        self._phase = _Phase.DONE
        return self.verdict


# -- near-infrared -----------------------------------------------------------------------------


class NirReason(StrEnum):
    NO_NIR_FACE = "no_nir_face"
    NIR_FACE_ELSEWHERE = "nir_face_elsewhere"


@dataclass(frozen=True, slots=True)
class NirCalibration:
    """Maps colour-camera pixels to NIR-camera pixels: ``nir = colour * scale + offset``.

    Measured once per terminal (both cameras looking at the same face at the usual distance);
    the identity suits a single RGB-IR sensor whose two images share pixels.
    """

    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def to_nir(self, box: Box) -> Box:
        x, y, w, h = box
        return (
            x * self.scale_x + self.offset_x,
            y * self.scale_y + self.offset_y,
            w * self.scale_x,
            h * self.scale_y,
        )


@dataclass(frozen=True, slots=True)
class NirVerdict:
    confirmed: bool
    reason: NirReason | None
    expected_box: Box
    """Where the colour frame's face should be in the NIR frame."""
    best_iou: float
    """Overlap of the best-placed confident NIR face with ``expected_box`` (0 if none)."""
    best_score: float
    """Detector score of that face (0 if none)."""


def nir_confirms(
    colour_box: Box,
    nir_faces: Sequence[tuple[Box, float]],
    *,
    calibration: NirCalibration = NirCalibration(),
    min_iou: float = 0.3,
    min_score: float = 0.6,
) -> NirVerdict:
    """Does the NIR frame show a face where the colour frame has one?

    ``nir_faces`` are the face detector's ``(box, score)`` results on the NIR frame. A live face
    reflects the terminal's NIR light and is found there; a phone or tablet screen emits none and
    shows as a dark rectangle. A printed photo does reflect NIR: the active challenge stops it.
    """
    expected = calibration.to_nir(as_box(colour_box))
    confident = [(as_box(box), float(score)) for box, score in nir_faces if score >= min_score]
    if not confident:
        return NirVerdict(False, NirReason.NO_NIR_FACE, expected, 0.0, 0.0)
    best_box, best_score = max(confident, key=lambda face: box_iou(expected, face[0]))
    best_iou = box_iou(expected, best_box)
    if best_iou < min_iou:
        return NirVerdict(False, NirReason.NIR_FACE_ELSEWHERE, expected, best_iou, best_score)
    return NirVerdict(True, None, expected, best_iou, best_score)
