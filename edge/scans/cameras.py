"""Face-payment cameras that also read codes: a member QR shown to the kiosk's camera."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from drivers.camera import Camera, CameraScan, CameraScanner, CodeReader
from edge.config.facepay import TerminalConfig
from edge.scans.hub import ScanHub


def camera_scanners(
    terminals: Sequence[TerminalConfig], cameras: Mapping[str, Camera], hub: ScanHub
) -> list[CameraScanner]:
    """One scanner for each terminal whose camera is configured to read codes."""
    scanners = []
    for terminal in terminals:
        if not terminal.codes:
            continue
        reader = CodeReader(
            qr="qr" in terminal.codes, linear=[c for c in terminal.codes if c != "qr"]
        )

        def scanned(scan: CameraScan, kiosk: str = terminal.id) -> None:
            hub.publish(kiosk, scan.camera, scan.symbology, scan.text)

        scanners.append(CameraScanner(cameras[terminal.id], reader, scanned))
    return scanners
