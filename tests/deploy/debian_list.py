"""The site's Debian package list (deploy/debian-packages.txt), parsed for the tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[2] / "deploy" / "debian-packages.txt"
# "name  # why" for a package always installed, "# name  # why" for an optional one.
ENTRY = re.compile(r"^(?P<optional>#\s*)?(?P<name>[a-z0-9][a-z0-9+.-]+)\s+#\s*(?P<why>\S.*)$")


@dataclass(frozen=True)
class DebianPackage:
    name: str
    optional: bool
    why: str


def parse_packages(text: str) -> list[DebianPackage]:
    packages = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = ENTRY.match(line)
        if entry:
            packages.append(
                DebianPackage(entry["name"], entry["optional"] is not None, entry["why"])
            )
        else:  # anything else is a comment or blank, never a bare package name
            assert not line.strip() or line.startswith("#"), f"line {number}: {line!r}"
    return packages


def debian_packages() -> list[DebianPackage]:
    return parse_packages(PACKAGES.read_text(encoding="utf-8"))
