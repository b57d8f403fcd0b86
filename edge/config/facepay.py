"""Configuration of face payment: models, terminals (cameras), decisions, liveness, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from drivers.camera.codes import SYMBOLOGIES
from edge.config.types import Strict
from models.errors import ManifestError
from models.manifest import Manifest, load_manifest, parse_model_spec

Name = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class CameraConfig(Strict):
    uri: str = Field(min_length=1)
    """``/dev/video0`` (V4L2), ``rtsp://…`` or ``http://….mjpg`` (IP camera), or a video file."""
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    fps: float | None = Field(default=None, gt=0)
    loop: bool = False
    """Video files only: start again at the end (the demo)."""
    stall_timeout_s: float = Field(default=3.0, gt=0, le=120)
    """No frame for this long: the watchdog reopens the camera."""


class NirCalibration(Strict):
    """Where a point of the colour frame lies in the near-infrared frame: nir = colour·scale +
    offset, per axis (two cameras side by side see the face at slightly different places)."""

    scale_x: float = Field(default=1.0, gt=0)
    scale_y: float = Field(default=1.0, gt=0)
    offset_x: float = 0.0
    offset_y: float = 0.0


def known_codes(codes: list[str]) -> list[str]:
    """Symbologies a camera reads (``qr``, ``code128``…), each once; a clear error otherwise."""
    unknown = [code for code in codes if code not in SYMBOLOGIES]
    if unknown:
        raise ValueError(f"unknown code {unknown[0]!r}: use some of {', '.join(SYMBOLOGIES)}")
    return list(dict.fromkeys(codes))


class TerminalConfig(Strict):
    """A screen with a camera where shoppers pay by face (usually one per cabinet)."""

    id: str = Name
    camera: CameraConfig
    nir_camera: CameraConfig | None = None
    """A near-infrared camera beside the colour one: a screen replaying a face shows nothing."""
    nir_calibration: NirCalibration = NirCalibration()
    codes: list[str] = Field(default_factory=list)
    """Codes the colour camera also reads, for the kiosk's screens (``qr`` for member QR
    codes; ``code128``, ``ean13``… for barcodes). Empty: the camera reads no codes."""

    _codes = field_validator("codes")(known_codes)


class ModelsConfig(Strict):
    cache_dir: Path = Path("models")
    """Prepared (repaired, verified) model files; relative to ``data_dir``."""
    detector: str = "yunet-2023mar-int8bq"
    recognizer: str = "sface-2021dec-int8bq"
    """Changing the recognizer makes enrolled templates unusable: members enrol again."""
    antispoof: str | None = None
    """No anti-spoofing model ships on PyPI: an operator who has one names it here."""
    extra: list[dict[str, Any]] = Field(default_factory=list)
    """The operator's own models, each a spec in the shipped manifest's format (``models/
    manifest.yaml``) with ``source: {kind: file, path: ...}``: a larger ArcFace, an
    anti-spoofing model. Name them above to use them."""
    threads: int = Field(default=2, ge=1, le=64)

    @field_validator("extra")
    @classmethod
    def _specs_valid(cls, extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for spec in extra:
            try:
                parse_model_spec(spec)
            except ManifestError as exc:  # reported with its YAML path, not raised past it
                raise ValueError(str(exc)) from None
        return extra

    def manifest(self) -> Manifest:
        shipped = load_manifest()
        return Manifest(models=[*shipped.models, *(parse_model_spec(s) for s in self.extra)])


class DecisionConfig(Strict):
    """Thresholds on cosine similarity; None takes the recognizer's manifest default."""

    match: float | None = Field(default=None, gt=0, lt=1)
    margin: float | None = Field(default=None, ge=0, lt=1)
    """Top-1 must beat top-2 by this much, or the shopper is asked for phone digits."""
    candidate: float | None = Field(default=None, gt=0, lt=1)
    """Lowest score a member may have to be decided 1:1 after the phone digits."""
    phone_digits_above: int = Field(default=10_000, ge=0)
    """Galleries larger than this always ask for the last four phone digits."""
    digit_attempts: int = Field(default=3, ge=1, le=10)
    """Wrong digit entries allowed per verification before it fails."""


class LivenessConfig(Strict):
    steps: int = Field(default=2, ge=1, le=4)
    """Random challenge steps (blink, turn left, turn right) a shopper performs."""
    step_timeout_s: float = Field(default=6.0, gt=0, le=60)
    min_reaction_s: float = Field(default=0.15, ge=0, le=5)
    """An action faster than this after its prompt was not a reaction to it (a replay)."""
    nir_required: bool = True
    """With a NIR camera configured, face checks fail while it is unavailable (False: the NIR
    check is skipped then, and the payment event says so). A face it does not show always fails."""
    antispoof_threshold: float | None = Field(default=None, gt=0, lt=1)


class OfflineLimits(Strict):
    """When upstream is unreachable the site still sells, within these (minor units)."""

    per_payment: int = Field(default=10_000, ge=0)
    """Largest single face payment authorised offline (a member's own limit may be lower)."""
    member_daily: int = Field(default=20_000, ge=0)
    """Per member per day, offline-authorised payments together."""
    site_daily: int = Field(default=500_000, ge=0)
    """The whole site per day, offline-authorised payments together."""
    unreachable_after_s: float = Field(default=10.0, ge=0, le=3600)
    """Upstream counts as unreachable when the broker link has been down this long."""


class FacePayConfig(Strict):
    template_key_file: Path
    """32-byte AES key (raw, hex or base64) sealing face templates at rest; mode 0600."""
    models: ModelsConfig = ModelsConfig()
    terminals: list[TerminalConfig] = Field(default_factory=list)
    decision: DecisionConfig = DecisionConfig()
    liveness: LivenessConfig = LivenessConfig()
    offline: OfflineLimits = OfflineLimits()
    online_per_payment: int = Field(default=100_000, ge=0)
    """Largest single face payment authorised on the device while upstream is reachable."""
    verification_ttl_s: float = Field(default=120.0, gt=0, le=3600)
    """A verified face opens a cabinet within this long, once."""
    verification_timeout_s: float = Field(default=30.0, gt=0, le=300)
    """A check with no decision by then fails (the shopper walked away)."""
    day_boundary: Literal["utc", "local"] = "local"
    """Which midnight resets the daily caps."""

    @model_validator(mode="after")
    def _terminals_unique(self) -> FacePayConfig:
        ids = [t.id for t in self.terminals]
        if len(set(ids)) != len(ids):
            raise ValueError("terminal ids must be unique")
        return self
