"""A cheap IP camera on loopback: an HTTP MJPEG server, with the faults real ones have.

Like most cheap IP cameras it answers ``GET /video.mjpg`` with ``multipart/x-mixed-replace``:
one JPEG part per frame, for as long as the client stays. OpenCV's FFMPEG backend reads it with
``cv2.VideoCapture("http://127.0.0.1:PORT/video.mjpg", cv2.CAP_FFMPEG, [...])``, the same way
it reads the real thing. Faults:

* :meth:`stall`: stop sending but keep every socket open (a hung camera); clients that connect
  meanwhile get no answer. :meth:`resume` carries on.
* :meth:`disconnect`: drop every connection and refuse new ones (camera unplugged or
  rebooting). :meth:`restore` listens again on the same port.

Also :func:`write_video`, which writes frames to an MJPG ``.avi`` for file sources.

Run ``python -m drivers.camera.simulator --port 8081`` to serve a test pattern until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

FrameSource = Callable[[int], np.ndarray] | Iterable[np.ndarray]

_BOUNDARY = b"frame"
_REQUEST_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 2.0


class MjpegCameraSimulator:
    """An HTTP MJPEG camera on 127.0.0.1 serving ``frames`` at ``fps``.

    ``frames`` is a callable ``index -> image`` or an iterable of images (BGR or grey uint8);
    an iterable that runs out leaves the camera connected but silent, like a hung one.
    """

    def __init__(
        self,
        frames: FrameSource,
        *,
        fps: float = 20.0,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/video.mjpg",
        jpeg_quality: int = 85,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"simulator fps must be positive, not {fps}")
        self._frames = frames
        self._iterator: Iterator[np.ndarray] | None = None
        self.fps = fps
        self.host = host
        self.port = port
        self.path = path
        self._quality = jpeg_quality
        self._server: asyncio.Server | None = None
        self._producer: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._frame: tuple[int, bytes] | None = None
        self._stalled = False
        self._closing = False
        self._epoch = 0  # bumped by disconnect(): connections of an older epoch end
        self._changed = asyncio.Event()
        self.requests = 0  # HTTP requests received (one per client open)
        self.frames_sent = 0  # JPEG parts written, over all connections

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    @property
    def connections(self) -> int:
        return len(self._writers)

    async def start(self) -> None:
        await self._listen()
        self._producer = asyncio.create_task(self._produce(), name="mjpeg simulator frames")

    async def stop(self) -> None:
        self._closing = True
        await self._close_connections()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def __aenter__(self) -> MjpegCameraSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ faults

    def stall(self) -> None:
        """Stop sending frames; connections stay open and new ones get no answer."""
        self._stalled = True
        self._notify()

    def resume(self) -> None:
        self._stalled = False
        self._notify()

    async def disconnect(self) -> None:
        """Drop every connection and refuse new ones until :meth:`restore`."""
        await self._close_connections()

    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._server is None and not self._closing:
            await self._listen()

    # ------------------------------------------------------------------ internals

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_connections(self) -> None:
        self._epoch += 1
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when a camera loses power
        self._notify()
        handlers = list(self._handlers)
        if handlers:
            # Handlers end by themselves once woken; cancelling them would log noise (3.11).
            _done, pending = await asyncio.wait(handlers, timeout=_STOP_TIMEOUT_S)
            for task in pending:
                task.cancel()
        if server is not None:
            await server.wait_closed()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _next_image(self, index: int) -> np.ndarray | None:
        if callable(self._frames):
            return self._frames(index)
        if self._iterator is None:
            self._iterator = iter(self._frames)
        return next(self._iterator, None)

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.fps
        due = loop.time()
        index = 0
        while True:
            image = self._next_image(index)
            if image is None:
                return  # out of frames: connected but silent
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
            if not ok:
                raise ValueError(f"simulator frame {index} could not be encoded as JPEG")
            self._frame = (index, jpeg.tobytes())
            index += 1
            self._notify()
            # The camera's frame clock: a fixed rate, not "interval after the last send".
            due = max(due + interval, loop.time())
            await asyncio.sleep(due - loop.time())

    def _serving(self, epoch: int) -> bool:
        return not self._closing and epoch == self._epoch

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        epoch = self._epoch
        try:
            await self._serve(reader, writer, epoch)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, or we dropped it
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.transport.abort()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, epoch: int
    ) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                request = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return
        self.requests += 1
        method, _, rest = request.decode("latin-1").partition(" ")
        target = rest.split(" ", 1)[0].split("?", 1)[0]
        if method != "GET" or target != self.path:
            writer.write(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        answered = False
        last_sent = -1
        while self._serving(epoch):
            frame = self._frame
            if self._stalled or frame is None or frame[0] == last_sent:
                await self._changed.wait()
                continue
            if not answered:
                writer.write(
                    b"HTTP/1.0 200 OK\r\n"
                    b"Content-Type: multipart/x-mixed-replace; boundary=" + _BOUNDARY + b"\r\n"
                    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
                )
                answered = True
            index, jpeg = frame
            writer.write(
                b"--" + _BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n"
            )
            await writer.drain()
            last_sent = index
            self.frames_sent += 1


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write ``frames`` (BGR or grey uint8, all one size) to an MJPG ``.avi``; returns the count.

    For file sources in tests and demos; OpenCV reads the file back with ``cv2.CAP_FFMPEG``.
    """
    path = Path(path)
    writer: cv2.VideoWriter | None = None
    width = height = 0
    count = 0
    try:
        for image in frames:
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if writer is None:
                height, width = image.shape[:2]
                fourcc = cv2.VideoWriter.fourcc(*"MJPG")
                writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"video file {path} could not be created: check the directory")
            elif image.shape[:2] != (height, width):
                raise ValueError(
                    f"frame {count} for {path} is {image.shape[1]}x{image.shape[0]}, not "
                    f"{width}x{height} like the first: give frames of one size"
                )
            writer.write(image)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError(f"no frames given for video file {path}: give at least one")
    return count


def pattern_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A moving bar and the frame number: enough to see that a stream is live and in order."""
    image = np.full((height, width, 3), 40, np.uint8)
    x = (index * 4) % width
    image[:, x : x + 8] = (0, 200, 255)
    cv2.putText(image, str(index), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255,) * 3, 2)
    return image


async def _serve_forever(port: int, fps: float) -> None:
    simulator = MjpegCameraSimulator(pattern_frame, fps=fps, port=port)
    await simulator.start()
    print(f"serving a test pattern at {simulator.url} (Ctrl-C to stop)")
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="An MJPEG IP camera on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.port, args.fps))


if __name__ == "__main__":
    main()
