"""A line of simulated Modbus RTU temperature sensors, served by pymodbus's own serial server.

The server (the real peer, with pymodbus's framing, CRC checks and exception responses) opens one
side of a :class:`drivers.pty.NullModem`; the driver opens the other side, :attr:`port`. That side
sits behind a stable link, so :meth:`unplug` / :meth:`replug` look like pulling and re-inserting a
USB adapter.

Two things the pymodbus 3.16 server does differently from a real RS-485 line are corrected here:

* A request for a device id that is not configured is answered with exception 0x04
  (DEVICE_FAILURE: its ``SimCore`` raises ``KeyError`` and ``ignore_missing_devices`` only covers
  the deprecated datastore). On a real line nobody answers, so such requests are dropped.
* Register values are set through the documented ``SimDevice.action`` hook, which the server calls
  on every access with the live register block (to be modified in place).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import cast

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from ..pty import NullModem
from .registers import RegisterMap, encode_temperature


class ModbusTemperatureSimulator:
    """Simulated temperature sensors (device id -> register map) on one serial line."""

    def __init__(
        self,
        devices: dict[int, RegisterMap],
        link_a: str | os.PathLike[str] | None = None,
        link_b: str | os.PathLike[str] | None = None,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
    ) -> None:
        if not devices:
            raise ValueError("at least one device is needed")
        for device_id in devices:
            if not 1 <= device_id <= 247:
                raise ValueError(f"device id must be 1..247, not {device_id}")
        self.devices = dict(devices)
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self._tmpdir: str | None = None
        if link_b is None:
            # The driver's side needs a stable name for unplug/replug to keep the path.
            self._tmpdir = tempfile.mkdtemp(prefix="temp-sim-")
            link_b = Path(self._tmpdir) / "ttyTEMP0"
        self._modem = NullModem(link_a, link_b)
        self._registers: dict[int, list[int]] = {
            device_id: encode_temperature(0.0, reg) for device_id, reg in devices.items()
        }
        self._server: ModbusSerialServer | None = None
        self._last_rx = b""
        #: Raw request frames the server received (as they arrived over the wire), oldest first.
        self.received_frames: list[bytes] = []

    @property
    def port(self) -> str:
        """The path the driver opens."""
        return self._modem.b.path

    @property
    def server_port(self) -> str:
        """The path pymodbus's serial server has open."""
        return self._modem.a.path

    @property
    def plugged(self) -> bool:
        return self._modem.b.plugged

    async def start(self) -> None:
        self._modem.open()
        self._server = ModbusSerialServer(
            [self._device(device_id, reg) for device_id, reg in self.devices.items()],
            port=self.server_port,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=self.bytesize,
            trace_packet=self._trace_packet,
            trace_pdu=self._trace_pdu,
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
        self._modem.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self) -> ModbusTemperatureSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def set_temperature(self, device_id: int, celsius: float) -> None:
        """What ``device_id`` reports from now on, encoded through its register map."""
        try:
            reg = self.devices[device_id]
        except KeyError:
            raise ValueError(f"no simulated device {device_id}") from None
        self._registers[device_id] = encode_temperature(celsius, reg)

    def registers(self, device_id: int) -> list[int]:
        """The registers ``device_id`` currently serves."""
        return list(self._registers[device_id])

    def unplug(self) -> None:
        """The driver's side of the line vanishes (its link dangles)."""
        self._modem.b.unplug()

    def replug(self) -> None:
        """A fresh device appears under the same path."""
        self._modem.b.replug()

    # -- pymodbus server hooks ----------------------------------------------------------------

    def _device(self, device_id: int, reg: RegisterMap) -> SimDevice:
        """Coils/discrete inputs unused; the map's registers valid only in the map's table."""
        count = reg.register_count
        valid = [SimData(reg.address, values=[0] * count, datatype=DataType.REGISTERS)]
        invalid = [SimData(reg.address, count=count, datatype=DataType.INVALID)]
        bits = [SimData(0, values=0, datatype=DataType.BITS)]
        holding, inputs = (valid, invalid) if reg.table == "holding" else (invalid, valid)
        return SimDevice(
            device_id,
            simdata=(bits, list(bits), holding, inputs),
            action=self._action_for(device_id),
        )

    def _action_for(self, device_id: int) -> SimAction:
        reg = self.devices[device_id]

        async def action(
            function_code: int,
            start_address: int,
            _address: int,
            _count: int,
            current_registers: list[int],
            _set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if function_code == reg.function_code:
                offset = reg.address - start_address
                values = self._registers[device_id]
                current_registers[offset : offset + len(values)] = values
            return None

        return action

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._last_rx = data  # the server's receive buffer, passed whole each time
        return data

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending:
            return pdu
        self.received_frames.append(self._last_rx)
        if pdu.dev_id not in self.devices:
            # Not on this line: stay silent like a real bus. A falsy PDU makes pymodbus's request
            # handler skip the request (requesthandler: ``if self.last_pdu: ...``).
            return cast(ModbusPDU, None)
        return pdu
