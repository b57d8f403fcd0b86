"""Liveness: the active challenge, frame by frame, and the near-infrared check.

The challenge is fed frames we build ourselves, so no test depends on the face detector:

- synthetic heads: the five landmarks of a 3-D head model (eyes, a nose tip 30 mm in front of
  them, mouth corners) turned and projected through a pinhole camera, with a drawn face crop
  whose sensor noise differs in every frame, as a live camera's does;
- a real photo: the same photo warped (a perspective-warped flat print, a 3-D-like turn that
  moves the nose more than the eyes, eyelids painted shut) and aligned onto the template.

Time comes from the ``at`` values the tests give each frame; nothing sleeps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from edge.demo.shopper import close_eyes
from edge.facepay.landmarks import (
    ARCFACE_TEMPLATE,
    Box,
    InvalidFaceInput,
    align_face,
    head_pose,
    inter_eye_distance,
)
from edge.facepay.liveness import (
    ActiveChallenge,
    ChallengeStep,
    FaceObservation,
    InvalidLivenessSettings,
    LivenessReason,
    LivenessSettings,
    LivenessState,
    LivenessVerdict,
    NirCalibration,
    NirReason,
    ObservationOutOfOrder,
    crop_fingerprint,
    eye_openness,
    nir_confirms,
)
from models.detector import FaceDetector
from models.manifest import load_manifest
from models.prepare import prepare_model
from tests.photos import load_photo

SETTINGS = LivenessSettings()
LEFT, RIGHT, BLINK = ChallengeStep.TURN_LEFT, ChallengeStep.TURN_RIGHT, ChallengeStep.BLINK

# -- a synthetic head ----------------------------------------------------------------------------

# Millimetres; x to the image's right, y down, z towards the camera. Image-left eye first.
HEAD_MM = np.array(
    [[-32, 0, 0], [32, 0, 0], [0, 36, 30], [-25, 72, 8], [25, 72, 8]], dtype=np.float64
)
NECK_PIVOT_MM = np.array([0.0, 30.0, -90.0])
CAMERA_DISTANCE_MM, FOCAL_PX, FRAME_SIZE = 450.0, 700.0, (720, 1280)
SKIN_BGR = (120, 145, 185)


def project_head(
    yaw_deg: float = 0.0, pitch_deg: float = 0.0, shift_x: float = 0.0
) -> NDArray[np.float32]:
    """The five landmarks of the head model, in frame pixels.

    Positive yaw turns the head to the shopper's left (nose towards the image's right);
    positive pitch lifts the chin.
    """
    p = HEAD_MM - NECK_PIVOT_MM
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    x = p[:, 0] * math.cos(yaw) + p[:, 2] * math.sin(yaw)
    z = -p[:, 0] * math.sin(yaw) + p[:, 2] * math.cos(yaw)
    y = p[:, 1] * math.cos(pitch) - z * math.sin(pitch)
    z = p[:, 1] * math.sin(pitch) + z * math.cos(pitch)
    x, y, z = x + NECK_PIVOT_MM[0], y + NECK_PIVOT_MM[1], z + NECK_PIVOT_MM[2]
    depth = CAMERA_DISTANCE_MM - z
    u = FRAME_SIZE[1] / 2 + shift_x + FOCAL_PX * x / depth
    v = FRAME_SIZE[0] / 2 + FOCAL_PX * y / depth
    return np.stack([u, v], axis=1).astype(np.float32)


def draw_face(eyes_closed: bool, noise: NDArray[np.float64]) -> NDArray[np.uint8]:
    """A drawn 112 x 112 aligned face: brows, eyes (iris and pupil, or a lid and lashes)."""
    img = np.zeros((112, 112, 3), np.float32)
    img[:] = SKIN_BGR
    img *= (0.85 + 0.15 * np.cos((np.arange(112) - 56) / 60))[None, :, None]
    face = img.astype(np.uint8)
    for x, y in ARCFACE_TEMPLATE[:2]:
        c = (round(x), round(y))
        cv2.line(face, (c[0] - 10, c[1] - 12), (c[0] + 10, c[1] - 13), (40, 50, 60), 3)
        if eyes_closed:
            cv2.ellipse(face, c, (10, 5), 0, 0, 360, SKIN_BGR, -1)
            cv2.ellipse(face, c, (9, 3), 0, 10, 170, (30, 30, 40), 1)
        else:
            cv2.ellipse(face, c, (9, 4), 0, 0, 360, (225, 230, 235), -1)
            cv2.circle(face, c, 4, (60, 70, 80), -1)
            cv2.circle(face, c, 2, (15, 15, 15), -1)
            cv2.ellipse(face, c, (9, 4), 0, 180, 360, (30, 30, 40), 1)
    mouth = ARCFACE_TEMPLATE[3:].round().astype(int)
    cv2.line(face, tuple(mouth[0]), tuple(mouth[1]), (60, 60, 130), 2)
    return np.clip(face + noise, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Pose:
    yaw_deg: float = 0.0
    eyes_closed: bool = False
    shift_x: float = 0.0


class SyntheticHead:
    """Renders the head model in a pose as one camera frame's face, with fresh sensor noise."""

    def __init__(self, seed: int, noise_sigma: float = 2.0) -> None:
        self._rng = np.random.default_rng(seed)
        self._sigma = noise_sigma

    def __call__(self, at: float, pose: Pose) -> FaceObservation:
        landmarks = project_head(pose.yaw_deg, shift_x=pose.shift_x)
        noise = self._rng.normal(0.0, self._sigma, (112, 112, 3))
        return FaceObservation(at, head_box(pose), landmarks, draw_face(pose.eyes_closed, noise))


def head_box(pose: Pose) -> Box:
    """A detector's box around the head: it moves with the head, not with the nose."""
    side = 2.4 * 64.0 * FOCAL_PX / CAMERA_DISTANCE_MM
    centre_x = FRAME_SIZE[1] / 2 + pose.shift_x + 15.0 * math.sin(math.radians(pose.yaw_deg))
    return (centre_x - side / 2, FRAME_SIZE[0] / 2 - 0.3 * side, side, 1.2 * side)


# -- a shopper reacting to the kiosk -------------------------------------------------------------

Render = Callable[[float, Pose], FaceObservation]
TURN_SIGN = {LEFT: 1.0, RIGHT: -1.0}


@dataclass
class Shopper:
    """Does what the prompt says (or ``does`` instead), ``reaction_s`` after seeing it.

    A turn goes to ``turn_deg`` over ``move_s``, holds ``hold_s`` and comes back; a blink keeps
    the eyes shut for ``blink_s``. A live head also sways by ``sway_deg`` all the time.
    """

    reaction_s: float = 0.5
    turn_deg: float = 30.0
    move_s: float = 0.3
    hold_s: float = 0.3
    blink_s: float = 0.15
    sway_deg: float = 2.0
    does: Callable[[ChallengeStep], ChallengeStep | None] = lambda step: step
    stays_turned: bool = False

    def __post_init__(self) -> None:
        self._seen: tuple[int, ChallengeStep] | None = None
        self._seen_at = 0.0

    def pose(self, at: float, verdict: LivenessVerdict) -> Pose:
        sway = self.sway_deg * math.sin(at * 2.1)
        if verdict.prompt is None:
            return Pose(sway)
        key = (len(verdict.timings), verdict.prompt)
        if key != self._seen:
            self._seen, self._seen_at = key, at
        since = at - self._seen_at - self.reaction_s
        action = self.does(verdict.prompt)
        if since < 0 or action is None:
            return Pose(sway)
        if action is BLINK:
            return Pose(sway, eyes_closed=since < self.blink_s)
        if self.stays_turned:
            return Pose(TURN_SIGN[action] * self.turn_deg * min(1.0, since / self.move_s))
        return Pose(sway + TURN_SIGN[action] * self.turn_deg * self._turn_fraction(since))

    def _turn_fraction(self, since: float) -> float:
        """0 to 1 over move_s, 1 for hold_s, back to 0 over move_s."""
        if since < self.move_s:
            return since / self.move_s
        if since < self.move_s + self.hold_s:
            return 1.0
        return max(0.0, 1.0 - (since - self.move_s - self.hold_s) / self.move_s)


def run(
    challenge: ActiveChallenge,
    shopper: Shopper,
    render: Render,
    fps: float = 15.0,
    start: float = 1000.0,
    limit_s: float = 30.0,
) -> LivenessVerdict:
    """Feed frames until the challenge decides (the kiosk shows each new prompt at once)."""
    verdict = challenge.verdict
    frame = 0
    while verdict.state is LivenessState.PENDING:
        at = start + frame / fps
        assert at - start < limit_s, "the challenge never decided"
        verdict = challenge.observe(render(at, shopper.pose(at, verdict)))
        frame += 1
    return verdict


def frames(start: float, fps: float = 15.0) -> Iterator[float]:
    frame = 0
    while True:
        yield start + frame / fps
        frame += 1


# -- synthetic sequences -------------------------------------------------------------------------


def test_head_model_yaw_sign_and_size() -> None:
    """The head model turns like a head: to the shopper's left is positive, 30 degrees is a turn."""
    turned_left = head_pose(project_head(30.0))
    assert turned_left.yaw > SETTINGS.turn_min_yaw
    assert head_pose(project_head(-30.0)).yaw < -SETTINGS.turn_min_yaw
    assert abs(head_pose(project_head(5.0)).yaw) < SETTINGS.frontal_max_yaw


@pytest.mark.parametrize("steps", [(a, b) for a in ChallengeStep for b in ChallengeStep])
def test_a_shopper_doing_what_is_asked_passes(steps: tuple[ChallengeStep, ChallengeStep]) -> None:
    challenge = ActiveChallenge(steps)
    verdict = run(challenge, Shopper(), SyntheticHead(seed=1))

    assert verdict.state is LivenessState.PASSED and verdict.passed
    assert verdict.reason is None and verdict.prompt is None
    assert [t.step for t in verdict.timings] == list(steps)
    for timing in verdict.timings:
        assert timing.reaction_s is not None
        # The shopper's reaction, plus the part of the move before the turn counts, plus a frame.
        assert 0.5 <= timing.reaction_s <= 0.5 + 0.3 + 2 / 15
        assert timing.completed_at is not None and timing.acted_at is not None
        assert timing.completed_at > timing.acted_at
    # A later frame changes nothing.
    later = challenge.observe(SyntheticHead(seed=9)(2000.0, Pose()))
    assert later == verdict


def test_random_challenges_are_reproducible_from_the_seed() -> None:
    first = ActiveChallenge.random(random.Random(7), steps=3)
    again = ActiveChallenge.random(random.Random(7), steps=3)
    assert first.steps == again.steps and len(first.steps) == 3
    drawn = {ActiveChallenge.random(random.Random(seed)).steps for seed in range(60)}
    # Every ordered pair of two different steps occurs; no step follows itself.
    assert drawn == {(a, b) for a in ChallengeStep for b in ChallengeStep if a != b}


def test_the_prompt_waits_for_a_frontal_face() -> None:
    challenge = ActiveChallenge([LEFT])
    head = SyntheticHead(seed=2)
    clock = frames(10.0)
    for _ in range(5):
        verdict = challenge.observe(head(next(clock), Pose(yaw_deg=25.0)))
        assert verdict.prompt is None and verdict.state is LivenessState.PENDING
    for _ in range(SETTINGS.baseline_frames):
        verdict = challenge.observe(head(next(clock), Pose()))
    assert verdict.prompt is LEFT and challenge.prompt is LEFT
    assert verdict.timings[0].prompted_at == pytest.approx(10.0 + 7 / 15)


def test_a_face_that_never_faces_the_camera_fails() -> None:
    challenge = ActiveChallenge([BLINK])
    shopper = Shopper(sway_deg=0.0, does=lambda _step: None)
    verdict = run(challenge, shopper, lambda at, _pose: SyntheticHead(seed=3)(at, Pose(-30.0)))
    assert verdict.reason is LivenessReason.NOT_FRONTAL and verdict.timings == ()


def test_turning_to_the_wrong_side_fails_at_once() -> None:
    mirror = {LEFT: RIGHT, RIGHT: LEFT, BLINK: BLINK}
    verdict = run(ActiveChallenge([LEFT]), Shopper(does=mirror.get), SyntheticHead(seed=4))
    assert verdict.state is LivenessState.FAILED
    assert verdict.reason is LivenessReason.WRONG_ACTION
    assert verdict.timings[0].acted_at is None
    assert verdict.timings[0].prompted_at + 0.5 < 1000.0 + 2.0  # well before any timeout


def test_turning_when_asked_to_blink_fails_but_blinking_when_asked_to_turn_does_not() -> None:
    asked_to_blink = run(
        ActiveChallenge([BLINK]), Shopper(does=lambda _step: LEFT), SyntheticHead(seed=5)
    )
    assert asked_to_blink.reason is LivenessReason.WRONG_ACTION

    # A spontaneous blink before turning is a reflex, not an answer: the turn still counts.
    challenge = ActiveChallenge([RIGHT])
    head, shopper = SyntheticHead(seed=6), Shopper(reaction_s=0.8)
    clock = frames(10.0)
    verdict = challenge.verdict
    while verdict.state is LivenessState.PENDING:
        at = next(clock)
        pose = shopper.pose(at, verdict)
        prompted = verdict.timings[0].prompted_at if verdict.timings else math.inf
        blinking = 0.4 <= at - prompted < 0.55
        verdict = challenge.observe(head(at, replace(pose, eyes_closed=blinking)))
    assert verdict.passed


def test_a_blink_under_way_at_the_prompt_does_not_answer_it() -> None:
    """Eyes shut 0.07-0.2 s after the prompt: a reflex. Only a later blink counts."""

    def blinking_at(*windows: tuple[float, float]) -> LivenessVerdict:
        challenge, head, clock = ActiveChallenge([BLINK]), SyntheticHead(seed=21), frames(10.0)
        verdict = challenge.verdict
        while verdict.state is LivenessState.PENDING:
            at = next(clock)
            since = at - verdict.timings[0].prompted_at if verdict.timings else -1.0
            shut = any(start <= since < end for start, end in windows)
            verdict = challenge.observe(head(at, Pose(math.sin(at), eyes_closed=shut)))
        return verdict

    assert blinking_at((0.05, 0.2)).reason is LivenessReason.CHALLENGE_TIMEOUT
    # Shut from before the reaction time until well after it: still the same reflex.
    assert blinking_at((0.05, 0.6)).reason is LivenessReason.CHALLENGE_TIMEOUT
    answered = blinking_at((0.05, 0.2), (1.0, 1.15))
    assert answered.passed
    assert answered.timings[0].reaction_s == pytest.approx(1.0, abs=1 / 15)


def test_a_turn_sooner_than_a_person_can_react_fails() -> None:
    verdict = run(
        ActiveChallenge([LEFT]), Shopper(reaction_s=0.0, move_s=0.05), SyntheticHead(7), fps=30
    )
    assert verdict.reason is LivenessReason.EARLY_ACTION


@pytest.mark.parametrize("action", [LEFT, RIGHT, BLINK])
def test_a_recorded_clip_repeating_one_action_fails_every_challenge(action: ChallengeStep) -> None:
    """A clip turning (or blinking) every 1.2 s, whatever the kiosk asks, never passes."""
    for steps in {ActiveChallenge.random(random.Random(seed)).steps for seed in range(60)}:
        head = SyntheticHead(seed=20)

        def clip(at: float, _pose: Pose, head: SyntheticHead = head) -> FaceObservation:
            since = (at - 1000.0) % 1.2
            if action is BLINK:
                return head(at, Pose(eyes_closed=since < 0.15))
            swing = math.sin(math.pi * min(since / 0.6, 1.0))
            return head(at, Pose(yaw_deg=TURN_SIGN[action] * 35.0 * swing))

        verdict = run(ActiveChallenge(steps), Shopper(), clip)
        assert verdict.state is LivenessState.FAILED, steps
        assert verdict.reason in {
            LivenessReason.EARLY_ACTION,
            LivenessReason.WRONG_ACTION,
            LivenessReason.CHALLENGE_TIMEOUT,
        }


def test_a_shopper_who_does_nothing_times_out() -> None:
    verdict = run(ActiveChallenge([LEFT]), Shopper(does=lambda _step: None), SyntheticHead(8))
    assert verdict.reason is LivenessReason.CHALLENGE_TIMEOUT
    prompted = verdict.timings[0].prompted_at
    assert verdict.timings[0].acted_at is None
    assert prompted > 1000.0


def test_a_face_that_does_not_move_at_all_fails_with_no_motion() -> None:
    still = Shopper(does=lambda _step: None, sway_deg=0.0)
    verdict = run(ActiveChallenge([BLINK, LEFT]), still, SyntheticHead(9))
    assert verdict.reason is LivenessReason.NO_MOTION


def test_a_head_that_stays_turned_fails() -> None:
    verdict = run(ActiveChallenge([RIGHT, LEFT]), Shopper(stays_turned=True), SyntheticHead(10))
    assert verdict.reason is LivenessReason.NOT_BACK_TO_FRONTAL
    assert verdict.timings[0].acted_at is not None


def test_a_cut_to_another_face_fails() -> None:
    head = SyntheticHead(seed=11)

    def cut(at: float, pose: Pose) -> FaceObservation:
        # After 1.5 s the frames show a face 300 px to the side: another person, or another clip.
        return head(at, replace(pose, shift_x=300.0 if at >= 1001.5 else 0.0))

    verdict = run(ActiveChallenge([LEFT, RIGHT]), Shopper(reaction_s=1.0), cut)
    assert verdict.reason is LivenessReason.FACE_CHANGED


def test_a_step_seen_in_too_few_frames_fails() -> None:
    """A frontal face, a turned one and a frontal one again are not a turn anyone saw."""
    head = SyntheticHead(seed=12)
    challenge = ActiveChallenge([LEFT])
    for i in range(SETTINGS.baseline_frames):
        verdict = challenge.observe(head(10.0 + i / 15, Pose()))
    prompted = verdict.timings[0].prompted_at
    assert challenge.observe(head(prompted + 0.45, Pose(yaw_deg=30.0))).prompt is LEFT
    verdict = challenge.observe(head(prompted + 0.9, Pose()))
    assert verdict.reason is LivenessReason.TOO_FEW_FRAMES
    assert verdict.timings[0].acted_at == pytest.approx(prompted + 0.45)


def test_losing_the_face_fails() -> None:
    head = SyntheticHead(seed=13)
    challenge = ActiveChallenge([LEFT])
    clock = frames(10.0)
    for _ in range(4):
        challenge.observe(head(next(clock), Pose()))
    for _ in range(SETTINGS.max_missing_frames):
        assert challenge.missing(next(clock)).state is LivenessState.PENDING
    assert challenge.missing(next(clock)).reason is LivenessReason.FACE_LOST

    # A caller that does not report missing frames: the gap between faces is too long.
    gap = ActiveChallenge([LEFT])
    gap.observe(head(10.0, Pose()))
    assert gap.observe(head(10.0 + SETTINGS.max_gap_s + 0.1, Pose())).reason is (
        LivenessReason.FACE_LOST
    )


def test_a_mirrored_camera_swaps_the_image_sides() -> None:
    """Mirrored frames show the shopper's left turn with the nose towards the image's left."""
    mirrored = LivenessSettings(camera_mirrored=True)
    head = SyntheticHead(seed=14)

    def mirror(at: float, pose: Pose) -> FaceObservation:
        return head(at, replace(pose, yaw_deg=-pose.yaw_deg))

    assert run(ActiveChallenge([LEFT, RIGHT], mirrored), Shopper(), mirror).passed
    unmirrored = run(ActiveChallenge([LEFT, RIGHT]), Shopper(), mirror)
    assert unmirrored.reason is LivenessReason.WRONG_ACTION


def test_frames_repeated_bit_for_bit_fail_but_a_duplicated_frame_does_not() -> None:
    head = SyntheticHead(seed=15)
    recorded = [head(10.0 + i / 15, Pose(yaw_deg=2.0 * math.sin(i))) for i in range(8)]

    twice = ActiveChallenge([LEFT])
    for obs in recorded[:4]:
        twice.observe(obs)
    # The camera handing over the latest buffer again is no replay.
    again = replace(recorded[3], at=10.0 + 4 / 15)
    assert twice.observe(again).state is LivenessState.PENDING

    looped = ActiveChallenge([LEFT])
    verdict = looped.verdict
    for i, obs in enumerate(recorded + recorded):
        verdict = looped.observe(replace(obs, at=20.0 + i / 15))
    assert verdict.reason is LivenessReason.REPLAYED_FRAMES


def test_frames_out_of_order_and_bad_inputs_are_refused() -> None:
    head = SyntheticHead(seed=16)
    challenge = ActiveChallenge([LEFT])
    challenge.observe(head(10.0, Pose()))
    with pytest.raises(ObservationOutOfOrder, match="capture order"):
        challenge.observe(head(9.5, Pose()))
    with pytest.raises(InvalidFaceInput, match=r"\(5, 2\)"):
        challenge.observe(replace(head(10.1, Pose()), landmarks=np.zeros((4, 2), np.float32)))
    with pytest.raises(InvalidFaceInput, match="square uint8"):
        challenge.observe(replace(head(10.2, Pose()), aligned=np.zeros((112, 96, 3), np.uint8)))
    with pytest.raises(InvalidLivenessSettings, match="blink_closed_fraction"):
        LivenessSettings(blink_closed_fraction=0.9)
    with pytest.raises(InvalidLivenessSettings, match="at least one step"):
        ActiveChallenge([])


def test_eye_openness_sees_the_iris_and_not_the_lashes() -> None:
    noise = np.random.default_rng(17).normal(0.0, 2.0, (112, 112, 3))
    open_left, open_right = eye_openness(draw_face(False, noise))
    closed_left, closed_right = eye_openness(draw_face(True, noise))
    assert min(open_left, open_right) > 10 * max(closed_left, closed_right, 0.5)


def test_eyes_that_cannot_be_seen_fail_a_blink_step_but_not_a_turn() -> None:
    """Sunglasses: no iris to see, so no blink can be checked; turning still works."""
    head = SyntheticHead(seed=18)

    def sunglasses(at: float, pose: Pose) -> FaceObservation:
        return head(at, replace(pose, eyes_closed=True))

    assert run(ActiveChallenge([BLINK]), Shopper(), sunglasses).reason is (
        LivenessReason.EYES_NOT_VISIBLE
    )
    assert run(ActiveChallenge([LEFT, RIGHT]), Shopper(), sunglasses).passed


# -- a real photo --------------------------------------------------------------------------------

# Grace Hopper's face in matplotlib's sample photo, as YuNet 2023mar finds it (frame pixels).
GRACE_BOX: Box = (179.0, 122.5, 175.0, 210.2)
GRACE_LANDMARKS = np.array(
    [[225.6, 194.0], [306.5, 192.8], [266.8, 237.1], [231.0, 270.0], [301.3, 269.3]],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def grace() -> NDArray[np.uint8]:
    return load_photo("grace_hopper")


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> FaceDetector:
    prepared = prepare_model(load_manifest().detector(), Path(tmp_path_factory.mktemp("models")))
    return FaceDetector(prepared.path)


class PhotoHead:
    """A real photo made to act like a head, one noisy camera frame at a time.

    A turn is a displacement field that moves the nose tip across the face and the eyes and
    mouth much less, as a head's protruding nose does (``cv2.remap``); a blink paints the
    eyelids shut. Landmarks move with the field: the detector, trained on real heads, would not
    follow a nose painted sideways, so these are the landmarks a turned head would have.
    """

    def __init__(
        self,
        photo: NDArray[np.uint8],
        landmarks: NDArray[np.float32] = GRACE_LANDMARKS,
        box: Box = GRACE_BOX,
        seed: int = 0,
        noise_sigma: float = 2.0,
    ) -> None:
        # Only the part of the photo around the face is worked on (and is the "frame"): faster.
        x, y, w, h = box
        left, top = max(0, round(x - w / 2)), max(0, round(y - h / 2))
        self._photo = photo[top : round(y + 1.5 * h), left : round(x + 1.5 * w)]
        self._landmarks = landmarks.astype(np.float64) - [left, top]
        self._box = (x - left, y - top, w, h)
        self._eye_distance = inter_eye_distance(landmarks)
        self._rng = np.random.default_rng(seed)
        self._sigma = noise_sigma
        self._posed = lru_cache(maxsize=128)(self._pose)

    def _nose_bump(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        nose_x, nose_y = self._landmarks[2]
        sigma = 0.35 * self._eye_distance
        bump: NDArray[np.float64] = np.exp(-((x - nose_x) ** 2 + (y - nose_y) ** 2) / sigma**2 / 2)
        return bump

    def _pose(
        self, yaw_deg: int, eyes_closed: bool
    ) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        # Nose shift in pixels for a head turned yaw_deg to the shopper's left.
        shift = 0.8 * math.sin(math.radians(yaw_deg)) * self._eye_distance
        landmarks = self._landmarks.copy()
        landmarks[:, 0] += shift * self._nose_bump(landmarks[:, 0], landmarks[:, 1])
        frame = close_eyes(self._photo, self._landmarks) if eyes_closed else self._photo
        if shift:
            h, w = frame.shape[:2]
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
            source_x = xs.copy()
            for _ in range(6):  # invert x -> x + shift * bump(x) by fixed-point iteration
                source_x = xs - shift * self._nose_bump(source_x, ys)
            frame = cv2.remap(
                frame, source_x.astype(np.float32), ys.astype(np.float32), cv2.INTER_LINEAR
            )
        return frame, landmarks.astype(np.float32)

    def __call__(self, at: float, pose: Pose) -> FaceObservation:
        frame, landmarks = self._posed(round(pose.yaw_deg), pose.eyes_closed)
        noise = self._rng.standard_normal(frame.shape, dtype=np.float32) * self._sigma
        noisy_frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
        return FaceObservation(at, self._box, landmarks, align_face(noisy_frame, landmarks))


def print_homography(
    shape: tuple[int, ...],
    axis_deg: float,
    angle_deg: float,
    pivot: NDArray[np.float64],
    focal: float,
) -> NDArray[np.float64]:
    """How a flat print looks turned ``angle_deg`` about an axis through ``pivot`` lying in the
    print at ``axis_deg`` from horizontal, seen by a pinhole camera of focal length ``focal``."""
    h, w = shape[:2]
    axis = math.radians(axis_deg)
    direction = np.array([math.cos(axis), math.sin(axis), 0.0]) * math.radians(angle_deg)
    rotation, _ = cv2.Rodrigues(direction)
    camera = np.array([[focal, 0, w / 2], [0, focal, h / 2], [0, 0, 1]])
    px, py = pivot
    placed = rotation @ np.array([-px, -py, 0.0]) + np.array([px - w / 2, py - h / 2, focal])
    homography = camera @ np.column_stack([rotation[:, 0], rotation[:, 1], placed])
    return homography / homography[2, 2]


def test_a_still_photo_fails_with_no_motion(grace: NDArray[np.uint8]) -> None:
    """The same photo in every frame, only the camera's noise changing."""
    still = Shopper(sway_deg=0.0, does=lambda _step: None)
    for steps in ([LEFT, BLINK], [BLINK, RIGHT]):
        verdict = run(ActiveChallenge(steps), still, PhotoHead(grace, seed=30))
        assert verdict.reason is LivenessReason.NO_MOTION
        prompted = verdict.timings[0].prompted_at
        assert verdict.timings[0].acted_at is None
        assert prompted < 1000.0 + 0.5  # the photo looked frontal at once


@pytest.mark.parametrize("focal_widths", [1.0, 2.0])
def test_a_photo_turned_up_to_40_degrees_does_not_look_like_a_turned_head(
    grace: NDArray[np.uint8], detector: FaceDetector, focal_widths: float
) -> None:
    """A print turned or tilted about any axis, seen up close (focal length = 1 or 2 widths)."""
    landmarks = GRACE_LANDMARKS.astype(np.float64)
    pivots = [landmarks[2], landmarks[2] - [0.8 * inter_eye_distance(landmarks), 0.0]]
    exact, detected = [], []
    for pivot in pivots:
        for axis in (0, 45, 90, 135):
            for angle in (-40, -25, 25, 40):
                warp = print_homography(grace.shape, axis, angle, pivot, focal_widths * 512)
                seen = cv2.warpPerspective(grace, warp, (512, 600), borderMode=cv2.BORDER_REPLICATE)
                moved = cv2.perspectiveTransform(landmarks.reshape(-1, 1, 2), warp)
                exact.append(abs(head_pose(moved.reshape(5, 2)).yaw))
                faces = detector.detect(seen)
                assert faces, (axis, angle)
                detected.append(abs(head_pose(faces[0].landmarks).yaw))
    assert max(exact) < 0.05
    assert max(detected) < 0.2 < SETTINGS.turn_min_yaw


def test_a_photo_waved_about_for_the_camera_does_not_pass_a_turn(
    grace: NDArray[np.uint8], detector: FaceDetector
) -> None:
    """The attacker turns the print 40 degrees whichever way the kiosk asks, and back."""
    rng = np.random.default_rng(31)

    @cache
    def print_turned(angle: int) -> tuple[NDArray[np.uint8], Box, NDArray[np.float32]]:
        warp = print_homography(grace.shape, 90, angle, GRACE_LANDMARKS[2], 512.0)
        seen = cv2.warpPerspective(grace, warp, (512, 600), borderMode=cv2.BORDER_REPLICATE)
        face = detector.detect(seen)[0]
        return seen, face.box, face.landmarks

    def waved(at: float, pose: Pose) -> FaceObservation:
        # The print turned about its vertical axis by up to 40 degrees, as a head would turn.
        seen, box, landmarks = print_turned(5 * round(pose.yaw_deg * 40 / 30 / 5))
        aligned = align_face(seen, landmarks) + rng.normal(0, 2.0, (112, 112, 3))
        return FaceObservation(at, box, landmarks, np.clip(aligned, 0, 255).astype(np.uint8))

    for steps in ([LEFT, RIGHT], [RIGHT, LEFT]):
        verdict = run(ActiveChallenge(steps), Shopper(), waved, fps=10.0)
        assert verdict.reason is LivenessReason.CHALLENGE_TIMEOUT
        assert verdict.timings[0].acted_at is None


@pytest.mark.parametrize("steps", [(LEFT, RIGHT), (RIGHT, BLINK), (BLINK, LEFT)])
def test_a_photo_moving_like_a_head_passes(
    grace: NDArray[np.uint8], steps: tuple[ChallengeStep, ChallengeStep]
) -> None:
    """The nose swung across the face (cv2.remap) and eyelids painted shut for 2-3 frames."""
    head = PhotoHead(grace, seed=32)
    turned = head(0.0, Pose(yaw_deg=30.0))
    assert head_pose(turned.landmarks).yaw > SETTINGS.turn_min_yaw
    open_eyes = eye_openness(head(0.0, Pose()).aligned)
    shut_eyes = eye_openness(head(0.0, Pose(eyes_closed=True)).aligned)
    assert max(s / o for s, o in zip(shut_eyes, open_eyes, strict=True)) < 0.3

    verdict = run(ActiveChallenge(steps), Shopper(blink_s=0.15), head)
    assert verdict.passed, verdict
    assert [t.step for t in verdict.timings] == list(steps)


def test_a_looped_recording_fails_with_replayed_frames(grace: NDArray[np.uint8]) -> None:
    """Two seconds of a live face, recorded and played in a loop: decoded frames repeat."""
    head, shopper = PhotoHead(grace, seed=33), Shopper(does=lambda _step: None)
    idle = ActiveChallenge([LEFT]).verdict
    recording = [head(t / 15, shopper.pose(t / 15, idle)) for t in range(30)]

    challenge = ActiveChallenge([BLINK, LEFT])
    verdicts = [
        challenge.observe(replace(obs, at=100.0 + i / 15))
        for i, obs in enumerate(recording + recording)
    ]
    assert all(v.state is LivenessState.PENDING for v in verdicts[:30])
    assert verdicts[30].reason is LivenessReason.REPLAYED_FRAMES


# -- near-infrared -------------------------------------------------------------------------------


def test_nir_confirms_a_face_where_the_colour_frame_has_it() -> None:
    colour: Box = (500.0, 200.0, 220.0, 280.0)
    verdict = nir_confirms(colour, [((505.0, 210.0, 210.0, 270.0), 0.9)])
    assert verdict.confirmed and verdict.reason is None and verdict.best_iou > 0.8

    screen = nir_confirms(colour, [])
    assert not screen.confirmed and screen.reason is NirReason.NO_NIR_FACE
    weak = nir_confirms(colour, [((505.0, 210.0, 210.0, 270.0), 0.4)])
    assert weak.reason is NirReason.NO_NIR_FACE
    elsewhere = nir_confirms(colour, [((100.0, 200.0, 220.0, 280.0), 0.95)])
    assert not elsewhere.confirmed and elsewhere.reason is NirReason.NIR_FACE_ELSEWHERE

    # A NIR camera of half the resolution, mounted 40 px to the side.
    calibration = NirCalibration(scale_x=0.5, scale_y=0.5, offset_x=-40.0, offset_y=0.0)
    shifted = nir_confirms(colour, [((210.0, 100.0, 110.0, 140.0), 0.8)], calibration=calibration)
    assert shifted.confirmed and shifted.expected_box == (210.0, 100.0, 110.0, 140.0)
    assert not nir_confirms(colour, [((210.0, 100.0, 110.0, 140.0), 0.8)]).confirmed


def test_crop_fingerprints_tell_bit_identical_crops_apart_from_noisy_ones() -> None:
    rng = np.random.default_rng(19)
    crop = draw_face(False, rng.normal(0.0, 2.0, (112, 112, 3)))
    assert crop_fingerprint(crop) == crop_fingerprint(crop.copy())
    assert crop_fingerprint(crop) != crop_fingerprint(
        draw_face(False, rng.normal(0, 2, crop.shape))
    )


def test_nir_frames_of_a_live_face_confirm_and_a_screen_does_not(
    grace: NDArray[np.uint8], detector: FaceDetector
) -> None:
    """The caller runs the detector on the NIR frame; a screen shows up dark in NIR light."""
    colour_face = detector.detect(grace)[0]
    # A live face in NIR: grey, a little darker and flatter than in colour.
    grey = cv2.cvtColor(grace, cv2.COLOR_BGR2GRAY)
    nir = cv2.cvtColor(cv2.convertScaleAbs(grey, alpha=0.7, beta=20), cv2.COLOR_GRAY2BGR)
    live = nir_confirms(colour_face.box, [(f.box, f.score) for f in detector.detect(nir)])
    assert live.confirmed and live.best_iou > 0.8 and live.best_score > 0.6

    screen = np.full_like(grace, 12)
    dark = nir_confirms(colour_face.box, [(f.box, f.score) for f in detector.detect(screen)])
    assert not dark.confirmed and dark.reason is NirReason.NO_NIR_FACE

    # Someone else's face in the NIR frame, 170 px to the side of the one the colour frame has.
    elsewhere = cv2.warpAffine(nir, np.array([[1, 0, -170], [0, 1, 0]], np.float32), (512, 600))
    moved = nir_confirms(colour_face.box, [(f.box, f.score) for f in detector.detect(elsewhere)])
    assert not moved.confirmed and moved.reason is NirReason.NIR_FACE_ELSEWHERE
    assert moved.best_score > 0.6
