"""Keyboard-wedge scanners without hardware: recorded or scripted key events, replayed.

:class:`ReplayDevice` stands in for an input device: pass ``source=device.source`` to
:class:`~drivers.scanner.hid.HidScanner` and the events it is given run through the scanner's
real reading, decoding and reconnect path. It can be unplugged (the scanner's read fails with
ENODEV, like evdev's, and opening fails until it is replugged).

Recordings are JSON files::

    {
      "description": "what was scanned, with which scanner and settings",
      "layout": "us",                  # the keyboard layout the scanner was set to
      "terminator": "enter",           # "enter" (Enter or keypad Enter) or "tab"
      "options": {"fnc1_as": "~"},     # optional: further HidScanner keyword options
      "events": [
        [0.000000, "EV_MSC", "MSC_SCAN", 458756],
        [0.000000, "EV_KEY", "KEY_A", 1],     # [seconds, type, code, value]
        [0.000000, "EV_SYN", "SYN_REPORT", 0],
        "unplug",                       # the device disappears here
        "replug"                        # ... and is back (the scanner reopens it)
      ],
      "expect": {                       # optional: what replaying it must give
        "scans": [{"text": "...", "symbology": null}],
        "rejected": ["cut_off"]
      }
    }

Times are the events' timestamps in seconds (any origin); type and code are names from
:data:`~drivers.scanner.keymap.CODES_BY_NAME` or integers; value is 1 press, 0 release,
2 autorepeat. Record a real scanner with
``python -m drivers.scanner.replay record /dev/input/by-id/...-event-kbd out.json``
(it grabs the device; Ctrl-C ends the recording) and check what a recording decodes to with
``python -m drivers.scanner.replay play out.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .events import RejectReason
from .hid import OpenedEvents, evdev_source
from .keymap import CODES_BY_NAME, EV_KEY, KeyDecoder, KeyEvent, Terminator, key_events

UNPLUG: Literal["unplug"] = "unplug"
REPLUG: Literal["replug"] = "replug"
Step = KeyEvent | Literal["unplug", "replug"]


class ReplayDevice:
    """A scripted input device: events, unplugs and replugs, delivered in the order given."""

    def __init__(self, path: str = "/dev/input/by-id/replay-event-kbd") -> None:
        self.path = path
        self.plugged = True
        self.is_open = False
        self.opens = 0  # successful opens
        self.open_failures = 0
        self._steps: asyncio.Queue[Step] = asyncio.Queue()

    def source(self) -> OpenedEvents:
        """What HidScanner's ``source`` calls to open the device."""
        return self._opened()

    def send(self, steps: Iterable[Step]) -> None:
        for step in steps:
            self._steps.put_nowait(step)

    def type(
        self,
        text: str,
        layout: str = "us",
        terminator: Terminator = "enter",
        *,
        alt_codes: bool = False,
    ) -> None:
        """Key events of scanning ``text`` with a scanner set to ``layout``."""
        self.send(key_events(text, layout, terminator, alt_codes=alt_codes))

    def unplug(self) -> None:
        """After the steps already queued: reads fail with ENODEV, opens with ENOENT."""
        self.send([UNPLUG])

    def replug(self) -> None:
        """After the steps already queued: the device can be opened again."""
        self.send([REPLUG])

    @contextlib.asynccontextmanager
    async def _opened(self) -> AsyncIterator[AsyncIterator[KeyEvent]]:
        if not self.plugged:
            # What was sent while unplugged reached no one: skip to the replug, if any yet.
            while not self._steps.empty():
                if self._steps.get_nowait() == REPLUG:
                    self.plugged = True
                    break
        if not self.plugged:
            self.open_failures += 1
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), self.path)
        self.opens += 1
        self.is_open = True
        try:
            yield self._events()
        finally:
            self.is_open = False

    async def _events(self) -> AsyncIterator[KeyEvent]:
        while True:
            step = await self._steps.get()
            if step == UNPLUG:
                self.plugged = False
                raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
            if isinstance(step, KeyEvent):
                yield step


# -- recordings -------------------------------------------------------------------------------

_TYPE_NAMES = {value: name for name, value in CODES_BY_NAME.items() if name.startswith("EV_")}
_CODE_PREFIX = {"EV_KEY": "KEY_", "EV_SYN": "SYN_", "EV_MSC": "MSC_"}


@dataclass(frozen=True)
class Recording:
    description: str
    layout: str
    terminator: Terminator
    steps: list[Step]
    options: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)


def _code(value: object, what: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value in CODES_BY_NAME:
        return CODES_BY_NAME[value]
    raise ValueError(f"unknown {what} {value!r}")


def parse_step(item: object) -> Step:
    if item == UNPLUG:
        return UNPLUG
    if item == REPLUG:
        return REPLUG
    if not isinstance(item, list) or len(item) != 4:
        raise ValueError(f"an event is [seconds, type, code, value], not {item!r}")
    at, type_, code, value = item
    if not isinstance(at, int | float) or not isinstance(value, int):
        raise ValueError(f"bad event {item!r}")
    return KeyEvent(_code(type_, "event type"), _code(code, "event code"), value, float(at))


def load_recording(path: str | os.PathLike[str]) -> Recording:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    terminator = data.get("terminator", "enter")
    if terminator not in ("enter", "tab"):
        raise ValueError(f"{path}: unknown terminator {terminator!r}")
    return Recording(
        description=str(data.get("description", "")),
        layout=str(data.get("layout", "us")),
        terminator=terminator,
        steps=[parse_step(item) for item in data["events"]],
        options=dict(data.get("options", {})),
        expect=dict(data.get("expect", {})),
    )


def event_as_json(event: KeyEvent, origin: float) -> list[object]:
    type_name = _TYPE_NAMES.get(event.type)
    prefix = _CODE_PREFIX.get(type_name or "")
    code_name = next(
        (
            name
            for name, value in CODES_BY_NAME.items()
            if prefix and name.startswith(prefix) and value == event.code
        ),
        None,
    )
    at = round((event.at or origin) - origin, 6)
    return [at, type_name or event.type, code_name or event.code, event.value]


def dump_recording(recording: Recording) -> str:
    """JSON text of ``recording``, one event per line."""
    origin = next((s.at for s in recording.steps if isinstance(s, KeyEvent) and s.at), 0.0)
    assert origin is not None
    lines = [
        json.dumps(
            step if isinstance(step, str) else event_as_json(step, origin), ensure_ascii=False
        )
        for step in recording.steps
    ]
    head = {
        "description": recording.description,
        "layout": recording.layout,
        "terminator": recording.terminator,
        "options": recording.options,
    }
    if recording.expect:
        head["expect"] = recording.expect
    body = ",\n    ".join(lines)
    text = json.dumps(head, indent=2, ensure_ascii=False)
    return text[:-2] + f',\n  "events": [\n    {body}\n  ]\n}}\n'


# -- command line -----------------------------------------------------------------------------


async def _record(device_path: str, decoder: KeyDecoder, steps: list[Step]) -> None:
    print(f"recording {device_path} (grabbed); scan codes, Ctrl-C to stop", file=sys.stderr)
    async with evdev_source(device_path, grab=True)() as events:
        async for event in events:
            steps.append(event)
            text = decoder.feed(*event)
            if text is not None:
                print(f"scanned {text!r}", file=sys.stderr)


def _play(path: Path) -> None:
    recording = load_recording(path)
    decoder = KeyDecoder(
        recording.layout,
        recording.terminator,
        max_gap_s=recording.options.get("max_gap_s", 1.0),
        on_discard=lambda d: print(f"rejected {d.reason.value}: {d.detail}"),
    )
    for step in recording.steps:
        if isinstance(step, str):
            print(step)
            if step == UNPLUG:
                decoder.discard(RejectReason.CUT_OFF, "unplugged")
            decoder.reset()
            continue
        text = decoder.feed(*step)
        if text is not None:
            print(f"scanned {text!r}")
    presses = sum(1 for s in recording.steps if isinstance(s, KeyEvent) and s.type == EV_KEY)
    print(f"{presses} key events; {decoder.stats}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Record or replay keyboard-wedge scans.")
    sub = parser.add_subparsers(dest="command", required=True)
    record = sub.add_parser("record", help="record a real scanner's key events to JSON")
    record.add_argument("device", help="/dev/input/by-id/...-event-kbd")
    record.add_argument("out", type=Path)
    record.add_argument("--layout", default="us")
    record.add_argument("--terminator", choices=["enter", "tab"], default="enter")
    play = sub.add_parser("play", help="decode a recording and print what it scans")
    play.add_argument("recording", type=Path)
    args = parser.parse_args(argv)
    if args.command == "record":
        steps: list[Step] = []
        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_record(args.device, KeyDecoder(args.layout, args.terminator), steps))
        finally:
            recording = Recording(
                f"recorded from {args.device}", args.layout, args.terminator, steps
            )
            args.out.write_text(dump_recording(recording), encoding="utf-8")
            print(f"wrote {len(steps)} events to {args.out}", file=sys.stderr)
    else:
        _play(args.recording)


if __name__ == "__main__":
    main()
