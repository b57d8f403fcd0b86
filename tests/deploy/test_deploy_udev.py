"""deploy/99-edge.rules: a cheap lint of every rule, and the names the configuration uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "99-edge.rules"

# udev(7): keys that match, keys that assign; {x} keys take an attribute or property name.
MATCH_KEYS = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER"}
MATCH_KEYS |= {"DRIVERS", "ATTR", "ATTRS", "ENV", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT"}
ASSIGN_KEYS = {"SYMLINK", "OWNER", "GROUP", "MODE", "ENV", "TAG", "RUN", "OPTIONS", "IMPORT"}
KEYED = {"ATTR", "ATTRS", "ENV", "TEST", "IMPORT"}

PAIR = re.compile(
    r"\s*(?P<key>[A-Z]+)(?:\{(?P<arg>[A-Za-z0-9_]+)\})?"
    r'\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>[^"]*)"\s*(?:,|$)'
)


def rules() -> list[tuple[int, str]]:
    lines = RULES.read_text(encoding="utf-8").splitlines()
    return [(n, line) for n, line in enumerate(lines, 1) if line.strip() and line[0] != "#"]


def parse_rule(line: str) -> list[tuple[str, str | None, str, str]]:
    """(key, {argument}, operator, value) for each pair; fails on anything else."""
    pairs, position = [], 0
    while position < len(line):
        found = PAIR.match(line, position)
        assert found, f'not a KEY=="value" pair at column {position}: {line[position:]!r}'
        pairs.append((found["key"], found["arg"], found["op"], found["value"]))
        position = found.end()
    return pairs


def symlinks() -> set[str]:
    return {
        "/dev/" + value
        for _, line in rules()
        for key, _, _, value in parse_rule(line)
        if key == "SYMLINK"
    }


@pytest.mark.parametrize(
    ("number", "line"), rules(), ids=lambda v: f"line{v}" if isinstance(v, int) else ""
)
def test_every_rule_is_well_formed(number: int, line: str) -> None:
    pairs = parse_rule(line)
    matches = [p for p in pairs if p[2] in {"==", "!="}]
    assignments = [p for p in pairs if p[2] not in {"==", "!="}]
    assert matches and assignments, f"line {number}: a rule matches something and sets something"
    for key, arg, _, _ in matches:
        assert key in MATCH_KEYS, f"line {number}: {key} is not a udev match key"
        assert (arg is not None) == (key in KEYED), f"line {number}: {key}{{...}}"
    for key, arg, op, value in assignments:
        assert key in ASSIGN_KEYS, f"line {number}: {key} is not a udev assignment key"
        assert (arg is not None) == (key in KEYED), f"line {number}: {key}{{...}}"
        if key == "SYMLINK":
            assert op == "+=", f"line {number}: SYMLINK+= keeps the other names (by-id...)"
            assert re.fullmatch(r"(input/)?edge-[a-z0-9-]+", value), value
        if key == "GROUP":
            assert value in {"dialout", "video", "input"}, "a group the service is in"
        if key == "MODE":
            assert value == "0660", "owner and group only"


def test_placeholders_never_match_a_real_device() -> None:
    for number, line in rules():
        values = [value for key, _, op, value in parse_rule(line) if op == "=="]
        assert any("REPLACE" in v for v in values), f"line {number} may match a real device"


def test_the_configuration_template_uses_names_the_rules_make() -> None:
    example = yaml.safe_load((ROOT / "config" / "production.example.yaml").read_text("utf-8"))
    ports = [bus["port"] for bus in example["lockboards"]]
    ports += [sensor["port"] for sensor in example["temperature_sensors"]]
    ports += [reader["port"] for reader in example["rfid_readers"] if "port" in reader]
    ports += [scanner["port"] for scanner in example["scanners"] if "port" in scanner]
    udev_names = [port for port in ports if port.startswith("/dev/edge-")]
    assert udev_names, "the template names its ports by udev name"
    assert set(udev_names) <= symlinks()


def test_compose_maps_devices_the_rules_make() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text("utf-8"))
    devices = compose["services"]["edge"]["devices"]
    hosts = {device.split(":")[0] for device in devices}
    assert hosts <= symlinks()


def test_cameras_and_hid_scanners_get_their_own_names() -> None:
    names = symlinks()
    assert any(name.startswith("/dev/edge-camera-") for name in names)
    assert any(name.startswith("/dev/input/edge-scanner-") for name in names)
    hid = next(line for _, line in rules() if 'SUBSYSTEM=="input"' in line)
    assert 'ENV{LIBINPUT_IGNORE_DEVICE}="1"' in hid  # the kiosk screen never gets the keys
