"""``edge doctor`` against a whole simulated site: lock boards, temperature sensors and an RFID
reader on pseudo-terminals, a serial scanner, an MJPEG face camera, an ESL access point, a real
Mosquitto, prepared face models and the SQLite database. Then one fault at a time, each with
the FAIL row and the next step a technician would follow."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import grp
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import SecretStr

from drivers.camera.simulator import MjpegCameraSimulator
from drivers.esl.simulator import AccessPointSimulator
from drivers.rfid.llrp import codec
from drivers.scanner.simulator import SerialScannerSimulator
from edge.broker import LocalBroker
from edge.cli import main
from edge.db.database import create_sqlite_engine
from edge.db.migrate import head_revision, upgrade_to_head
from edge.demo.site import KIOSK_ID, SimulatedSite
from edge.doctor.report import as_table, fail, ok
from edge.facepay.templates import write_key_file
from models.prepare import prepare_models, prepared_path
from tests.mqtt import TlsMaterial, make_tls_material

MakeBroker = Callable[..., Awaitable[LocalBroker]]
# A child process that keeps a port open until its stdin closes, as a running controller does.
HOLD_PORT = "import sys; f = open(sys.argv[1], 'rb'); print('open', flush=True); sys.stdin.read()"


@pytest.fixture(scope="module")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("models")
    prepare_models(cache)
    return cache


@dataclass
class Site:
    """The simulated site and its extra devices; ``write`` puts its config in a YAML file."""

    workdir: Path
    site: SimulatedSite
    broker: LocalBroker
    camera: MjpegCameraSimulator
    access_point: AccessPointSimulator
    scanner: SerialScannerSimulator
    scanner_port: str
    unlocks: list[tuple[int, int]] = field(default_factory=list)

    def document(self, **overrides: Any) -> dict[str, Any]:
        config = self.site.config(
            http_port=0,
            mqtt={"host": self.broker.host, "port": self.broker.port, "connect_timeout_s": 5},
            scanners=[
                {
                    "name": "scanner-1",
                    "kiosk": KIOSK_ID,
                    "kind": "serial",
                    "port": self.scanner_port,
                }
            ],
            labels={
                "access_points": [{"name": "ap-1", "url": self.access_point.base_url}],
            },
        )
        document: dict[str, Any] = _plain(config.model_dump(by_alias=True, exclude_unset=True))
        document.update(overrides)
        return document

    def write(self, **overrides: Any) -> Path:
        path = self.workdir / "edge.yaml"
        path.write_text(yaml.safe_dump(self.document(**overrides)), encoding="utf-8")
        return path

    def facepay(self, cache_dir: Path) -> dict[str, Any]:
        key = self.workdir / "template.key"
        if not key.exists():
            write_key_file(key)
        return {
            "template_key_file": str(key),
            "models": {"cache_dir": str(cache_dir)},
            "terminals": [{"id": KIOSK_ID, "camera": {"uri": self.camera.url}}],
        }


def _plain(value: Any) -> Any:
    """A config dump as YAML can hold it: secrets revealed, paths and enums as text."""
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


@pytest.fixture
async def site(tmp_path: Path, make_broker: MakeBroker) -> AsyncIterator[Site]:
    simulated = SimulatedSite(tmp_path / "site", with_cabinet=True)
    await simulated.start()
    camera = MjpegCameraSimulator(lambda _i: np.full((480, 640, 3), 90, np.uint8), fps=10)
    access_point = AccessPointSimulator()
    scanner = SerialScannerSimulator(tmp_path / "ttySCAN0")
    try:
        await camera.start()
        await access_point.start()
        access_point.add_tags(3)
        scanner_port = await scanner.start()
        broker = await make_broker(persistence=False)
        built = Site(tmp_path, simulated, broker, camera, access_point, scanner, scanner_port)
        for sim in (simulated.boards, simulated.frozen):
            assert sim is not None
            sim.add_unlock_listener(lambda board, lock: built.unlocks.append((board, lock)))
        yield built
    finally:
        await scanner.stop()
        await access_point.stop()
        await camera.stop()
        await simulated.stop()


async def doctor(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run ``edge doctor --json`` as the command line does (its own event loop, in a thread,
    while the simulators keep answering on this one)."""
    out = config.parent / "doctor.json"

    def run() -> int:
        with out.open("w", encoding="utf-8") as stdout, contextlib.redirect_stdout(stdout):
            return main(["doctor", "--config", str(config), "--json", *extra])

    code = await asyncio.to_thread(run)
    return code, json.loads(out.read_text(encoding="utf-8"))


def row(report: dict[str, Any], check: str, target_part: str) -> dict[str, Any]:
    rows = [r for r in report["checks"] if r["check"] == check and target_part in r["target"]]
    assert len(rows) == 1, f"{check} {target_part}: {report['checks']}"
    found: dict[str, Any] = rows[0]
    return found


async def test_whole_site_all_ok_and_nothing_unlocked(site: Site, models_cache: Path) -> None:
    config = site.write(facepay=site.facepay(models_cache))
    code, report = await doctor(config)
    failed = [r for r in report["checks"] if r["result"] != "ok"]
    assert failed == []
    assert code == 0 and report["ok"] is True
    assert row(report, "lock board", "lockers/board1")["detail"].startswith("12 locks answer")
    assert row(report, "lock board", "freezer/board0")["result"] == "ok"
    assert "3.5 °C" in row(report, "temperature", "chiller")["detail"]
    assert "-18.0 °C" in row(report, "temperature", "freezer-probe")["detail"]
    assert "firmware" in row(report, "rfid reader", "cabinet-reader")["detail"]
    assert "port opens" in row(report, "scanner", "scanner-1")["detail"]
    assert "640x480" in row(report, "face camera", f"{KIOSK_ID}/camera")["detail"]
    assert "3 tags" in row(report, "label access point", "ap-1")["detail"]
    assert "connected" in row(report, "mqtt", site.broker.host)["detail"]
    assert len([r for r in report["checks"] if r["check"] == "face model"]) == 2
    assert row(report, "database", "edge.db")["result"] == "ok"
    assert row(report, "disk space", "")["result"] == "ok"
    assert site.unlocks == []  # read-only: no lock was ever commanded open


async def test_table_on_stdout(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    config = site.write()
    code = await asyncio.to_thread(main, ["doctor", "--config", str(config)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].split() == ["CHECK", "TARGET", "RESULT", "DETAIL", "NEXT", "STEP"]
    assert any(line.startswith("lock board") and " ok " in line for line in lines)
    assert lines[-1].endswith("0 failed, 0 skipped")


async def test_missing_port(site: Site) -> None:
    document = site.document()
    document["lockboards"][0]["port"] = str(site.workdir / "ttyGONE")
    config = site.write(lockboards=document["lockboards"])
    code, report = await doctor(config)
    assert code == 1
    missing = row(report, "lock bus", "ttyGONE")
    assert missing["result"] == "FAIL"
    assert "does not exist" in missing["detail"]
    assert "ls -l /dev/serial/by-id" in missing["next_step"]
    assert row(report, "lock board", "freezer/board0")["result"] == "ok"


async def test_board_that_does_not_answer(site: Site) -> None:
    document = site.document()
    document["lockboards"][0]["boards"].append({"address": 9, "locks": 12})
    config = site.write(lockboards=document["lockboards"])
    code, report = await doctor(config)
    assert code == 1
    silent = row(report, "lock board", "lockers/board9")
    assert silent["result"] == "FAIL"
    assert "no answer from board 9" in silent["detail"]
    assert "A/B wiring" in silent["next_step"] and "DIP switches" in silent["next_step"]
    assert row(report, "lock board", "lockers/board1")["result"] == "ok"


async def test_broker_stopped(site: Site) -> None:
    config = site.write()
    await site.broker.stop()
    code, report = await doctor(config)
    assert code == 1
    mqtt = row(report, "mqtt", site.broker.host)
    assert mqtt["result"] == "FAIL"
    assert "connection refused" in mqtt["detail"]
    assert "broker runs" in mqtt["next_step"]


async def test_broker_refuses_bad_password(site: Site, make_broker: MakeBroker) -> None:
    guarded = await make_broker(persistence=False, passwords={"site-user": "right"})
    config = site.write(
        mqtt={
            "host": guarded.host,
            "port": guarded.port,
            "username": "site-user",
            "password": "wrong",
        }
    )
    code, report = await doctor(config)
    assert code == 1
    mqtt = row(report, "mqtt", str(guarded.port))
    assert mqtt["result"] == "FAIL"
    assert "refused user site-user: not authorised" in mqtt["detail"]
    assert "check mqtt.username and mqtt.password" in mqtt["next_step"]

    config = site.write(mqtt={"host": guarded.host, "port": guarded.port})
    code, report = await doctor(config)
    anonymous = row(report, "mqtt", str(guarded.port))
    assert code == 1
    assert "does not accept anonymous clients" in anonymous["detail"]
    assert anonymous["next_step"].startswith("set mqtt.username and mqtt.password")


async def test_database_behind_its_migration_head(site: Site) -> None:
    config = site.write()
    engine = create_sqlite_engine(site.workdir / "site" / "edge.db")
    upgrade_to_head(engine, "0003")
    engine.dispose()
    code, report = await doctor(config)
    assert code == 1
    database = row(report, "database", "edge.db")
    assert database["result"] == "FAIL"
    assert f"schema at 0003, this release expects {head_revision()}" in database["detail"]
    assert f"edge db upgrade --config {config}" in database["next_step"]


async def test_database_at_head_reports_outbox(site: Site) -> None:
    config = site.write()
    engine = create_sqlite_engine(site.workdir / "site" / "edge.db")
    upgrade_to_head(engine)
    engine.dispose()
    code, report = await doctor(config)
    assert code == 0
    assert "quick_check ok" in row(report, "database", "edge.db")["detail"]
    assert "0 event(s) waiting" in row(report, "outbox", "edge.db")["detail"]


async def test_models_missing_and_corrupt(site: Site, models_cache: Path) -> None:
    empty = site.workdir / "no-models"
    empty.mkdir()
    config = site.write(facepay=site.facepay(empty))
    code, report = await doctor(config)
    assert code == 1
    models = [r for r in report["checks"] if r["check"] == "face model"]
    assert [m["result"] for m in models] == ["FAIL", "FAIL"]
    assert "is not prepared" in models[0]["detail"]
    assert models[0]["next_step"] == f"run `edge models prepare --config {config}`"

    damaged = site.workdir / "damaged-models"
    shutil.copytree(models_cache, damaged)
    facepay = site.facepay(damaged)
    detector = prepared_path(damaged, "yunet-2023mar-int8bq")
    detector.write_bytes(detector.read_bytes()[:1000])
    config = site.write(facepay=facepay)
    code, report = await doctor(config)
    assert code == 1
    broken = row(report, "face model", "yunet")
    assert broken["result"] == "FAIL"
    assert "does not match the sha256" in broken["detail"]
    assert broken["next_step"].endswith("--force`")
    assert row(report, "face model", "sface")["result"] == "ok"


async def test_port_held_by_another_process_is_in_use_not_dead(site: Site) -> None:
    assert site.site.frozen is not None
    port = site.site.frozen.port
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; f = open(sys.argv[1], 'rb'); print('open', flush=True); sys.stdin.read()",
            port,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert (await asyncio.to_thread(holder.stdout.readline)).strip() == b"open"
        code, report = await doctor(site.write())
    finally:
        holder.kill()
        holder.wait()
    busy = row(report, "lock bus", "freezer")
    assert busy["result"] == "skipped"
    assert f"PID {holder.pid}" in busy["detail"] and "is `edge run` running?" in busy["detail"]
    assert "systemctl stop edge" in busy["next_step"]
    assert code == 0  # in use is not a failure


async def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("site: {id: x}\nlockboards: [{name: a}]\n", encoding="utf-8")
    code = await asyncio.to_thread(main, ["doctor", "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 2
    assert "invalid configuration" in captured.err
    assert "code_secret" in captured.err
    assert captured.out == ""


class FakeLlrpReader:
    """An LLRP reader's side of a connection: the connection event with ``status``, then an
    answer to capabilities; records every request type it is sent."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[int] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = codec.MessageDecoder()
        writer.write(codec.encode_connection_attempt_event(1, self.status))
        while data := await reader.read(4096):
            for message in decoder.feed(data):
                self.requests.append(message.type)
                if message.type == codec.GET_READER_CAPABILITIES:
                    writer.write(
                        codec.encode_response(
                            codec.GET_READER_CAPABILITIES_RESPONSE, message.msg_id
                        )
                    )
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_llrp_reader_is_only_asked_to_describe_itself(site: Site) -> None:
    free, taken = FakeLlrpReader(status=0), FakeLlrpReader(status=2)
    try:
        readers = [
            {"name": name, "protocol": "llrp", "host": "127.0.0.1", "tcp_port": await fake.start()}
            for name, fake in (("dock-free", free), ("dock-taken", taken))
        ]
        code, report = await doctor(site.write(rfid_readers=readers, cabinets=[]))
    finally:
        await free.stop()
        await taken.stop()
    assert code == 0
    assert row(report, "rfid reader", "dock-free")["detail"] == "LLRP reader answers"
    assert free.requests == [codec.GET_READER_CAPABILITIES, codec.CLOSE_CONNECTION]
    busy = row(report, "rfid reader", "dock-taken")
    assert busy["result"] == "skipped" and "is `edge run` running?" in busy["detail"]
    assert taken.requests == []  # nothing is asked of a reader another client holds


async def test_hid_scanner_missing(site: Site) -> None:
    hid = {"name": "hid-1", "kiosk": KIOSK_ID, "kind": "hid", "device": "/dev/input/nope"}
    code, report = await doctor(site.write(scanners=[hid]))
    assert code == 1
    scanner = row(report, "scanner", "hid-1")
    assert scanner["result"] == "FAIL" and "does not exist" in scanner["detail"]
    assert "ls -l /dev/input/by-id" in scanner["next_step"]


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="needs root and setpriv to take away root's permission override",
)
def test_permission_denied_names_the_group_fix(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB0"
    port.touch()
    os.chown(port, 1000, 20)  # someone else's, group 20 (dialout on Debian)
    port.chmod(0o600)
    # Root without CAP_DAC_OVERRIDE is refused like any user outside the port's group.
    done = subprocess.run(
        [
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            sys.executable,
            "-c",
            "import sys; from edge.doctor.ports import check_serial_port as c; "
            "p = c(sys.argv[1]); print(p.result); print(p.detail); print(p.next_step)",
            str(port),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    result, detail, next_step = done.stdout.splitlines()
    assert result == "FAIL"
    assert detail == f"permission denied opening {port}"
    group = _group_name(20, default="dialout")
    assert f"the user root is not in group {group}: sudo usermod -aG {group} root" in next_step


def _group_name(gid: int, default: str) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return default


def test_table_wraps_long_cells_inside_their_columns() -> None:
    findings = [
        ok("mqtt", "broker:8883", "connected"),
        fail("lock board", "lockers/board9", "no answer " * 8, "check the RS-485 A/B wiring " * 4),
    ]
    lines = as_table(findings, width=100).splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[-1] == "2 checks: 1 ok, 1 failed, 0 skipped"
    detail_column = lines[0].index("DETAIL")
    wrapped = [line for line in lines[2:-2] if not line.startswith(("mqtt", "lock board"))]
    assert wrapped and all(line[:detail_column].strip() == "" for line in wrapped)


async def test_tls_broker_ok_then_untrusted_ca(
    site: Site, tls_broker: LocalBroker, tls_material: TlsMaterial, tmp_path: Path
) -> None:
    mqtt: dict[str, Any] = {"host": tls_broker.host, "port": tls_broker.port}
    mqtt["tls"] = {"ca_file": str(tls_material.ca_file)}
    code, report = await doctor(site.write(mqtt=mqtt))
    assert code == 0
    assert row(report, "mqtt", "(TLS)")["result"] == "ok"

    other = make_tls_material(tmp_path / "other-ca")
    mqtt["tls"] = {"ca_file": str(other.ca_file)}
    code, report = await doctor(site.write(mqtt=mqtt))
    untrusted = row(report, "mqtt", "(TLS)")
    assert code == 1
    assert "the broker's certificate is not trusted" in untrusted["detail"]
    assert "check mqtt.tls.ca_file" in untrusted["next_step"]


async def test_broker_name_that_does_not_resolve(site: Site) -> None:
    code, report = await doctor(site.write(mqtt={"host": "broker.example.invalid"}))
    unresolved = row(report, "mqtt", "broker.example.invalid")
    assert code == 1
    assert unresolved["detail"].startswith("cannot resolve broker.example.invalid")
    assert "check mqtt.host and the DNS settings" in unresolved["next_step"]


async def test_devices_that_do_not_answer(site: Site, models_cache: Path) -> None:
    document = site.document()
    sensors = document["temperature_sensors"]
    sensors[1]["device_id"] = 7  # no sensor at that Modbus address
    readers = document["rfid_readers"]
    readers[0]["protocol"] = "chafon"  # an R2000 is on that port: no Chafon answer
    readers[0]["command_timeout_s"] = 0.3
    readers[0]["antennas"] = [1]
    facepay = site.facepay(models_cache)
    facepay["terminals"][0]["camera"]["uri"] = "http://127.0.0.1:9/video.mjpg"
    Path(facepay["template_key_file"]).chmod(0o644)
    site.access_point.fail_next(status=500, body="internal error")
    config = site.write(temperature_sensors=sensors, rfid_readers=readers, facepay=facepay)
    code, report = await doctor(config)
    assert code == 1
    sensor = row(report, "temperature", "freezer-probe")
    assert sensor["result"] == "FAIL" and "no response from device 7" in sensor["detail"]
    assert "Modbus address must be 7" in sensor["next_step"]
    assert row(report, "temperature", "chiller")["result"] == "ok"
    reader = row(report, "rfid reader", "cabinet-reader")
    assert reader["result"] == "FAIL"
    assert "it must be a chafon reader at 57600 baud" in reader["next_step"]
    camera = row(report, "face camera", f"{KIOSK_ID}/camera")
    assert camera["result"] == "FAIL" and "VLC" in camera["next_step"]
    key = row(report, "face template key", "template.key")
    assert key["result"] == "FAIL" and key["next_step"].startswith("chmod 600 ")
    access_point = row(report, "label access point", "ap-1")
    assert access_point["result"] == "FAIL" and "HTTP 500" in access_point["detail"]
    assert "OpenEPaperLink access point" in access_point["next_step"]
