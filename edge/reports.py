"""What the site tells its upstream besides events: periodic telemetry (QoS 0) and the retained
``state/...`` snapshots. Built from the live pieces; the sync engine only publishes them."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from edge.cabinet.service import CabinetService
from edge.clock import Clock, rfc3339
from edge.db import Database
from edge.db.tables import Compartment
from edge.devices.health import DeviceHealth
from edge.lockers.temperature import TemperatureMonitor
from edge.outbox.retention import OutboxKeeper
from edge.sync.uplink import UplinkStats


class SiteReports:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        health: DeviceHealth,
        temperature: TemperatureMonitor,
        uplink: UplinkStats,
        keeper: OutboxKeeper,
        cabinets: CabinetService | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.health = health
        self.temperature = temperature
        self.uplink = uplink
        self.keeper = keeper
        self.cabinet_service = cabinets

    async def telemetry(self) -> dict[str, Any]:
        return {
            "ts": rfc3339(self.clock.now()),
            "outbox": {
                "pending": self.uplink.pending,
                "acked_seq": self.uplink.acked_seq,
                "last_seq": self.uplink.last_seq,
                "backlog_bytes": self.keeper.backlog.bytes,
                "cap_bytes": self.keeper.cap_bytes,
            },
            "devices": [
                {"name": d.name, "kind": d.kind, "available": d.available}
                for d in self.health.devices.values()
            ],
            "temperatures": [
                {
                    "sensor": sensor.name,
                    "zone": sensor.zone.value,
                    "celsius": self.temperature.watches[sensor.name].last_celsius,
                }
                for sensor in self.temperature.config.temperature_sensors
            ],
            "cabinets": self.cabinet_service.stock_report() if self.cabinet_service else {},
        }

    async def compartments(self) -> list[dict[str, Any]]:
        def load(session: Session) -> list[dict[str, Any]]:
            rows = session.exec(select(Compartment).order_by(col(Compartment.id))).all()
            return [
                {
                    "id": c.id,
                    "state": c.state,
                    "enabled": c.enabled,
                    "size": c.size,
                    "zone": c.zone,
                    "door_open": c.door_open,
                    "fault": c.fault,
                }
                for c in rows
            ]

        return await self.db.read(load)

    async def cabinets(self) -> dict[str, Any]:
        return self.cabinet_service.stock_report() if self.cabinet_service else {}

    async def devices(self) -> list[dict[str, Any]]:
        return [
            {
                "name": d.name,
                "kind": d.kind,
                "available": d.available,
                "reason": d.reason,
                "since": d.since,
            }
            for d in self.health.devices.values()
        ]
