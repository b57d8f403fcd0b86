"""The site's scanners, built from ``scanners`` in the configuration, feeding the scan hub.

Each scanner serves one kiosk: its codes are published there, a scan it could not read whole
is shown on that kiosk as "scan again" (never delivered in part), and its availability goes to
device health. A scanner that fails takes only itself down. A face-payment camera can read
codes too (``read_codes``): the camera stays face payment's, only the reading is added here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from drivers.camera import Camera, CameraScan, CameraScanner, CameraSettings, CodeReader
from drivers.scanner import HidScanner, RejectedScan, ScannedCode, SerialScanner
from edge.config.scanners import (
    CameraScannerConfig,
    HidScannerConfig,
    ScannerConfig,
    SerialScannerConfig,
)
from edge.scans.hub import ScanHub

Availability = Callable[[str, bool, str | None], None]


class SiteScanners:
    def __init__(
        self, configs: list[ScannerConfig], hub: ScanHub, availability: Availability
    ) -> None:
        self.hub = hub
        self._availability = availability
        self.drivers: dict[str, SerialScanner | HidScanner] = {}
        self.cameras: dict[str, Camera] = {}
        """Cameras of ``kind: camera`` scanners: started and stopped here."""
        self.readers: list[CameraScanner] = []
        """Every camera that reads codes, these and face-payment ones."""
        for config in configs:
            if isinstance(config, SerialScannerConfig):
                self.drivers[config.name] = SerialScanner(
                    config.name,
                    config.port,
                    baudrate=config.baudrate,
                    terminator=config.terminator,
                    prefix=config.prefix,
                    suffix=config.suffix,
                    aim_ids=config.aim_ids,
                    on_scan=self._scanned(config.kiosk),
                    on_rejected=self._rejected(config.kiosk),
                    on_availability=self._available(config.name),
                )
            elif isinstance(config, HidScannerConfig):
                self.drivers[config.name] = HidScanner(
                    config.name,
                    config.device,
                    layout=config.layout,
                    terminator=config.terminator,
                    on_scan=self._scanned(config.kiosk),
                    on_rejected=self._rejected(config.kiosk),
                    on_availability=self._available(config.name),
                )
            else:
                self.read_codes(config.kiosk, self._camera(config), config.codes)

    def _camera(self, config: CameraScannerConfig) -> Camera:
        camera = Camera(
            config.name,
            CameraSettings(**config.camera.model_dump()),
            on_availability=self._available(config.name),
        )
        self.cameras[config.name] = camera
        return camera

    def read_codes(self, kiosk: str, camera: Camera, codes: list[str]) -> CameraScanner:
        """Read ``codes`` from ``camera``'s frames for ``kiosk``."""
        reader = CodeReader(qr="qr" in codes, linear=[c for c in codes if c != "qr"])

        def scanned(scan: CameraScan) -> None:
            self.hub.publish(kiosk, scan.camera, scan.symbology, scan.text)

        scanner = CameraScanner(camera, reader, scanned)
        self.readers.append(scanner)
        return scanner

    def _scanned(self, kiosk: str) -> Callable[[ScannedCode], None]:
        def scanned(code: ScannedCode) -> None:
            self.hub.publish(kiosk, code.device, code.symbology, code.text)

        return scanned

    def _rejected(self, kiosk: str) -> Callable[[RejectedScan], None]:
        def rejected(scan: RejectedScan) -> None:
            self.hub.reject(kiosk, scan.device, str(scan.reason))

        return rejected

    def _available(self, name: str) -> Callable[[bool, str | None], None]:
        return lambda up, why: self._availability(name, up, why)

    @property
    def names(self) -> list[str]:
        return [*self.drivers, *self.cameras]

    async def start(self) -> None:
        for driver in self.drivers.values():
            await driver.start()
        for camera in self.cameras.values():
            await camera.start()
        for scanner in self.readers:
            scanner.start()

    async def close(self) -> None:
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        for scanner in self.readers:
            await scanner.stop()
        for camera in self.cameras.values():
            await camera.stop()
