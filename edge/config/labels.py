"""Configuration of electronic shelf labels: the access points, the font, delivery pacing."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.config.types import Strict

Name = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class AccessPointConfig(Strict):
    name: str = Name
    """Named by ``label.bind``'s ``access_point`` (the first one when it names none)."""
    kind: Literal["openepaperlink"] = "openepaperlink"
    """The backend: an OpenEPaperLink access point over HTTP (more kinds can be added)."""
    url: str = Field(pattern=r"^https?://")
    uploads_per_s: float = Field(default=2.0, gt=0, le=1000)
    """Images sent per second at most: an ESP32 access point converts and stores each one."""
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    poll_interval_s: float = Field(default=5.0, gt=0, le=600)
    """How often tag states are read to confirm deliveries."""


class LabelsConfig(Strict):
    access_points: list[AccessPointConfig] = Field(min_length=1)
    font: Path | None = None
    """A TrueType/OpenType font with Chinese glyphs; default: the first one installed of
    WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``), WenQuanYi Zen Hei, Noto Sans CJK."""
    default_template: str = "2.9-bwr"
    confirm_timeout_s: float = Field(default=900.0, ge=60, le=86_400)
    """A label that has not shown its new content this long after the upload: ``label.failed``.
    Tags check in every 40 s or more, sleeping ones far less often."""
    retry_initial_s: float = Field(default=2.0, gt=0, le=600)
    retry_max_s: float = Field(default=300.0, gt=0, le=3600)
    """Backoff after a busy (409) or unreachable access point."""

    @model_validator(mode="after")
    def _names_unique(self) -> LabelsConfig:
        names = [ap.name for ap in self.access_points]
        if len(set(names)) != len(names):
            raise ValueError("access point names must be unique")
        return self
