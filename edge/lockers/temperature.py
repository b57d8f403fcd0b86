"""Temperature of chilled and frozen zones: excursions past a grace period, naming the parcels.

A reading outside the zone's band starts a clock; only when it stays outside for ``grace_s``
is it an excursion (a door opened for a pickup warms a fridge briefly; that is not an alarm).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlmodel import select

from drivers.temperature import ModbusTemperatureSensor, RegisterMap, SensorUnavailable
from edge.clock import rfc3339
from edge.config.models import EdgeConfig, TemperatureSensorConfig, ZoneRule
from edge.db import Database, Transaction
from edge.db.tables import Compartment
from edge.devices.health import DeviceHealth
from edge.lockers import queries
from edge.lockers.temperature_history import TemperatureHistory

log = logging.getLogger(__name__)


@dataclass
class ZoneWatch:
    outside_since: float | None = None
    alarmed: bool = False
    last_celsius: float | None = None


class TemperatureMonitor:
    def __init__(self, config: EdgeConfig, db: Database, health: DeviceHealth) -> None:
        self.config = config
        self.db = db
        self.health = health
        self.sensors: dict[str, ModbusTemperatureSensor] = {}
        self.watches: dict[str, ZoneWatch] = {}
        self.history = TemperatureHistory(db, db.clock)
        for sensor in config.temperature_sensors:
            self.sensors[sensor.name] = sensor_for(sensor)
            self.watches[sensor.name] = ZoneWatch()
            health.register(sensor.name, "temperature_sensor")

    async def watch_forever(self, sensor: TemperatureSensorConfig) -> None:
        driver = self.sensors[sensor.name]
        while True:
            try:
                reading = await driver.read()
            except SensorUnavailable as exc:
                self.health.set(sensor.name, False, str(exc))
            else:
                self.health.set(sensor.name, True)
                await self.observe(sensor, reading.celsius, asyncio.get_running_loop().time())
                await self.history.record(sensor.name, sensor.zone.value, reading.celsius)
            await asyncio.sleep(sensor.poll_interval_s)

    async def observe(self, sensor: TemperatureSensorConfig, celsius: float, now: float) -> None:
        rule = self.config.lockers.zones[sensor.zone]
        watch = self.watches[sensor.name]
        watch.last_celsius = celsius
        if _inside(rule, celsius):
            if watch.alarmed:
                await self.db.transact(
                    lambda tx: self._report(tx, sensor, rule, celsius, "temperature.recovered")
                )
            watch.outside_since, watch.alarmed = None, False
            return
        if watch.outside_since is None:
            watch.outside_since = now
        if not watch.alarmed and now - watch.outside_since >= rule.grace_s:
            watch.alarmed = True
            await self.db.transact(
                lambda tx: self._report(tx, sensor, rule, celsius, "temperature.excursion")
            )
            log.warning(
                "temperature excursion",
                extra={"sensor": sensor.name, "zone": sensor.zone, "celsius": celsius},
            )

    def _report(
        self,
        tx: Transaction,
        sensor: TemperatureSensorConfig,
        rule: ZoneRule,
        celsius: float,
        type_: str,
    ) -> None:
        s = tx.session
        if sensor.compartments is not None:
            compartment_ids = list(sensor.compartments)
        else:
            compartment_ids = list(
                s.exec(select(Compartment.id).where(Compartment.zone == sensor.zone.value)).all()
            )
        parcels = queries.parcels_in(s, compartment_ids)
        tx.emit(
            type_,
            {
                "sensor": sensor.name,
                "zone": sensor.zone.value,
                "celsius": celsius,
                "min_c": rule.min_c,
                "max_c": rule.max_c,
                "grace_s": rule.grace_s,
                "at": rfc3339(self.db.clock.now()),
                "parcels": [
                    {"parcel_id": p.id, "parcel_code": p.code, "compartment": p.compartment_id}
                    for p in sorted(parcels, key=lambda p: (p.compartment_id or "", p.id))
                ],
            },
        )

    async def close(self) -> None:
        for driver in self.sensors.values():
            await driver.close()
        await self.history.flush()


def sensor_for(config: TemperatureSensorConfig) -> ModbusTemperatureSensor:
    """The driver of one configured Modbus temperature sensor."""
    return ModbusTemperatureSensor(
        config.port,
        device_id=config.device_id,
        register=RegisterMap(**config.register_map.model_dump()),
        baudrate=config.baudrate or 9600,
        parity=config.parity,
        stopbits=config.stopbits,
        timeout=config.timeout_s,
        name=config.name,
    )


def _inside(rule: ZoneRule, celsius: float) -> bool:
    if rule.min_c is not None and celsius < rule.min_c:
        return False
    return not (rule.max_c is not None and celsius > rule.max_c)


__all__ = ["TemperatureMonitor", "sensor_for"]
