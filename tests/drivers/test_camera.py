"""Cameras against real OpenCV captures: MJPG video files, and an MJPEG IP camera on loopback.

Nothing stands in for ``cv2.VideoCapture``: file sources are real ``.avi`` files written with
OpenCV, network sources are the simulator's HTTP MJPEG stream read by OpenCV's FFMPEG backend,
and faults (stall, disconnect) happen on the real socket.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from drivers.backoff import Backoff
from drivers.camera import (
    Camera,
    CameraError,
    CameraOpenError,
    CameraSettings,
    CameraTimeout,
    Frame,
)
from drivers.camera.capture import mask_password, open_capture, to_bgr
from drivers.camera.simulator import MjpegCameraSimulator, write_video

WIDTH, HEIGHT = 320, 240


def level_frame(index: int) -> np.ndarray:
    """A uniform frame whose grey level tells its index (survives JPEG: levels are 7 apart)."""
    return np.full((HEIGHT, WIDTH, 3), 20 + 7 * index, np.uint8)


def index_of(frame: Frame) -> int:
    return round((float(frame.image.mean()) - 20) / 7)


class Availability:
    """What a camera reported through ``on_availability``, with a way to wait for a report."""

    def __init__(self) -> None:
        self.reports: list[tuple[bool, str | None]] = []
        self.on_loop: list[bool] = []
        self._changed = asyncio.Event()

    def __call__(self, available: bool, reason: str | None) -> None:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        self.reports.append((available, reason))
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for(self, available: bool, after: int = 0, timeout: float = 5.0) -> str | None:
        """The reason of the first report of ``available`` at index ``after`` or later."""
        async with asyncio.timeout(timeout):
            while True:
                for state, reason in self.reports[after:]:
                    if state is available:
                        return reason
                await self._changed.wait()


MakeCamera = Callable[..., Awaitable[tuple[Camera, Availability]]]


@pytest.fixture
async def make_camera() -> AsyncIterator[MakeCamera]:
    """Start a camera on ``uri`` with test-sized timeouts (overridable); stopped at teardown."""
    cameras: list[Camera] = []

    async def start(
        uri: str, name: str = "cam", **overrides: object
    ) -> tuple[Camera, Availability]:
        options: dict[str, object] = {
            "open_timeout_s": 1.0,
            "read_timeout_s": 1.0,
            "stall_timeout_s": 1.0,
            "backoff_initial_s": 0.02,
            "backoff_max_s": 0.1,
        }
        options.update(overrides)
        availability = Availability()
        camera = Camera(
            name,
            CameraSettings(uri, **options),  # type: ignore[arg-type]
            on_availability=availability,
            rng=random.Random(1),
        )
        cameras.append(camera)
        await camera.start()
        return camera, availability

    yield start
    for camera in cameras:
        await camera.stop()


@pytest.fixture
def video(tmp_path: Path) -> Callable[[int, float], str]:
    def write(count: int, fps: float) -> str:
        path = tmp_path / f"clip-{count}-{fps:g}.avi"
        assert write_video(path, (level_frame(i) for i in range(count)), fps) == count
        return str(path)

    return write


@pytest.fixture
async def ip_camera() -> AsyncIterator[MjpegCameraSimulator]:
    async with MjpegCameraSimulator(lambda i: level_frame(i % 30), fps=25.0) as simulator:
        yield simulator


async def collect(camera: Camera, until_seq: int, timeout: float = 1.0) -> list[Frame]:
    """Frames as a consumer sees them with ``next_frame`` until one reaches ``until_seq``."""
    frames: list[Frame] = []
    seq = 0
    while seq < until_seq:
        frame = await camera.next_frame(after_seq=seq, timeout=timeout)
        frames.append(frame)
        seq = frame.seq
    return frames


# ---------------------------------------------------------------- video files


async def test_file_frames_arrive_in_order_at_the_file_rate(
    make_camera: MakeCamera, video: Callable[[int, float], str]
) -> None:
    camera, availability = await make_camera(video(12, 20.0))
    frames = await collect(camera, until_seq=12)

    seqs = [frame.seq for frame in frames]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 12
    assert len(frames) >= 10  # a waiting consumer sees (nearly) every frame of a 20 fps file
    assert all(index_of(frame) == frame.seq - 1 for frame in frames)
    assert all(frame.image.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    assert all(frame.image.dtype == np.uint8 for frame in frames)
    span = frames[-1].captured_at - frames[0].captured_at
    intervals = frames[-1].seq - frames[0].seq
    assert 0.9 * intervals / 20 <= span <= 1.6 * intervals / 20 + 0.1
    assert 15 < camera.metrics.fps < 22
    assert availability.reports[0] == (True, None)
    assert availability.on_loop == [True] * len(availability.on_loop)


async def test_file_end_makes_camera_unavailable_for_good(
    make_camera: MakeCamera, video: Callable[[int, float], str]
) -> None:
    path = video(30, 25.0)
    camera, availability = await make_camera(path, name="shelf", realtime=False)

    reason = await availability.wait_for(False)

    assert reason == (
        f"camera 'shelf' ({path}) reached the end of the video file (set loop to replay)"
    )
    assert not camera.available
    assert camera.last_error == reason
    assert availability.reports == [(True, None), (False, reason)]
    metrics = camera.metrics
    assert metrics.frames == 30 and metrics.reopens == 0 and metrics.open_failures == 0
    with pytest.raises(CameraTimeout, match="end of the video file"):
        await camera.next_frame(after_seq=30, timeout=0.2)


async def test_latest_is_only_the_newest_frame(
    make_camera: MakeCamera, video: Callable[[int, float], str]
) -> None:
    camera, availability = await make_camera(video(30, 25.0), realtime=False)
    await availability.wait_for(False)  # the whole file was read, nobody consumed it

    latest = camera.latest()
    assert latest is not None and latest.seq == 30 and index_of(latest) == 29
    # No queue behind it: a consumer starting from scratch gets the newest frame, not frame 1.
    assert await camera.next_frame(after_seq=0) is latest
    assert not latest.image.flags.writeable  # shared between consumers: read-only


async def test_loop_starts_the_file_again_without_a_gap(
    make_camera: MakeCamera, video: Callable[[int, float], str]
) -> None:
    camera, availability = await make_camera(video(5, 50.0), loop=True)
    frames = await collect(camera, until_seq=14)

    assert [frame.seq for frame in frames] == sorted({frame.seq for frame in frames})
    assert all(index_of(frame) == (frame.seq - 1) % 5 for frame in frames)
    assert any(frame.seq > 5 and index_of(frame) == 0 for frame in frames)  # wrapped around
    assert availability.reports == [(True, None)]
    assert camera.metrics.reopens == 0


async def test_frames_are_resized_to_the_configured_size(
    make_camera: MakeCamera, video: Callable[[int, float], str]
) -> None:
    camera, _ = await make_camera(video(3, 25.0), width=160, height=120, realtime=False)
    frame = await camera.next_frame(timeout=2.0)
    assert frame.image.shape == (120, 160, 3)


def test_grey_images_keep_three_channels() -> None:
    nir = np.arange(12, dtype=np.uint8).reshape(3, 4)
    bgr = to_bgr(nir)
    assert bgr.shape == (3, 4, 3) and bgr.dtype == np.uint8
    assert (bgr[:, :, 0] == nir).all() and (bgr[:, :, 2] == nir).all()
    assert to_bgr(np.zeros((3, 4, 4), np.uint8)).shape == (3, 4, 3)


# ---------------------------------------------------------------- sources that do not open


def test_missing_device_is_one_clear_sentence() -> None:
    with pytest.raises(CameraOpenError) as error:
        open_capture("front", CameraSettings("/dev/video99"))
    assert str(error.value) == "camera 'front' (/dev/video99) could not be opened: no such device"
    with pytest.raises(CameraOpenError) as by_index:
        open_capture("front", CameraSettings("99"))
    assert str(by_index.value) == str(error.value)
    with pytest.raises(CameraOpenError, match="is not a video capture device"):
        open_capture("front", CameraSettings("/dev/null"))  # exists, but is no camera


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.avi"
    with pytest.raises(CameraOpenError, match=r"could not be opened: no such file$"):
        open_capture("shelf", CameraSettings(str(missing)))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video " * 100)
    with pytest.raises(CameraOpenError, match="not a readable video file"):
        open_capture("shelf", CameraSettings(str(junk)))


async def test_missing_file_reports_unavailable_and_keeps_retrying(
    make_camera: MakeCamera, tmp_path: Path
) -> None:
    path = tmp_path / "missing.avi"
    started = time.monotonic()
    camera, availability = await make_camera(
        str(path), name="shelf", backoff_initial_s=0.05, backoff_max_s=0.2
    )  # start() returned: an absent source does not fail the caller

    reason = await availability.wait_for(False)
    assert reason == f"camera 'shelf' ({path}) could not be opened: no such file"
    await camera.wait_until(lambda c: c.metrics.open_failures >= 4, timeout=5.0)

    # Retries are spaced by the backoff: at least half of 0.05, 0.1 and 0.2 s between them.
    assert time.monotonic() - started >= 0.025 + 0.05 + 0.1
    assert not camera.available and camera.last_error == reason
    assert camera.metrics.reopens >= 3 and camera.metrics.frames == 0
    assert availability.reports == [(False, reason)]  # reported once, not on every retry
    with pytest.raises(CameraTimeout, match="no such file"):
        await camera.next_frame(timeout=0.1)


async def test_missing_device_through_the_camera(make_camera: MakeCamera) -> None:
    camera, availability = await make_camera("/dev/video99", name="front")
    reason = await availability.wait_for(False)
    assert reason == "camera 'front' (/dev/video99) could not be opened: no such device"
    assert camera.metrics.open_failures >= 1


async def test_stream_errors_never_show_the_password(make_camera: MakeCamera) -> None:
    # Port 1 on loopback refuses at once: the open fails quickly and for real.
    camera, availability = await make_camera("rtsp://admin:s3cret@127.0.0.1:1/stream")
    reason = await availability.wait_for(False)
    assert reason is not None and "s3cret" not in reason
    assert "rtsp://admin:***@127.0.0.1:1/stream" in reason
    assert camera.last_error == reason
    assert mask_password("http://cam/video.mjpg") == "http://cam/video.mjpg"


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(3))
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="width and height go together"):
        CameraSettings("/dev/video0", width=640)
    with pytest.raises(ValueError, match="stall_timeout_s must be positive"):
        CameraSettings("/dev/video0", stall_timeout_s=0)
    with pytest.raises(ValueError, match="backoff_max_s"):
        CameraSettings("/dev/video0", backoff_initial_s=5, backoff_max_s=1)


async def test_next_frame_before_start_says_so() -> None:
    camera = Camera("idle", CameraSettings("/dev/video0"))
    with pytest.raises(CameraError, match="not started: call start"):
        await camera.next_frame()


# ---------------------------------------------------------------- MJPEG IP camera


async def test_mjpeg_stream_frames_flow(
    make_camera: MakeCamera, ip_camera: MjpegCameraSimulator
) -> None:
    camera, availability = await make_camera(ip_camera.url)
    frames = await collect(camera, until_seq=10, timeout=3.0)

    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    indexes = [index_of(f) for f in frames]
    assert indexes == sorted(indexes)  # the simulator's frames, in order
    assert frames[-1].image.shape == (HEIGHT, WIDTH, 3)
    assert camera.available and availability.reports == [(True, None)]
    assert ip_camera.requests == 1 and camera.metrics.reopens == 0


async def test_stalled_stream_is_reopened_by_the_watchdog(
    make_camera: MakeCamera, ip_camera: MjpegCameraSimulator
) -> None:
    # The read timeout is longer than the stall timeout: the watchdog, not OpenCV, notices.
    camera, availability = await make_camera(
        ip_camera.url, stall_timeout_s=0.6, read_timeout_s=5.0, open_timeout_s=2.0
    )
    before = await camera.next_frame(timeout=3.0)

    ip_camera.stall()
    stalled_at = time.monotonic()
    await camera.wait_until(lambda c: c.metrics.stalls == 1, timeout=3.0)
    assert time.monotonic() - stalled_at < 0.6 + 0.5
    reason = await availability.wait_for(False)
    assert reason is not None and "delivered no frame for 0.6 s" in reason

    ip_camera.resume()
    last = camera.latest()
    assert last is not None
    after = await camera.next_frame(after_seq=last.seq, timeout=5.0)
    assert after.seq > last.seq >= before.seq
    await availability.wait_for(True, after=2)
    metrics = camera.metrics
    assert metrics.stalls == 1 and metrics.reopens >= 1
    assert ip_camera.requests >= 2  # a fresh connection, not the hung one


async def test_disconnected_camera_comes_back_by_itself(
    make_camera: MakeCamera, ip_camera: MjpegCameraSimulator
) -> None:
    camera, availability = await make_camera(ip_camera.url)
    first = await camera.next_frame(timeout=3.0)

    await ip_camera.disconnect()
    reason = await availability.wait_for(False)
    assert reason is not None and "stopped delivering frames" in reason
    await camera.wait_until(lambda c: c.metrics.open_failures >= 1, timeout=3.0)
    assert "could not be opened" in (camera.last_error or "")

    await ip_camera.restore()
    await availability.wait_for(True, after=2)
    again = await camera.next_frame(after_seq=first.seq, timeout=3.0)
    assert again.seq > first.seq
    assert camera.metrics.read_failures == 1


async def test_stop_returns_promptly_while_a_read_is_stuck(
    make_camera: MakeCamera, ip_camera: MjpegCameraSimulator
) -> None:
    camera, availability = await make_camera(
        ip_camera.url, read_timeout_s=10.0, stall_timeout_s=10.0
    )
    frame = await camera.next_frame(timeout=3.0)
    ip_camera.stall()
    with pytest.raises(CameraTimeout):  # drain what was in flight until the reads hang
        while True:
            frame = await camera.next_frame(after_seq=frame.seq, timeout=0.3)

    started = time.monotonic()
    await camera.stop()

    assert time.monotonic() - started < 1.0
    assert camera.metrics.stuck_threads == 1  # left behind, releases its capture later
    assert availability.reports[-1] == (False, f"camera 'cam' ({ip_camera.url}) was stopped")
    with pytest.raises(CameraError, match="not started"):
        await camera.next_frame()


async def test_simulator_answers_other_paths_with_404(ip_camera: MjpegCameraSimulator) -> None:
    reader, writer = await asyncio.open_connection(ip_camera.host, ip_camera.port)
    writer.write(b"GET /other HTTP/1.0\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 2.0)
    writer.close()
    await writer.wait_closed()
    assert status.startswith(b"HTTP/1.0 404")


def test_write_video_wants_frames_of_one_size(tmp_path: Path) -> None:
    frames = [level_frame(0), np.zeros((10, 10, 3), np.uint8)]
    with pytest.raises(ValueError, match="give frames of one size"):
        write_video(tmp_path / "bad.avi", frames, 10.0)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.avi", [], 10.0)
