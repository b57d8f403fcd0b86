"""The configuration schema: one YAML file, validated by these pydantic models.

Field names are the YAML keys. Every serial device names its ``port``, ``protocol`` and serial
parameters. Secrets are ``Secret`` fields: a literal value or ``{file: /path/to/secret}``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.config.cabinets import CabinetConfig, RfidReaderConfig
from edge.config.facepay import FacePayConfig
from edge.config.labels import LabelsConfig
from edge.config.scanners import ScannerConfig
from edge.config.sync import CommandsConfig, MqttConfig, OutboxConfig
from edge.config.types import Bit, Secret, StopBits, Strict


class Zone(StrEnum):
    AMBIENT = "ambient"
    CHILLED = "chilled"
    FROZEN = "frozen"


class SiteConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str = ""


class DatabaseConfig(Strict):
    path: Path = Path("edge.db")
    """Relative paths are resolved against ``data_dir``."""


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: readable on a terminal, one JSON object per line otherwise."""


class KioskConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    token: Secret


class HttpConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    operator_token: Secret | None = None
    """Required for the operator endpoints; without it they answer 503."""


class SerialParams(Strict):
    port: str = Field(min_length=1)
    baudrate: int | None = Field(default=None, gt=0)
    """``None``: the protocol family's default."""


class BoardConfig(Strict):
    address: int = Field(ge=0, le=255)
    locks: int = Field(default=24, ge=1, le=24)


class LockBusConfig(SerialParams):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    protocol: Literal["485-board", "kerong"]
    boards: list[BoardConfig] = Field(min_length=1)
    request_timeout_s: float = Field(default=0.3, gt=0, le=10)
    retries: int = Field(default=2, ge=0, le=10)
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    query_all_closed_bit: Bit = 1
    """485-board query-all replies: which bit value means "closed" (boards differ)."""

    @model_validator(mode="after")
    def _boards_fit_protocol(self) -> LockBusConfig:
        seen: set[int] = set()
        for board in self.boards:
            if board.address in seen:
                raise ValueError(f"board address {board.address} appears twice on this bus")
            seen.add(board.address)
            if self.protocol == "kerong" and (board.address > 15 or board.locks > 16):
                raise ValueError("kerong boards have addresses 0..15 and at most 16 locks")
            if self.protocol == "485-board" and not 1 <= board.address <= 32:
                raise ValueError("485-board addresses are 1..32 (DIP switch)")
        return self


class RegisterConfig(Strict):
    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input"] = "holding"
    data_type: Literal["int16", "uint16", "int32", "float32"] = "int16"
    scale: float = 0.1
    offset: float = 0.0
    word_order: Literal["big", "little"] = "big"


class TemperatureSensorConfig(SerialParams):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    protocol: Literal["modbus-rtu"] = "modbus-rtu"
    parity: Literal["N", "E", "O"] = "N"
    stopbits: StopBits = 1
    device_id: int = Field(ge=1, le=247)
    register_map: RegisterConfig = Field(alias="register")
    """YAML key ``register``: where and how the sensor keeps its reading."""
    zone: Zone
    compartments: list[str] | None = None
    """Compartments this sensor watches; default: every compartment in its zone."""
    poll_interval_s: float = Field(default=10.0, gt=0, le=3600)
    timeout_s: float = Field(default=0.5, gt=0, le=10)


class ZoneRule(Strict):
    min_c: float | None = None
    max_c: float | None = None
    grace_s: float = Field(default=600, ge=0)
    """How long a reading may stay outside the band before it is an excursion."""
    expiry_hours: float = Field(default=48, gt=0)

    @model_validator(mode="after")
    def _band_is_ordered(self) -> ZoneRule:
        if self.min_c is not None and self.max_c is not None and self.min_c > self.max_c:
            raise ValueError("min_c must not be above max_c")
        return self


def _default_zones() -> dict[Zone, ZoneRule]:
    return {
        Zone.AMBIENT: ZoneRule(expiry_hours=72),
        Zone.CHILLED: ZoneRule(min_c=0, max_c=4, grace_s=600, expiry_hours=24),
        Zone.FROZEN: ZoneRule(min_c=-25, max_c=-15, grace_s=600, expiry_hours=48),
    }


class CompartmentConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    bus: str
    board: int
    lock: int = Field(ge=1, le=24)
    size: str
    zone: Zone = Zone.AMBIENT
    enabled: bool = True


class CodeAttemptConfig(Strict):
    max_failures: int = Field(default=5, ge=1, le=100)
    """Wrong codes allowed per terminal within ``window_s``; the next one locks input."""
    window_s: float = Field(default=600, gt=0)
    lockout_s: float = Field(default=60, gt=0)
    lockout_max_s: float = Field(default=3600, gt=0)
    """Each further lockout doubles, up to this."""


class CourierConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = ""
    credential: Secret


class LockersConfig(Strict):
    sizes: list[str] = Field(default_factory=lambda: ["S", "M", "L"], min_length=1)
    """Compartment sizes, smallest first."""
    zones: dict[Zone, ZoneRule] = Field(default_factory=_default_zones)
    compartments: list[CompartmentConfig] = Field(default_factory=list)
    couriers: list[CourierConfig] = Field(default_factory=list)
    door_open_timeout_s: float = Field(default=10, gt=0, le=120)
    door_left_open_s: float = Field(default=120, gt=0)
    pickup_code_digits: int = Field(default=8, ge=6, le=12)
    code_attempts: CodeAttemptConfig = CodeAttemptConfig()
    courier_session_s: float = Field(default=600, gt=0)
    expiry_check_s: float = Field(default=60, gt=0)
    pickup_code_display_s: float = Field(default=600, gt=0)
    """How long the kiosk may fetch a new pickup code after the deposit (kept in memory only)."""

    @field_validator("sizes")
    @classmethod
    def _sizes_unique(cls, sizes: list[str]) -> list[str]:
        if len(set(sizes)) != len(sizes):
            raise ValueError("sizes must be unique")
        return sizes


class EdgeConfig(Strict):
    site: SiteConfig
    data_dir: Path = Path("/var/lib/edge")
    database: DatabaseConfig = DatabaseConfig()
    logging: LoggingConfig = LoggingConfig()
    http: HttpConfig = HttpConfig()
    code_secret: Secret
    """Key for the HMAC under which pickup codes are stored (never the codes themselves)."""
    kiosks: list[KioskConfig] = Field(default_factory=list)
    lockboards: list[LockBusConfig] = Field(default_factory=list)
    temperature_sensors: list[TemperatureSensorConfig] = Field(default_factory=list)
    lockers: LockersConfig = LockersConfig()
    rfid_readers: list[RfidReaderConfig] = Field(default_factory=list)
    cabinets: list[CabinetConfig] = Field(default_factory=list)
    facepay: FacePayConfig | None = None
    """Face payment; without it shoppers identify by member QR code only."""
    scanners: list[ScannerConfig] = Field(default_factory=list)
    """Barcode/QR scanners; each feeds one kiosk's flows (docs/scanners.md)."""
    labels: LabelsConfig | None = None
    """Electronic shelf labels; without it ``label.bind`` and ``label.refresh`` are refused."""
    mqtt: MqttConfig | None = None
    """The upstream broker; without it the site runs alone and events wait in the outbox."""
    commands: CommandsConfig = CommandsConfig()
    outbox: OutboxConfig = OutboxConfig()

    @property
    def database_path(self) -> Path:
        return self.resolve(self.database.path)

    def resolve(self, path: Path) -> Path:
        """A configured path: relative ones are inside ``data_dir``."""
        path = path.expanduser()
        return path if path.is_absolute() else self.data_dir.expanduser() / path
