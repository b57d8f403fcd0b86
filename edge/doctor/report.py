"""The doctor's findings: one row per check, printed as a table for people or JSON for scripts."""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import asdict, dataclass
from enum import StrEnum


class Result(StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    check: str
    """What kind of thing was probed: ``lock board``, ``mqtt``, ``database``…"""
    target: str
    """Which one: its configured name and address."""
    result: Result
    detail: str
    next_step: str = ""
    """A concrete action for a technician; empty when nothing needs doing."""


def ok(check: str, target: str, detail: str) -> Finding:
    return Finding(check, target, Result.OK, detail)


def fail(check: str, target: str, detail: str, next_step: str) -> Finding:
    return Finding(check, target, Result.FAIL, detail, next_step)


def skipped(check: str, target: str, detail: str, next_step: str = "") -> Finding:
    return Finding(check, target, Result.SKIPPED, detail, next_step)


def exit_code(findings: list[Finding]) -> int:
    """0 when everything configured works, 1 when any check failed (skipped is not failed)."""
    return 1 if any(f.result is Result.FAIL for f in findings) else 0


def as_json(findings: list[Finding]) -> str:
    failed = sum(f.result is Result.FAIL for f in findings)
    document = {
        "ok": failed == 0,
        "failed": failed,
        "checks": [asdict(f) | {"result": str(f.result)} for f in findings],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


HEADERS = ("CHECK", "TARGET", "RESULT", "DETAIL", "NEXT STEP")
# The narrow columns are never wrapped; DETAIL and NEXT STEP share what the terminal has left.
_MIN_WIDE = 24
_GAP = "  "


def as_table(findings: list[Finding], width: int | None = None) -> str:
    """A plain-text table; long details and next steps wrap inside their columns."""
    width = width or shutil.get_terminal_size((160, 24)).columns
    rows = [(f.check, f.target, str(f.result), f.detail, f.next_step) for f in findings]
    narrow = [max(len(HEADERS[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    left = width - sum(narrow) - len(_GAP) * 4
    natural = [max(len(HEADERS[i]), *(len(r[i]) for r in rows)) for i in (3, 4)]
    if sum(natural) <= left:
        wide = natural
    else:
        detail = max(_MIN_WIDE, min(natural[0], left // 2))
        wide = [detail, max(_MIN_WIDE, left - detail)]
    widths = [*narrow, *wide]
    lines = [_line(HEADERS, widths), _line(tuple("-" * w for w in widths), widths)]
    for row in rows:
        lines.extend(_wrapped(row, widths))
    failed = sum(f.result is Result.FAIL for f in findings)
    lines.append("")
    lines.append(
        f"{len(findings)} checks: {sum(f.result is Result.OK for f in findings)} ok, "
        f"{failed} failed, {sum(f.result is Result.SKIPPED for f in findings)} skipped"
    )
    return "\n".join(lines)


def _wrapped(row: tuple[str, ...], widths: list[int]) -> list[str]:
    cells = [
        textwrap.wrap(text, width, break_on_hyphens=False) or [""] if i >= 3 else [text]
        for i, (text, width) in enumerate(zip(row, widths, strict=True))
    ]
    height = max(len(c) for c in cells)
    return [_line(tuple(c[n] if n < len(c) else "" for c in cells), widths) for n in range(height)]


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    return _GAP.join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
