"""A simulated site: lock boards and temperature sensors on pseudo-terminals, and its config.

Used by ``edge demo`` and ``edge bench``: the controller opens the simulators' ports like
real serial devices and speaks the real wire protocols to them.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.lockboard import BoardFamily
from drivers.lockboard.simulator import LockBoardSimulator
from drivers.rfid.chafon.simulator import ChafonSimulator
from drivers.rfid.epc import encode_sgtin96
from drivers.rfid.field import TagField
from drivers.rfid.m100.simulator import M100Simulator
from drivers.rfid.r2000.simulator import R2000Simulator
from drivers.temperature import RegisterMap
from drivers.temperature.simulator import ModbusTemperatureSimulator
from edge.config.models import EdgeConfig
from edge.db import Transaction
from edge.db.tables import Price, Product

# Well-known on purpose: the demo runs on loopback with simulated hardware only.
SITE_ID = "demo-site"
KIOSK_ID = "kiosk-1"
KIOSK_TOKEN = "demo-kiosk-token"  # noqa: S105
OPERATOR_TOKEN = "demo-operator-token"  # noqa: S105
COURIER_ID, COURIER_CREDENTIAL = "courier-1", "2468"
TEMPERATURE_REGISTER = RegisterMap(address=0, table="holding", data_type="int16", scale=0.1)
CABINET_BOARD, CABINET_LOCK = 3, 1

# The demo cabinet's goods: GTIN, Chinese name, price in fen.
DEMO_PRODUCTS = [
    ("06901234567892", "农夫山泉 550ml", 200),
    ("06901234567885", "可口可乐 330ml", 350),
    ("06901234567878", "乐事薯片 原味 70g", 790),
    ("06901234567861", "蒙牛纯牛奶 250ml", 450),
    ("06901234567854", "奥利奥饼干 97g", 890),
]


def add_demo_catalog(tx: Transaction, since: datetime) -> None:
    """The demo products, each with one price version in force from ``since``."""
    for gtin, name, price in DEMO_PRODUCTS:
        tx.session.add(Product(gtin=gtin, name=name, updated_at=since))
        tx.session.flush()
        tx.session.add(
            Price(
                gtin=gtin,
                version=1,
                amount=price,
                currency="CNY",
                effective_at=since,
                updated_at=since,
            )
        )


@dataclass
class SimulatedSite:
    """Ambient and chilled compartments on a 485-board bus, frozen ones on a Kerong bus."""

    workdir: Path
    locks_per_board: int = 12
    unsolicited_reports: bool = True
    boards: LockBoardSimulator | None = None
    frozen: LockBoardSimulator | None = None
    sensors: ModbusTemperatureSimulator | None = None
    compartments: list[dict[str, Any]] = field(default_factory=list)
    with_cabinet: bool = False
    """A smart cabinet: its door on a third board, an R2000 reader on its own port."""
    tags: TagField = field(default_factory=TagField)
    """The cabinet's tag population (the reader simulator answers from it)."""
    reader_protocol: str = "r2000"
    """Which reader family the cabinet has: r2000 (two antennas), chafon or m100 (one)."""
    reader: R2000Simulator | ChafonSimulator | M100Simulator | None = None
    facepay: dict[str, Any] | None = None
    """The ``facepay`` section (face payment at the kiosk's camera), when the site has it."""

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        boards = {1: self.locks_per_board, 2: 6}
        if self.with_cabinet:
            boards[CABINET_BOARD] = 2
            link = str(self.workdir / "ttyRFID0")
            simulators = {"r2000": R2000Simulator, "chafon": ChafonSimulator, "m100": M100Simulator}
            self.reader = simulators[self.reader_protocol](self.tags, link=link)
            self.reader.open()
        self.boards = LockBoardSimulator(
            BoardFamily.BOARD_485,
            boards,
            link=str(self.workdir / "ttyLOCKS0"),
            unsolicited_reports=self.unsolicited_reports,
        )
        self.frozen = LockBoardSimulator(
            BoardFamily.KERONG, {0: 4}, link=str(self.workdir / "ttyLOCKS1")
        )
        self.sensors = ModbusTemperatureSimulator(
            {1: TEMPERATURE_REGISTER, 2: TEMPERATURE_REGISTER},
            link_a=str(self.workdir / "ttyMODBUS-server"),
            link_b=str(self.workdir / "ttyTEMP0"),
        )
        await self.boards.start()
        await self.frozen.start()
        await self.sensors.start()
        self.sensors.set_temperature(1, 3.5)
        self.sensors.set_temperature(2, -18.0)
        sizes = ["S", "M", "L"]
        self.compartments = (
            [
                {
                    "id": f"A{lock:02d}",
                    "bus": "lockers",
                    "board": 1,
                    "lock": lock,
                    "size": sizes[(lock - 1) * 3 // self.locks_per_board],
                    "zone": "ambient",
                }
                for lock in range(1, self.locks_per_board + 1)
            ]
            + [
                {
                    "id": f"C{lock:02d}",
                    "bus": "lockers",
                    "board": 2,
                    "lock": lock,
                    "size": "S" if lock <= 3 else "M",
                    "zone": "chilled",
                }
                for lock in range(1, 7)
            ]
            + [
                {
                    "id": f"F{lock:02d}",
                    "bus": "freezer",
                    "board": 0,
                    "lock": lock,
                    "size": "M",
                    "zone": "frozen",
                }
                for lock in range(1, 5)
            ]
        )

    def config(self, http_port: int = 8080, **overrides: Any) -> EdgeConfig:
        assert self.boards and self.frozen and self.sensors
        document: dict[str, Any] = {
            "site": {"id": SITE_ID, "name": "Demo parcel and fresh-food locker"},
            "data_dir": str(self.workdir),
            "logging": {"level": "WARNING", "format": "console"},
            "http": {"host": "127.0.0.1", "port": http_port, "operator_token": OPERATOR_TOKEN},
            "code_secret": secrets.token_hex(16),
            "kiosks": [{"id": KIOSK_ID, "token": KIOSK_TOKEN}],
            "lockboards": [
                {
                    "name": "lockers",
                    "port": self.boards.port,
                    "protocol": "485-board",
                    "boards": [
                        {"address": 1, "locks": self.locks_per_board},
                        {"address": 2, "locks": 6},
                        *([{"address": CABINET_BOARD, "locks": 2}] if self.with_cabinet else []),
                    ],
                    "poll_interval_s": 1.0,
                },
                {
                    "name": "freezer",
                    "port": self.frozen.port,
                    "protocol": "kerong",
                    "boards": [{"address": 0, "locks": 4}],
                    "poll_interval_s": 0.5,
                },
            ],
            "temperature_sensors": [
                {
                    "name": "chiller",
                    "port": self.sensors.port,
                    "device_id": 1,
                    "zone": "chilled",
                    "register": {"address": 0, "scale": 0.1},
                    "poll_interval_s": 5,
                },
                {
                    "name": "freezer-probe",
                    "port": self.sensors.port,
                    "device_id": 2,
                    "zone": "frozen",
                    "register": {"address": 0, "scale": 0.1},
                    "poll_interval_s": 5,
                },
            ],
            "lockers": {
                "compartments": self.compartments,
                "couriers": [
                    {"id": COURIER_ID, "name": "Demo Courier", "credential": COURIER_CREDENTIAL}
                ],
                "door_open_timeout_s": 5,
            },
        }
        if self.with_cabinet:
            assert self.reader is not None
            document["rfid_readers"] = [
                {
                    "name": "cabinet-reader",
                    "protocol": self.reader_protocol,
                    "port": self.reader.path,
                    "antennas": [1, 2] if self.reader_protocol == "r2000" else [1],
                }
            ]
            document["cabinets"] = [
                {
                    "id": "K1",
                    "name": "Snacks and drinks",
                    "reader": "cabinet-reader",
                    "door": {"bus": "lockers", "board": CABINET_BOARD, "lock": CABINET_LOCK},
                    "door_open_timeout_s": 5,
                }
            ]
        if self.facepay is not None:
            document["facepay"] = self.facepay
        for key, value in overrides.items():
            document[key] = value
        return EdgeConfig.model_validate(document)

    def stock_cabinet(self, per_product: int) -> list[str]:
        """Put ``per_product`` tagged items of every demo product in the cabinet."""
        antennas = 2 if self.reader_protocol == "r2000" else 1
        placed = []
        for index, (gtin, _name, _price) in enumerate(DEMO_PRODUCTS):
            for serial in range(1, per_product + 1):
                epc = encode_sgtin96(gtin, index * 100_000 + serial)
                self.tags.place(epc, antenna=1 + serial % antennas)
                placed.append(epc)
        return placed

    def close_cabinet(self) -> None:
        assert self.boards is not None
        self.boards.close_door(CABINET_BOARD, CABINET_LOCK)

    def simulator_for(self, compartment_id: str) -> tuple[LockBoardSimulator, int, int]:
        comp = next(c for c in self.compartments if c["id"] == compartment_id)
        sim = self.boards if comp["bus"] == "lockers" else self.frozen
        assert sim is not None
        return sim, comp["board"], comp["lock"]

    def close_door(self, compartment_id: str) -> None:
        sim, board, lock = self.simulator_for(compartment_id)
        sim.close_door(board, lock)

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.close()
        for sim in (self.boards, self.frozen):
            if sim is not None:
                await sim.stop()
        if self.sensors is not None:
            await self.sensors.stop()
        await asyncio.sleep(0)
