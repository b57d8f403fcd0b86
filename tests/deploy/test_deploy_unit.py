"""deploy/edge.service and deploy/edge-kiosk.service agree with the code and with systemd."""

from __future__ import annotations

import re
import shlex
import shutil
import struct
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.app import FLUSH_GRACE_S, SHUTDOWN_GRACE_S
from edge.cli import EXIT_INVALID, build_parser
from edge.config.models import HttpConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "edge.service"
KIOSK_UNIT = DEPLOY / "edge-kiosk.service"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """Sections of a unit file, each key with all its values in order (keys may repeat)."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    logical = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not logical and (not raw.strip() or raw.lstrip().startswith(("#", ";"))):
            continue
        if raw.endswith("\\"):  # a continued line
            logical += raw[:-1] + " "
            continue
        line, logical = (logical + raw).strip(), ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} is outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not KEY=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT)["Service"]


def seconds(value: str) -> float:
    """A systemd time span such as ``30``, ``30s``, ``5min`` or ``1min 30s``."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def test_exec_start_runs_edge_run_with_a_config(service: dict[str, list[str]]) -> None:
    (exec_start,) = service["ExecStart"]
    program, *args = exec_start.split()
    assert program == "/opt/edge/.venv/bin/edge"
    assert args[:2] == ["run", "--config"]
    assert build_parser().parse_args(args).handler.__name__ == "cmd_run"
    install = (DEPLOY / "INSTALL.md").read_text(encoding="utf-8")
    assert args[2] in install, "the guide writes the configuration where the unit reads it"
    assert "/opt/edge/.venv" in install


def test_readiness_and_watchdog_use_the_notify_protocol(service: dict[str, list[str]]) -> None:
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    (watchdog,) = service["WatchdogSec"]
    assert 10 <= seconds(watchdog) <= 120
    assert seconds(service["TimeoutStartSec"][0]) >= 120  # a first face model preparation


def test_stop_timeout_covers_the_apps_shutdown_graces(service: dict[str, list[str]]) -> None:
    # drain unlocks, then the outbox: sync.stop and the wait for its task, FLUSH_GRACE_S each.
    needed = SHUTDOWN_GRACE_S + 2 * FLUSH_GRACE_S + 10  # and closing HTTP, devices, database
    assert seconds(service["TimeoutStopSec"][0]) >= needed
    assert service["KillSignal"] == ["SIGTERM"]


def test_restarts_but_not_after_an_invalid_configuration() -> None:
    unit = parse_unit(UNIT)
    assert unit["Service"]["Restart"][0] in {"always", "on-failure"}
    assert seconds(unit["Service"]["RestartSec"][0]) > 0
    assert str(EXIT_INVALID) in unit["Service"]["RestartPreventExitStatus"][0].split()
    assert "StartLimitIntervalSec" in unit["Unit"]
    assert "StartLimitBurst" in unit["Unit"]


def test_own_user_in_the_device_groups(service: dict[str, list[str]]) -> None:
    assert service["User"] == ["edge"]
    assert "DynamicUser" not in service
    assert set(service["SupplementaryGroups"][0].split()) == {"dialout", "video", "input"}
    assert service["StateDirectory"] == ["edge"]
    assert service["ConfigurationDirectory"] == ["edge"]


def test_sandbox_without_privileges_and_only_the_site_devices(
    service: dict[str, list[str]],
) -> None:
    assert service["CapabilityBoundingSet"] == [""]
    assert service["AmbientCapabilities"] == [""]
    for setting in (
        "NoNewPrivileges",
        "ProtectClock",
        "ProtectKernelLogs",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "MemoryDenyWriteExecute",
    ):
        assert service[setting] == ["yes"], setting
    assert service["ProtectSystem"] == ["strict"]
    assert service["SystemCallArchitectures"] == ["native"]
    assert "PrivateDevices" not in service  # it would hide the serial ports
    assert service["DevicePolicy"] == ["closed"]
    allowed = {rule.split()[0] for rule in service["DeviceAllow"]}
    assert allowed == {
        "char-ttyUSB",
        "char-ttyACM",
        "char-ttyS",
        "char-video4linux",
        "char-input",
    }


def _verifiable_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit with its program replaced by one that exists here (verify checks it)."""
    text = unit.read_text(encoding="utf-8")
    program = re.search(r"^ExecStart=(\S+)", text, re.MULTILINE)
    assert program is not None
    stand_in = shutil.which("true") or "/bin/true"
    copy = tmp_path / unit.name
    copy.write_text(text.replace(program.group(1), stand_in), encoding="utf-8")
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("unit", [UNIT, KIOSK_UNIT], ids=lambda p: p.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    copy = _verifiable_copy(unit, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if str(copy) in line]
    assert done.returncode == 0, done.stderr
    assert complaints == []  # e.g. "Unknown key 'X' in section [Service], ignoring."


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_rates_the_sandbox_well(tmp_path: Path) -> None:
    copy = _verifiable_copy(UNIT, tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "security", "--no-pager", "--offline=yes", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in done.stderr:
        pytest.skip("this systemd-analyze has no offline security check")
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert exposure is not None, done.stdout + done.stderr
    assert float(exposure.group(1)) <= 2.5  # systemd's "OK" band; it was 1.9 when written


def _shared_objects() -> Iterator[Path]:
    roots = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    for root in roots:
        for path in root.rglob("*.so*"):
            if path.is_file() and not path.is_symlink():
                yield path


PT_GNU_STACK, PF_X = 0x6474E551, 0x1


def needs_executable_stack(path: Path) -> bool | None:
    """Whether an ELF shared object asks for an executable stack; None if not ELF."""
    with path.open("rb") as file:
        ident = file.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF":
            return None
        wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", ident, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", ident, 0x36)
        else:
            (phoff,) = struct.unpack_from(order + "I", ident, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", ident, 0x2A)
        file.seek(phoff)
        table = file.read(phentsize * phnum)
    for i in range(phnum):
        entry = table[i * phentsize : (i + 1) * phentsize]
        (p_type,) = struct.unpack_from(order + "I", entry, 0)
        if p_type == PT_GNU_STACK:
            (flags,) = struct.unpack_from(order + "I", entry, 4 if wide else 24)
            return bool(flags & PF_X)
    return True  # no PT_GNU_STACK: the loader assumes an executable stack


@pytest.mark.skipif(sys.platform != "linux", reason="ELF shared objects")
def test_no_installed_library_needs_an_executable_stack() -> None:
    """MemoryDenyWriteExecute=yes makes loading such a library fail (``cannot enable
    executable stack``): onnxruntime wheels have shipped with that flag before."""
    checked, offenders = 0, []
    for path in _shared_objects():
        verdict = needs_executable_stack(path)
        if verdict is None:
            continue
        checked += 1
        if verdict:
            offenders.append(str(path))
    assert checked > 10  # numpy, onnxruntime, cv2, ... were looked at
    assert offenders == []


def test_the_elf_check_sees_an_executable_stack(tmp_path: Path) -> None:
    """The checker itself: a minimal 64-bit ELF with PT_GNU_STACK flags RWX is flagged."""
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, 1)
    program = bytearray(56)
    struct.pack_into("<II", program, 0, PT_GNU_STACK, 0x7)
    (tmp_path / "exec.so").write_bytes(bytes(header + program))
    struct.pack_into("<II", program, 0, PT_GNU_STACK, 0x6)
    (tmp_path / "noexec.so").write_bytes(bytes(header + program))
    assert needs_executable_stack(tmp_path / "exec.so") is True
    assert needs_executable_stack(tmp_path / "noexec.so") is False
    (tmp_path / "text.so").write_text("not elf")
    assert needs_executable_stack(tmp_path / "text.so") is None


def test_kiosk_unit_shows_the_kiosk_page_in_cage() -> None:
    unit = parse_unit(KIOSK_UNIT)
    service = unit["Service"]
    assert service["User"] == ["kiosk"]  # a desktop user, never root nor edge
    assert service["PAMName"] == ["login"]
    assert "edge.service" in unit["Unit"]["After"][0].split()
    assert f":{HttpConfig().port}/kiosk/" in service["ExecStart"][0]
    (credential,) = service["LoadCredential"]
    assert credential.startswith("kiosk-token:/etc/edge/secrets/")


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_kiosk_command_opens_the_page_with_the_token_from_the_credential(
    tmp_path: Path,
) -> None:
    """Run the unit's command as systemd would, with cage replaced by a stand-in that prints
    the arguments it was given."""
    (exec_start,) = parse_unit(KIOSK_UNIT)["Service"]["ExecStart"]
    argv = [word.replace("$$", "$") for word in shlex.split(exec_start)]  # systemd's unquoting
    assert argv[:2] == ["/bin/sh", "-c"]
    script = argv[2]
    assert script.startswith("exec /usr/bin/cage ")
    stand_in = tmp_path / "cage"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n', encoding="utf-8")
    stand_in.chmod(0o755)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "kiosk-token").write_text("k1+token/=", encoding="utf-8")
    done = subprocess.run(
        ["sh", "-c", script.replace("/usr/bin/cage", str(stand_in), 1)],
        env={"CREDENTIALS_DIRECTORY": str(credentials), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    args = done.stdout.splitlines()
    assert args[:3] == ["-d", "--", "/usr/bin/chromium"]
    assert "--kiosk" in args
    assert args[-1] == f"http://127.0.0.1:{HttpConfig().port}/kiosk/#token=k1+token/="
