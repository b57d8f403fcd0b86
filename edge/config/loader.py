"""Load a configuration file: YAML, then ``EDGE_...`` overrides, then validation.

Every problem is reported at once, each with its YAML path (``lockboards[0].port``) and, where the
value came from the file, its line, so an installer fixes a whole file in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge.config.models import EdgeConfig

ENV_PREFIX = "EDGE_"
# Variables with the prefix that name how to run, not what to configure.
RESERVED_ENV = frozenset({"EDGE_CONFIG"})

PathParts = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    line: int | None = None
    source: str | None = None
    """Where the value came from when not the file (an environment variable)."""

    def __str__(self) -> str:
        where = self.path or "(top level)"
        if self.line is not None:
            where += f" (line {self.line})"
        if self.source:
            where += f" (from {self.source})"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` says every reason."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in the configuration")


def format_path(parts: PathParts) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _line_map(node: yaml.Node, prefix: PathParts = ()) -> Iterator[tuple[PathParts, int]]:
    yield prefix, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            yield from _line_map(value_node, (*prefix, str(key_node.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _line_map(item, (*prefix, index))


def _duplicate_keys(node: yaml.Node, prefix: PathParts = ()) -> Iterator[tuple[PathParts, int]]:
    """Keys given twice in one mapping: YAML keeps the last silently, hiding a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                yield (*prefix, key), key_node.start_mark.line + 1
            seen.add(key)
            yield from _duplicate_keys(value_node, (*prefix, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*prefix, index))


def _env_overrides(environ: Mapping[str, str]) -> Iterator[tuple[str, PathParts, str]]:
    """``EDGE_HTTP__PORT=8081`` → (``http``, ``port``) = ``"8081"``; list items by index.

    Values stay text: the schema decides their type (``8081`` becomes an integer for ``port``,
    while ``EDGE_SITE__ID=0123`` stays the string ``"0123"``, not YAML's octal 83).
    """
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        parts: PathParts = tuple(
            int(piece) if piece.isdigit() else piece.lower()
            for piece in name[len(ENV_PREFIX) :].split("__")
        )
        yield name, parts, raw


def _apply_override(document: dict[str, Any], parts: PathParts, value: Any) -> str | None:
    """Set one scalar; returns why it cannot be applied, or None."""
    target: Any = document
    for depth, part in enumerate(parts[:-1]):
        if isinstance(target, dict):
            target = target.setdefault(part, {})
        elif isinstance(target, list) and isinstance(part, int) and part < len(target):
            target = target[part]
        else:
            return f"no such setting: {format_path(parts[: depth + 1])}"
    last = parts[-1]
    if isinstance(target, list) and isinstance(last, int) and last < len(target):
        current = target[last]
    elif isinstance(target, dict):
        current = target.get(last)
    else:
        return f"no such setting: {format_path(parts)}"
    if isinstance(current, dict | list):
        return "only scalar settings can be overridden from the environment"
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return None


def parse_config(
    text: str, source: str = "<config>", environ: Mapping[str, str] | None = None
) -> EdgeConfig:
    environ = os.environ if environ is None else environ
    try:
        root = yaml.compose(text)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [Problem("", f"not valid YAML: {reason}", line)]) from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(source, [Problem("", "the file must be a mapping of settings")])
    lines = dict(_line_map(root)) if root is not None else {}

    problems: list[Problem] = [
        Problem(format_path(parts), "this key appears twice in the same mapping", line)
        for parts, line in (_duplicate_keys(root) if root is not None else ())
    ]
    env_sources: dict[PathParts, str] = {}
    for name, parts, value in _env_overrides(environ):
        error = _apply_override(document, parts, value)
        if error:
            problems.append(Problem(format_path(parts), error, source=name))
        else:
            env_sources[parts] = name

    def problem(parts: PathParts, message: str) -> Problem:
        env = env_sources.get(parts)
        if env is None and parts not in lines:
            # A setting the file does not have, created by an override (``EDGE_HTPP__PORT``).
            env = next((n for p, n in env_sources.items() if p[: len(parts)] == parts), None)
        line = None if env else _nearest_line(lines, parts)
        return Problem(format_path(parts), message, line, env)

    try:
        config = EdgeConfig.model_validate(document)
    except ValidationError as exc:
        for detail in exc.errors(include_url=False):
            problems.append(problem(tuple(detail["loc"]), _clean_message(detail["msg"])))
        raise ConfigError(source, problems) from None
    problems.extend(problem(parts, message) for parts, message in cross_check(config))
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> EdgeConfig:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [Problem("", f"cannot read file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(file), [Problem("", "the file is not UTF-8 text")]) from exc
    return parse_config(text, str(file), environ)


def _nearest_line(lines: dict[PathParts, int], parts: PathParts) -> int | None:
    # A missing key has no line of its own: point at its parent.
    for end in range(len(parts), -1, -1):
        if parts[:end] in lines:
            return lines[parts[:end]]
    return None


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


def cross_check(config: EdgeConfig) -> Iterator[tuple[PathParts, str]]:
    """Checks that span sections: references, uniqueness, shared ports."""
    ports: dict[str, PathParts] = {}
    buses: dict[str, dict[int, int]] = {}
    for i, bus in enumerate(config.lockboards):
        if bus.name in buses:
            yield ("lockboards", i, "name"), f"lock bus name {bus.name!r} is used twice"
        # A repeated name keeps the first bus: compartments are checked against that one.
        buses.setdefault(bus.name, {board.address: board.locks for board in bus.boards})
        if bus.port in ports:
            yield (
                ("lockboards", i, "port"),
                f"port {bus.port} is already used by {format_path(ports[bus.port])}",
            )
        ports.setdefault(bus.port, ("lockboards", i))

    sizes = config.lockers.sizes
    seen_ids: set[str] = set()
    seen_locks: dict[tuple[str, int, int], str] = {}
    for i, comp in enumerate(config.lockers.compartments):
        at: PathParts = ("lockers", "compartments", i)
        if comp.id in seen_ids:
            yield (*at, "id"), f"compartment id {comp.id!r} is used twice"
        seen_ids.add(comp.id)
        if comp.size not in sizes:
            yield (*at, "size"), f"unknown size {comp.size!r}; configured sizes: {', '.join(sizes)}"
        if comp.zone not in config.lockers.zones:
            yield (*at, "zone"), f"zone {comp.zone.value!r} has no rule under lockers.zones"
        boards = buses.get(comp.bus)
        if boards is None:
            yield (*at, "bus"), f"no lock bus named {comp.bus!r} under lockboards"
            continue
        if comp.board not in boards:
            yield (*at, "board"), f"bus {comp.bus!r} has no board with address {comp.board}"
            continue
        if comp.lock > boards[comp.board]:
            yield (
                (*at, "lock"),
                f"board {comp.board} on {comp.bus!r} has only {boards[comp.board]} locks",
            )
        key = (comp.bus, comp.board, comp.lock)
        if key in seen_locks:
            yield (*at, "lock"), f"lock already used by compartment {seen_locks[key]!r}"
        seen_locks.setdefault(key, comp.id)

    for i, sensor in enumerate(config.temperature_sensors):
        if sensor.port in ports and ports[sensor.port][0] != "temperature_sensors":
            # Modbus sensors may share one RS-485 line with each other, never with a lock bus.
            yield (
                ("temperature_sensors", i, "port"),
                (f"port {sensor.port} is already used by {format_path(ports[sensor.port])}"),
            )
        ports.setdefault(sensor.port, ("temperature_sensors", i))
        if sensor.zone not in config.lockers.zones:
            yield ("temperature_sensors", i, "zone"), f"zone {sensor.zone.value!r} has no rule"
        for j, comp_id in enumerate(sensor.compartments or []):
            if comp_id not in seen_ids:
                yield ("temperature_sensors", i, "compartments", j), f"no compartment {comp_id!r}"

    yield from _check_cabinets(config, ports, buses, seen_locks)
    yield from _check_facepay(config)
    yield from _check_scanners(config, ports)

    id_lists: dict[PathParts, list[str]] = {
        ("kiosks",): [kiosk.id for kiosk in config.kiosks],
        ("lockers", "couriers"): [courier.id for courier in config.lockers.couriers],
        ("cabinets",): [cabinet.id for cabinet in config.cabinets],
    }
    for section, ids in id_lists.items():
        for i, item_id in enumerate(ids):
            if item_id in ids[:i]:
                yield (*section, i, "id"), f"id {item_id!r} is used twice"


def _check_facepay(config: EdgeConfig) -> Iterator[tuple[PathParts, str]]:
    if config.facepay is None:
        return
    kiosks = {kiosk.id for kiosk in config.kiosks}
    for i, terminal in enumerate(config.facepay.terminals):
        # A kiosk drives its own camera and claims only its own face checks.
        if terminal.id not in kiosks:
            yield (
                ("facepay", "terminals", i, "id"),
                f"no kiosk with id {terminal.id!r} under kiosks (a face terminal is a kiosk)",
            )


def _check_scanners(
    config: EdgeConfig, ports: dict[str, PathParts]
) -> Iterator[tuple[PathParts, str]]:
    kiosks = {kiosk.id for kiosk in config.kiosks}
    names: set[str] = set()
    for i, scanner in enumerate(config.scanners):
        if scanner.name in names:
            yield ("scanners", i, "name"), f"scanner name {scanner.name!r} is used twice"
        names.add(scanner.name)
        if scanner.kiosk not in kiosks:
            yield ("scanners", i, "kiosk"), f"no kiosk with id {scanner.kiosk!r} under kiosks"
        if scanner.kind == "serial":
            if scanner.port in ports:
                yield (
                    ("scanners", i, "port"),
                    f"port {scanner.port} is already used by {format_path(ports[scanner.port])}",
                )
            ports.setdefault(scanner.port, ("scanners", i))


def _check_cabinets(
    config: EdgeConfig,
    ports: dict[str, PathParts],
    buses: dict[str, dict[int, int]],
    seen_locks: dict[tuple[str, int, int], str],
) -> Iterator[tuple[PathParts, str]]:
    readers: dict[str, list[int]] = {}
    for i, reader in enumerate(config.rfid_readers):
        if reader.name in readers:
            yield ("rfid_readers", i, "name"), f"reader name {reader.name!r} is used twice"
        readers.setdefault(reader.name, reader.antennas)
        if reader.port is not None:
            if reader.port in ports:
                yield (
                    ("rfid_readers", i, "port"),
                    f"port {reader.port} is already used by {format_path(ports[reader.port])}",
                )
            ports.setdefault(reader.port, ("rfid_readers", i))
    claimed: dict[tuple[str, int], str] = {}
    for i, cabinet in enumerate(config.cabinets):
        at: PathParts = ("cabinets", i)
        antennas = readers.get(cabinet.reader)
        if antennas is None:
            yield (*at, "reader"), f"no RFID reader named {cabinet.reader!r} under rfid_readers"
        else:
            for j, antenna in enumerate(cabinet.antennas or antennas):
                if antenna not in antennas:
                    yield (
                        (*at, "antennas", j),
                        f"reader {cabinet.reader!r} has no antenna {antenna}",
                    )
                elif (cabinet.reader, antenna) in claimed:
                    owner = claimed[(cabinet.reader, antenna)]
                    yield (*at, "antennas", j), f"antenna {antenna} already watches {owner!r}"
                else:
                    claimed[(cabinet.reader, antenna)] = cabinet.id
        door = cabinet.door
        boards = buses.get(door.bus)
        if boards is None:
            yield (*at, "door", "bus"), f"no lock bus named {door.bus!r} under lockboards"
        elif door.board not in boards:
            yield (*at, "door", "board"), f"bus {door.bus!r} has no board {door.board}"
        elif door.lock > boards[door.board]:
            yield (*at, "door", "lock"), f"board {door.board} has only {boards[door.board]} locks"
        else:
            key = (door.bus, door.board, door.lock)
            if key in seen_locks:
                yield (*at, "door", "lock"), f"lock already used by {seen_locks[key]!r}"
            seen_locks.setdefault(key, f"cabinet {cabinet.id}")
