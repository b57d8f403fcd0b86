"""Shared between the models tests and their conftest (import it as ``tests.models.support``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from models.prepare import PreparedModel

REPORT: list[str] = []
"""Lines the recognition tests measured; the conftest prints them at the end of the run."""


@dataclass
class PreparedCache:
    directory: Path
    models: dict[str, PreparedModel]
    progress: list[str] = field(default_factory=list)
