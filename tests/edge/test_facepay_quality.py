"""The face quality gate and the choice of the face in front, on a real photo changed on purpose.

Grace Hopper's photo with the landmarks YuNet finds in it is a good face; each test changes
one thing (size, focus, pose, light, framing) and expects exactly the matching reason code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from edge.facepay.landmarks import (
    ARCFACE_TEMPLATE,
    Box,
    InvalidFaceInput,
    align_face,
    head_pose,
    inter_eye_distance,
)
from edge.facepay.quality import (
    QualityReason,
    QualityReport,
    QualitySettings,
    assess,
    pick_front_face,
)
from tests.photos import load_photo

GRACE_BOX: Box = (179.0, 122.5, 175.0, 210.2)
GRACE_LANDMARKS = np.array(
    [[225.6, 194.0], [306.5, 192.8], [266.8, 237.1], [231.0, 270.0], [301.3, 269.3]],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def grace() -> NDArray[np.uint8]:
    return load_photo("grace_hopper")


def assess_frame(
    frame: NDArray[np.uint8],
    landmarks: NDArray[np.float32] = GRACE_LANDMARKS,
    box: Box = GRACE_BOX,
    settings: QualitySettings | None = None,
) -> QualityReport:
    aligned = align_face(frame, landmarks)
    return assess(frame.shape, box, landmarks, aligned, settings or QualitySettings())


def moved(matrix: NDArray[np.float64], points: NDArray[np.float32]) -> NDArray[np.float32]:
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def test_a_good_face_passes(grace: NDArray[np.uint8]) -> None:
    report = assess_frame(grace)
    assert report.passed and report.reasons == ()
    assert report.eye_distance_px == pytest.approx(80.9, abs=0.1)
    assert report.box_px == 175.0 and report.inside_fraction == 1.0
    assert report.sharpness > 10 * QualitySettings().min_sharpness
    assert abs(report.pose.yaw) < 0.02 and abs(report.pose.roll) < 2
    assert 100 < report.brightness < 180
    assert report.dark_fraction < 0.01 and report.bright_fraction < 0.01


def test_a_small_face_is_too_small(grace: NDArray[np.uint8]) -> None:
    """A quarter of the size: the shopper stands too far away."""
    small = cv2.resize(grace, (128, 150), interpolation=cv2.INTER_AREA)
    scale = np.diag([0.25, 0.25, 1.0])[:2]
    x, y, w, h = GRACE_BOX
    report = assess_frame(small, moved(scale, GRACE_LANDMARKS), (x / 4, y / 4, w / 4, h / 4))
    assert QualityReason.TOO_SMALL in report.reasons
    assert report.eye_distance_px == pytest.approx(80.9 / 4, abs=0.1)


def test_a_blurred_face_is_blurry(grace: NDArray[np.uint8]) -> None:
    """Out of focus by 7 frame pixels, 3 pixels of the 112-pixel crop; 1 pixel still passes."""
    report = assess_frame(cv2.GaussianBlur(grace, (0, 0), 7.0))
    assert report.reasons == (QualityReason.BLURRY,)
    assert report.sharpness < QualitySettings().min_sharpness
    assert assess_frame(cv2.GaussianBlur(grace, (0, 0), 2.3)).passed


def test_a_turned_head_is_turned_and_a_raised_chin_is_pitched(grace: NDArray[np.uint8]) -> None:
    """The nose tip moved across the face, or up towards the eyes, as a head's does."""
    eye_distance = inter_eye_distance(GRACE_LANDMARKS)
    turned = GRACE_LANDMARKS.copy()
    turned[2, 0] += 0.25 * eye_distance
    report = assess_frame(grace, turned)
    assert report.reasons == (QualityReason.TURNED,)
    assert report.pose.yaw == pytest.approx(0.25, abs=0.02)

    raised = GRACE_LANDMARKS.copy()
    raised[2, 1] -= 0.4 * eye_distance
    report = assess_frame(grace, raised)
    assert report.reasons == (QualityReason.PITCHED,)
    assert report.pose.pitch > QualitySettings().max_abs_pitch


def test_a_tilted_head_is_tilted(grace: NDArray[np.uint8]) -> None:
    centre = tuple(float(v) for v in GRACE_LANDMARKS.mean(axis=0))
    rotation = cv2.getRotationMatrix2D(centre, -25.0, 1.0)  # image-right side goes down
    tilted = cv2.warpAffine(grace, rotation, (512, 600), borderMode=cv2.BORDER_REPLICATE)
    landmarks = moved(rotation, GRACE_LANDMARKS)
    report = assess_frame(tilted, landmarks)
    assert report.reasons == (QualityReason.TILTED,)
    assert report.pose.roll == pytest.approx(25.0 - 0.9, abs=0.5)


def test_dark_and_bright_faces(grace: NDArray[np.uint8]) -> None:
    dark = assess_frame(cv2.convertScaleAbs(grace, alpha=0.3, beta=0))
    assert dark.reasons == (QualityReason.TOO_DARK,)
    bright = assess_frame(cv2.convertScaleAbs(grace, alpha=1.0, beta=110))
    assert bright.reasons == (QualityReason.TOO_BRIGHT,)
    assert bright.bright_fraction > QualitySettings().max_clipped_fraction
    # A face in deep shadow on one side: the mean is fine, the clipped blacks are not.
    half_shadow = grace.copy()
    half_shadow[:, : round(GRACE_LANDMARKS[2, 0])] = 5
    shadowed = assess_frame(half_shadow)
    assert QualityReason.TOO_DARK in shadowed.reasons and shadowed.dark_fraction > 0.3


def test_a_face_at_the_frame_edge_is_cut_off(grace: NDArray[np.uint8]) -> None:
    shift = np.array([[1.0, 0.0, -230.0], [0.0, 1.0, 0.0]])
    at_edge = cv2.warpAffine(grace, shift, (512, 600), borderMode=cv2.BORDER_REPLICATE)
    x, y, w, h = GRACE_BOX
    report = assess_frame(at_edge, moved(shift, GRACE_LANDMARKS), (x - 230, y, w, h))
    assert QualityReason.CUT_OFF in report.reasons
    assert report.inside_fraction == pytest.approx((x - 230 + w) / w)


def test_settings_decide(grace: NDArray[np.uint8]) -> None:
    strict = QualitySettings(min_eye_distance_px=100.0, max_abs_roll_deg=0.5)
    report = assess_frame(grace, settings=strict)
    assert report.reasons == (QualityReason.TOO_SMALL, QualityReason.TILTED)


def test_head_pose_sign_conventions() -> None:
    """A head model (mm: eyes, a nose tip 30 mm in front, mouth) turned, tilted, raised."""
    head = np.array([[-32, 0, 0], [32, 0, 0], [0, 36, 30], [-25, 72, 8], [25, 72, 8]], float)

    def seen(rotation: NDArray[np.float64]) -> NDArray[np.float32]:
        points = head @ rotation.T
        depth = 450.0 - points[:, 2]
        return (700.0 * points[:, :2] / depth[:, None]).astype(np.float32)

    def about(axis: int, degrees: float) -> NDArray[np.float64]:
        vector = np.zeros(3)
        vector[axis] = math.radians(degrees)
        rotation, _ = cv2.Rodrigues(vector)
        return np.asarray(rotation, dtype=np.float64)

    # x to the image's right, y down, z towards the camera. Turning to the shopper's left
    # brings the nose towards the image's right.
    to_their_left = head_pose(seen(about(1, 25.0)))
    assert to_their_left.yaw > 0.2
    assert head_pose(seen(about(1, -25.0))).yaw < -0.2
    # Rotating about the optical axis by +20 degrees lowers the image-right eye.
    tilted = seen(about(2, 20.0))
    assert tilted[1, 1] > tilted[0, 1]
    assert head_pose(tilted).roll == pytest.approx(20.0, abs=0.5)
    # Chin up: the top of the head goes away from the camera (about the x axis, y down).
    chin_up, chin_down = head_pose(seen(about(0, 15.0))), head_pose(seen(about(0, -15.0)))
    assert chin_up.pitch > head_pose(seen(about(0, 0.0))).pitch > chin_down.pitch
    # The template itself is frontal.
    template = head_pose(ARCFACE_TEMPLATE)
    assert abs(template.yaw) < 0.01 and abs(template.pitch) < 1e-9 and abs(template.roll) < 0.5


def test_bad_inputs_are_refused(grace: NDArray[np.uint8]) -> None:
    aligned = align_face(grace, GRACE_LANDMARKS)
    with pytest.raises(InvalidFaceInput, match="no area"):
        assess(grace.shape, (10.0, 10.0, 0.0, 50.0), GRACE_LANDMARKS, aligned)
    with pytest.raises(InvalidFaceInput, match="NaN"):
        assess(grace.shape, GRACE_BOX, np.full((5, 2), np.nan, np.float32), aligned)
    with pytest.raises(InvalidFaceInput, match="square uint8"):
        assess(grace.shape, GRACE_BOX, GRACE_LANDMARKS, aligned.astype(np.float32))


@dataclass(frozen=True)
class Face:
    name: str
    box: Box


def test_pick_front_face_prefers_the_big_face_near_the_centre() -> None:
    frame = (720, 1280, 3)
    big_centre = Face("big, centre", (540.0, 200.0, 200.0, 250.0))
    small_centre = Face("small, centre", (610.0, 300.0, 60.0, 75.0))
    big_corner = Face("as big, in a corner", (0.0, 0.0, 200.0, 250.0))
    bigger_edge = Face("bigger, at the edge", (1000.0, 150.0, 260.0, 320.0))
    assert pick_front_face([small_centre, big_corner, big_centre], frame) is big_centre
    # Much closer to the camera wins even off-centre: that person is at the terminal.
    assert pick_front_face([small_centre, bigger_edge], frame) is bigger_edge
    # The same size: the one nearer the centre.
    assert pick_front_face([big_corner, big_centre], frame) is big_centre
    assert pick_front_face([], frame) is None
    # Any face type, given how to get its box.
    boxes = [(b.box, b.name) for b in (big_corner, big_centre)]
    assert pick_front_face(boxes, frame, box_of=lambda face: face[0]) == boxes[1]


def test_pick_front_face_in_a_group_photo() -> None:
    """The six people of insightface's t1.jpg (YuNet's boxes): the large one near the middle."""
    group = load_photo("t1")
    boxes: list[Box] = [
        (750.5, 346.3, 94.6, 125.8),
        (462.3, 265.7, 114.0, 151.1),
        (1132.2, 274.2, 95.2, 124.5),
        (899.2, 57.4, 106.1, 139.8),
        (270.8, 146.6, 99.2, 129.5),
        (52.4, 265.9, 118.2, 133.6),
    ]
    assert pick_front_face(boxes, group.shape, box_of=lambda box: box) == boxes[1]
