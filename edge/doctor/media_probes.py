"""Probes of cameras (face payment terminals, camera scanners), HID scanners and shelf-label
access points: one frame, one look at the input device, one read of the tag database."""

from __future__ import annotations

import asyncio
import os

from drivers.camera import Camera
from drivers.camera.capture import Source, SourceKind
from drivers.camera.errors import CameraError
from drivers.camera.settings import CameraSettings
from drivers.esl.backend import AccessPointBusy, AccessPointUnreachable, EslError
from drivers.esl.openepaperlink import OpenEPaperLinkAP
from edge.config.facepay import CameraConfig
from edge.config.labels import AccessPointConfig
from edge.config.scanners import HidScannerConfig
from edge.doctor.ports import permission_denied, port_holders
from edge.doctor.report import Finding, Result, fail, ok, skipped

# Beyond the camera's own open timeout: time for the first frame to arrive.
FIRST_FRAME_GRACE_S = 3.0


async def probe_camera(check: str, name: str, config: CameraConfig) -> Finding:
    """Open the camera with the controller's driver and wait for one frame."""
    settings = CameraSettings(**config.model_dump())
    source = Source.from_uri(settings.uri)
    target = f"{name} ({source.label})"
    if source.kind is SourceKind.DEVICE:
        holders = await asyncio.to_thread(_holders, source.target)
        if holders:
            return skipped(
                check,
                target,
                f"{source.target} in use by {', '.join(holders)} (is `edge run` running?)",
                "stop the controller (sudo systemctl stop edge) and run the doctor again",
            )
    camera = Camera(name, settings)
    await camera.start()
    try:
        frame = await camera.next_frame(timeout=settings.open_timeout_s + FIRST_FRAME_GRACE_S)
    except CameraError as exc:
        return fail(check, target, camera.last_error or str(exc), _camera_fix(source))
    finally:
        await camera.stop()
    height, width = frame.image.shape[:2]
    return ok(check, target, f"one frame read, {width}x{height}")


def _holders(device: str) -> list[str]:
    return port_holders(device) if os.path.exists(device) else []


def _camera_fix(source: Source) -> str:
    if source.kind is SourceKind.DEVICE:
        return (
            "check the USB cable, ls -l /dev/v4l/by-id and deploy/99-edge.rules; the user "
            "needs group video: sudo usermod -aG video edge"
        )
    if source.kind is SourceKind.STREAM:
        return "check the camera's address, user and password and the network (try the URL in VLC)"
    return "check the video file's path and that it is a complete video"


def probe_hid_scanner(config: HidScannerConfig) -> Finding:
    """The input device exists and this user may read it (not grabbed: a running controller
    keeps its grab)."""
    target = f"{config.name} ({config.device})"
    if not os.path.exists(config.device):
        return fail(
            "scanner",
            target,
            f"{config.device} does not exist (scanner unplugged, or another name)",
            "plug the scanner in and find its name: ls -l /dev/input/by-id (the one ending in "
            "-event-kbd)",
        )
    try:
        descriptor = os.open(config.device, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        problem = permission_denied(config.device, usual_group="input")
        return Finding("scanner", target, problem.result, problem.detail, problem.next_step)
    except OSError as exc:
        return fail("scanner", target, f"cannot open {config.device}: {exc.strerror}", "replug it")
    os.close(descriptor)
    return ok("scanner", target, f"input device readable{_device_name(config.device)}")


def _device_name(path: str) -> str:
    try:
        import evdev
    except ImportError:
        return " (python-evdev is not installed: pip install evdev)"
    try:
        device = evdev.InputDevice(path)
    except OSError:
        return ""
    try:
        return f": {device.name}"
    finally:
        device.close()


async def probe_access_point(config: AccessPointConfig) -> Finding:
    """The tag database, read the way label delivery confirms its uploads."""
    target = f"{config.name} ({config.url})"
    ap = OpenEPaperLinkAP(config.url, timeout_s=config.timeout_s, name=config.name)
    try:
        tags = await ap.states()
    except AccessPointUnreachable as exc:
        return fail(
            "label access point",
            target,
            str(exc),
            "check the access point's power and network, and labels.access_points[].url "
            "(open it in a browser)",
        )
    except AccessPointBusy as exc:
        return fail(
            "label access point",
            target,
            str(exc),
            "the access point says it is not running: open its web page, check its state, "
            "restart it",
        )
    except EslError as exc:
        return fail(
            "label access point",
            target,
            str(exc),
            "check that the url is an OpenEPaperLink access point (its web page lists tags)",
        )
    finally:
        await ap.close()
    return Finding("label access point", target, Result.OK, f"answers, {len(tags)} tags known")
