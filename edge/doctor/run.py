"""What to probe for a configuration, and probing it all concurrently, each probe in its time.

Serial ports are checked first, once per path (see ``ports``): a missing, forbidden or busy
port is reported without its driver ever opening it. Probes of different ports, hosts and
files then run together; blocking work (hashing models, SQLite) runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from edge.config.models import EdgeConfig
from edge.config.scanners import CameraScannerConfig, HidScannerConfig, SerialScannerConfig
from edge.doctor import media_probes, serial_probes, service_probes
from edge.doctor.ports import PortProblem, check_serial_port
from edge.doctor.report import Finding, fail, ok

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 20.0

Probe = Callable[[], Awaitable[list[Finding]]]


@dataclass(frozen=True)
class Planned:
    check: str
    target: str
    probe: Probe
    port: str | None = None
    """The serial port it opens: its preflight problem, if any, is the whole answer."""
    limit_s: float = DEFAULT_TIMEOUT_S


async def run_doctor(
    config: EdgeConfig,
    config_path: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_done: Callable[[], None] | None = None,
) -> list[Finding]:
    """Every finding, in the order of the configuration; ``on_done`` after each probe."""
    planned = plan(config, config_path, timeout_s)
    ports = sorted({p.port for p in planned if p.port is not None})
    problems = dict(
        zip(
            ports,
            await asyncio.gather(*(asyncio.to_thread(check_serial_port, p) for p in ports)),
            strict=True,
        )
    )

    async def guarded(item: Planned) -> list[Finding]:
        try:
            return await _run_one(item, problems.get(item.port) if item.port else None)
        finally:
            if on_done is not None:
                on_done()

    results = await asyncio.gather(*(guarded(item) for item in planned))
    return [finding for findings in results for finding in findings]


async def _run_one(item: Planned, port_problem: PortProblem | None) -> list[Finding]:
    if port_problem is not None:
        return [serial_probes.port_finding(item.check, item.target, port_problem)]
    try:
        async with asyncio.timeout(item.limit_s):
            return await item.probe()
    except TimeoutError:
        return [
            fail(
                item.check,
                item.target,
                f"no result within {item.limit_s:g} s",
                "check the device's power and cable; if it is only slow, run the doctor again "
                "with a longer --timeout",
            )
        ]
    except Exception as exc:  # a probe's bug must not hide every other finding
        log.debug("probe failed", exc_info=True, extra={"target": item.target})
        return [fail(item.check, item.target, f"probe failed: {type(exc).__name__}: {exc}", "")]


def plan(config: EdgeConfig, config_path: Path, timeout_s: float) -> list[Planned]:
    items: list[Planned] = []
    for bus in config.lockboards:
        per_board = (bus.retries + 1) * bus.request_timeout_s
        items.append(
            Planned(
                "lock bus",
                f"{bus.name} ({bus.port})",
                _many(serial_probes.probe_lock_bus, bus),
                bus.port,
                max(timeout_s, serial_probes.PORT_OPEN_S + 1 + per_board * len(bus.boards)),
            )
        )
    for sensor in config.temperature_sensors:
        items.append(
            Planned(
                "temperature",
                f"{sensor.name} ({sensor.port} #{sensor.device_id})",
                _one(serial_probes.probe_temperature, sensor),
                sensor.port,
                timeout_s,
            )
        )
    for reader in config.rfid_readers:
        if reader.protocol == "llrp":
            target = f"{reader.name} ({reader.host}:{reader.tcp_port})"
            items.append(
                Planned(
                    "rfid reader",
                    target,
                    _one(serial_probes.probe_llrp_reader, reader),
                    None,
                    timeout_s,
                )
            )
        else:
            target = f"{reader.name} ({reader.port})"
            items.append(
                Planned(
                    "rfid reader",
                    target,
                    _one(serial_probes.probe_serial_reader, reader),
                    reader.port,
                    timeout_s,
                )
            )
    for scanner in config.scanners:
        items.append(_scanner(scanner, timeout_s))
    if config.facepay is not None:
        key = config.resolve(config.facepay.template_key_file)
        items.append(Planned("face template key", str(key), _sync(_template_key, key)))
        for terminal in config.facepay.terminals:
            cameras = [("camera", terminal.camera), ("nir", terminal.nir_camera)]
            for role, camera in cameras:
                if camera is not None:
                    name = f"{terminal.id}/{role}"
                    items.append(
                        Planned(
                            "face camera",
                            name,
                            _one(media_probes.probe_camera, "face camera", name, camera),
                            None,
                            timeout_s,
                        )
                    )
        items.append(
            Planned(
                "face model",
                str(config.resolve(config.facepay.models.cache_dir)),
                _thread(service_probes.probe_models, config, config_path),
                None,
                max(timeout_s, 60.0),
            )
        )
    if config.labels is not None:
        for ap in config.labels.access_points:
            items.append(
                Planned(
                    "label access point",
                    f"{ap.name} ({ap.url})",
                    _one(media_probes.probe_access_point, ap),
                    None,
                    max(timeout_s, ap.timeout_s * 3),
                )
            )
    if config.mqtt is not None:
        mqtt = config.mqtt
        items.append(
            Planned(
                "mqtt",
                f"{mqtt.host}:{mqtt.effective_port}",
                _one(service_probes.probe_mqtt, mqtt, config.site.id),
                None,
                max(timeout_s, 3 * mqtt.connect_timeout_s),
            )
        )
    else:
        items.append(Planned("mqtt", "-", _sync(service_probes.mqtt_not_configured)))
    items.append(
        Planned(
            "database",
            str(config.database_path),
            _thread(service_probes.probe_database, config, config_path),
            None,
            max(timeout_s, service_probes.QUICK_CHECK_S + 10),
        )
    )
    return items


def _scanner(
    scanner: SerialScannerConfig | HidScannerConfig | CameraScannerConfig, timeout_s: float
) -> Planned:
    if isinstance(scanner, SerialScannerConfig):
        target = f"{scanner.name} ({scanner.port})"
        return Planned(
            "scanner",
            target,
            _sync(serial_probes.probe_serial_scanner, scanner),
            scanner.port,
            timeout_s,
        )
    if isinstance(scanner, HidScannerConfig):
        target = f"{scanner.name} ({scanner.device})"
        return Planned(
            "scanner", target, _sync(media_probes.probe_hid_scanner, scanner), None, timeout_s
        )
    return Planned(
        "scanner",
        scanner.name,
        _one(media_probes.probe_camera, "scanner", scanner.name, scanner.camera),
        None,
        timeout_s,
    )


def _template_key(path: Path) -> Finding:
    from edge.facepay.templates import TemplateKeyError, read_key_file

    try:
        read_key_file(path)
    except TemplateKeyError as exc:
        if "chmod" in str(exc):
            step = f"chmod 600 {path} (and chown it to the service user)"
        else:
            step = (
                "restore the key file from backup; `edge facepay keygen PATH` writes a new one "
                "(enrolled members must then enrol again)"
            )
        return fail("face template key", str(path), str(exc), step)
    except OSError as exc:
        return fail(
            "face template key",
            str(path),
            f"cannot read {path}: {exc.strerror}",
            f"the service user must be able to read it: sudo chown edge: {path}",
        )
    return ok("face template key", str(path), "a 32-byte key, mode 0600")


# Adapters: every probe becomes "a coroutine that returns findings".


def _many(probe: Callable[..., Awaitable[list[Finding]]], *args: object) -> Probe:
    return lambda: probe(*args)


def _one(probe: Callable[..., Awaitable[Finding]], *args: object) -> Probe:
    async def run() -> list[Finding]:
        return [await probe(*args)]

    return run


def _sync(probe: Callable[..., Finding], *args: object) -> Probe:
    async def run() -> list[Finding]:
        return [probe(*args)]

    return run


def _thread(probe: Callable[..., list[Finding]], *args: object) -> Probe:
    async def run() -> list[Finding]:
        return await asyncio.to_thread(probe, *args)

    return run
