"""Configuration of RFID readers and the smart cabinets they watch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edge.config.types import Strict

SERIAL_PROTOCOLS = ("r2000", "chafon", "m100")
Name = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class RfidReaderConfig(Strict):
    name: str = Name
    protocol: Literal["r2000", "chafon", "m100", "llrp"]
    port: str | None = None
    """Serial readers: the device path (``/dev/ttyUSB0``, a udev name, a pseudo-terminal)."""
    baudrate: int | None = Field(default=None, gt=0)
    """``None``: the family's default (R2000 115200, Chafon 57600, M100 115200)."""
    address: int | None = Field(default=None, ge=0, le=255)
    """Serial reader address; ``None``: the family's default."""
    host: str | None = None
    """LLRP readers: host name or address (port ``tcp_port``)."""
    tcp_port: int = Field(default=5084, ge=1, le=65535)
    antennas: list[int] = Field(default_factory=lambda: [1], min_length=1)
    power_dbm: float | None = Field(default=None, ge=0, le=33)
    """Output power set at every connect; ``None`` leaves the reader's own setting."""
    command_timeout_s: float = Field(default=1.0, gt=0, le=30)
    round_timeout_s: float = Field(default=5.0, gt=0, le=60)
    """Longest one antenna's inventory may take before the reader counts as not answering."""

    @model_validator(mode="after")
    def _address_fits_protocol(self) -> RfidReaderConfig:
        if self.protocol in SERIAL_PROTOCOLS and not self.port:
            raise ValueError(f"a {self.protocol} reader needs a serial port")
        if self.protocol == "llrp" and not self.host:
            raise ValueError("an llrp reader needs a host")
        if len(set(self.antennas)) != len(self.antennas) or min(self.antennas) < 1:
            raise ValueError("antennas must be distinct port numbers from 1")
        return self


class DoorLockConfig(Strict):
    bus: str
    board: int
    lock: int = Field(ge=1, le=24)


class PresenceConfig(Strict):
    """A tag is in the cabinet when it was seen in at least ``k`` of the last ``m`` rounds.

    ``m`` rides out missed reads (a tag missed in one round is not a sale); ``k`` above 1 keeps
    a single ghost read (a corrupted EPC that passed the checksum) from counting as stock.
    """

    k: int = Field(default=2, ge=1, le=32)
    m: int = Field(default=6, ge=1, le=32)

    @model_validator(mode="after")
    def _k_within_m(self) -> PresenceConfig:
        if self.k > self.m:
            raise ValueError("k must not be greater than m")
        return self


class SettleConfig(Strict):
    """After the door closes: inventory until the population is stable, within a bound."""

    stable_rounds: int = Field(default=2, ge=1, le=32)
    """Rounds (after the first ``presence.m``) with no change in the decided population."""
    timeout_s: float = Field(default=20.0, gt=0, le=600)
    """No stable population by then: settle if ``presence.m`` rounds completed, else hold."""


class CabinetConfig(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    name: str = ""
    reader: str
    antennas: list[int] | None = None
    """The reader's antennas inside this cabinet; default: all of them."""
    door: DoorLockConfig
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    presence: PresenceConfig = PresenceConfig()
    settle: SettleConfig = SettleConfig()
    door_open_timeout_s: float = Field(default=15, gt=0, le=120)
    """After the unlock: how long the shopper has to pull the door before it relocks."""
    snapshot_interval_s: float = Field(default=900, gt=0)
    """How often a closed cabinet reports ``inventory.snapshot`` upstream."""
    enabled: bool = True
