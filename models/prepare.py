"""One-time preparation of a model: find it, verify it, repair it, test it, cache it.

``prepare_model(spec, cache_dir)`` locates the original ONNX file (inside an installed PyPI
wheel through ``importlib.metadata``, or an operator's file), checks its sha256 against the
spec, applies the graph repairs of ``models.repair`` (see there for exactly what is wrong with
the shipped files and why), runs ``onnx.checker``, builds an onnxruntime session with the
options inference uses and runs it once on a blank input (the shipped YuNet loads but fails at
its first inference before repair), then writes ``<cache>/<name>.onnx`` and the sidecar
``<cache>/<name>.json`` (hashes of the source and of the prepared file, onnx and onnxruntime
versions, the repairs made). Both are written atomically and fsynced: the sidecar last, so a
power cut leaves either the old pair, or no sidecar ("not prepared"), never a torn model that
looks prepared.

A second call with a valid cache does no work beyond hashing. ``load_prepared`` is what
inference uses: it re-hashes the prepared file against its sidecar, so a truncated or edited
file is refused with ``ModelCorrupt`` rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from models.errors import (
    ModelCorrupt,
    ModelHashMismatch,
    ModelLoadError,
    ModelNotPrepared,
    ModelSourceError,
)
from models.manifest import (
    AntispoofSpec,
    DetectorSpec,
    FileSource,
    InputSpec,
    Manifest,
    PypiSource,
    RecognizerSpec,
    load_manifest,
)
from models.repair import repair_model
from models.runtime import open_session

Progress = Callable[[str], None]
"""Receives one human-readable line per step (the CLI prints them)."""

AnySpec = DetectorSpec | RecognizerSpec | AntispoofSpec

SIDECAR_FORMAT = 1
"""Bumped whenever the repairs change, so that caches made by older code are prepared again."""

PREPARE_COMMAND = "run `edge models prepare`"


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """A prepared model file whose hash matched its sidecar when this was made."""

    name: str
    role: str
    path: Path
    source_sha256: str
    prepared_sha256: str
    repairs: tuple[str, ...]


def prepared_path(cache_dir: Path, name: str) -> Path:
    return cache_dir / f"{name}.onnx"


def sidecar_path(cache_dir: Path, name: str) -> Path:
    return cache_dir / f"{name}.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def locate_source(source: PypiSource | FileSource) -> Path:
    """The original file a spec names; ``ModelSourceError`` says how to get it."""
    if isinstance(source, FileSource):
        if not source.path.is_file():
            raise ModelSourceError(
                f"model file {source.path} does not exist: put the file there or fix the path"
            )
        return source.path
    reinstall = f"pip install {source.package}=={source.version}"
    try:
        dist = metadata.distribution(source.package)
    except metadata.PackageNotFoundError as exc:
        raise ModelSourceError(f"package {source.package} is not installed: {reinstall}") from exc
    listed = {str(file) for file in dist.files or ()}
    if source.path not in listed:
        raise ModelSourceError(
            f"package {source.package} {dist.version} has no file {source.path}: {reinstall}"
        )
    path = Path(str(dist.locate_file(source.path)))
    if not path.is_file():
        raise ModelSourceError(f"{path} is missing from {source.package}: {reinstall}")
    return path


def verify_source(source: PypiSource | FileSource, path: Path) -> str:
    """The file's sha256, after checking it against the one the spec expects."""
    actual = sha256_file(path)
    expected = source.sha256
    if expected is None or actual == expected:
        return actual
    if isinstance(source, PypiSource):
        fix = f"reinstall {source.package}=={source.version}"
        raise ModelHashMismatch(
            f"the sha256 of {path} is {actual}, the manifest expects {expected}: {fix} "
            f"(pip install --force-reinstall {source.package}=={source.version})"
        )
    raise ModelHashMismatch(
        f"the sha256 of {path} is {actual}, the model spec expects {expected}: "
        "put the intended file there or correct the spec's sha256"
    )


def prepare_models(
    cache_dir: Path,
    models: Manifest | Iterable[AnySpec] | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, PreparedModel]:
    """Prepare every model of a manifest or list of specs (None: the shipped manifest)."""
    if models is None:
        models = load_manifest()
    specs = models.models if isinstance(models, Manifest) else list(models)
    prepared = [prepare_model(s, cache_dir, force=force, progress=progress) for s in specs]
    return {model.name: model for model in prepared}


def prepare_model(
    spec: AnySpec, cache_dir: Path, *, force: bool = False, progress: Progress | None = None
) -> PreparedModel:
    """Make ``<cache_dir>/<name>.onnx`` ready for inference, or find it already so.

    ``force`` prepares again even when the cache is valid.
    """
    say = progress or (lambda _line: None)
    source = spec.source
    if not force:
        # A spec without a hash (an operator's file) is compared with the file as it is now.
        expected_source = source.sha256
        if expected_source is None:
            expected_source = verify_source(source, locate_source(source))
        cached = _valid_cache(cache_dir, spec.name, expected_source)
        if cached is not None:
            say(f"{spec.name}: already prepared ({cached.path})")
            return cached

    source_path = locate_source(source)
    say(f"{spec.name}: verifying {source_path}")
    source_sha256 = verify_source(source, source_path)
    model = _load_onnx(source_path)
    repairs = repair_model(model)
    for line in repairs:
        say(f"{spec.name}: repaired: {line}")
    if not repairs:
        say(f"{spec.name}: nothing to repair")
    _check_graph(model, source_path)
    payload = model.SerializeToString()

    cache_dir.mkdir(parents=True, exist_ok=True)
    target = prepared_path(cache_dir, spec.name)
    record = sidecar_path(cache_dir, spec.name)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        _write_durably(staging, payload)
        say(f"{spec.name}: test inference in onnxruntime {ort.__version__}")
        _test_inference(staging, spec.input, source_path)
        prepared_sha256 = hashlib.sha256(payload).hexdigest()
        sidecar = {
            "format": SIDECAR_FORMAT,
            "name": spec.name,
            "role": spec.role,
            "source": source.model_dump(mode="json"),
            "source_path": str(source_path),
            "source_sha256": source_sha256,
            "prepared_sha256": prepared_sha256,
            "size": len(payload),
            "repairs": repairs,
            "onnx_version": onnx.__version__,
            "onnxruntime_version": ort.__version__,
            "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        # Without a sidecar the pair reads as "not prepared" while the model is replaced.
        record.unlink(missing_ok=True)
        os.replace(staging, target)
        _write_durably(record, json.dumps(sidecar, indent=2).encode() + b"\n")
        _fsync_dir(cache_dir)
    finally:
        staging.unlink(missing_ok=True)
    say(f"{spec.name}: prepared {target} (sha256 {prepared_sha256[:12]}…)")
    return PreparedModel(
        name=spec.name,
        role=spec.role,
        path=target,
        source_sha256=source_sha256,
        prepared_sha256=prepared_sha256,
        repairs=tuple(repairs),
    )


def load_prepared(cache_dir: Path, name: str, *, source_sha256: str | None = None) -> PreparedModel:
    """The prepared model ``name``, its file verified against the sidecar's hash.

    With ``source_sha256``, a model prepared from another source file (an older manifest, a
    replaced operator file) counts as not prepared.
    """
    target = prepared_path(cache_dir, name)
    sidecar = _read_sidecar(cache_dir, name)
    if sidecar is None or not target.is_file():
        raise ModelNotPrepared(f"model {name} is not prepared in {cache_dir}: {PREPARE_COMMAND}")
    if source_sha256 is not None and sidecar["source_sha256"] != source_sha256:
        raise ModelNotPrepared(
            f"model {name} in {cache_dir} was prepared from another source file: {PREPARE_COMMAND}"
        )
    actual = sha256_file(target)
    if actual != sidecar["prepared_sha256"]:
        raise ModelCorrupt(
            f"prepared model {target} does not match the sha256 recorded when it was prepared "
            f"(truncated or edited?): {PREPARE_COMMAND} again"
        )
    return PreparedModel(
        name=name,
        role=str(sidecar["role"]),
        path=target,
        source_sha256=str(sidecar["source_sha256"]),
        prepared_sha256=actual,
        repairs=tuple(str(line) for line in sidecar["repairs"]),
    )


def _valid_cache(cache_dir: Path, name: str, source_sha256: str) -> PreparedModel | None:
    try:
        return load_prepared(cache_dir, name, source_sha256=source_sha256)
    except (ModelNotPrepared, ModelCorrupt):
        return None


def _read_sidecar(cache_dir: Path, name: str) -> dict[str, Any] | None:
    """The sidecar's content; None if missing. An unreadable one is corrupt."""
    path = sidecar_path(cache_dir, name)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelCorrupt(
            f"the record {path} of prepared model {name} is unreadable: {PREPARE_COMMAND} again"
        ) from exc
    needed = {"format", "role", "source_sha256", "prepared_sha256", "repairs"}
    if not isinstance(data, dict) or not needed <= data.keys():
        raise ModelCorrupt(
            f"the record {path} of prepared model {name} is incomplete: {PREPARE_COMMAND} again"
        )
    if data["format"] != SIDECAR_FORMAT:
        return None  # made by code with other repairs: prepare again
    return data


def _load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelLoadError(
            f"model file {path} is not a valid ONNX file (truncated?): "
            "replace it with a complete ONNX model"
        ) from exc


def _check_graph(model: onnx.ModelProto, source_path: Path) -> None:
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(
            f"model file {source_path} is not a valid ONNX model ({_first_line(exc)}): replace it"
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _test_inference(path: Path, spec: InputSpec, source_path: Path) -> None:
    """Build the session inference will use and run it once on a blank image."""
    try:
        session = open_session(path)
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"onnxruntime cannot load model file {source_path} even after repair "
            f"({_first_line(exc.__cause__ or exc)}): replace it"
        ) from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelLoadError(
            f"model file {source_path} takes {len(inputs)} inputs ({names}), not one image: "
            "a face model takes exactly one"
        )
    shape = input_shape(inputs[0].shape, spec, source_path)
    try:
        session.run(None, {inputs[0].name: np.zeros(shape, dtype=np.float32)})
    except Exception as exc:  # onnxruntime's own exception classes are not exported
        raise ModelLoadError(
            f"model file {source_path} loads but fails on a test input ({_first_line(exc)}): "
            "replace it"
        ) from exc


def input_shape(declared: list[Any], spec: InputSpec, source_path: Path) -> tuple[int, ...]:
    """The 4-D input shape for one image, checked against what the model declares."""
    if spec.layout == "nchw":
        wanted = (1, 3, spec.height, spec.width)
    else:
        wanted = (1, spec.height, spec.width, 3)
    if len(declared) != 4 or any(
        isinstance(d, int) and d != w for d, w in zip(declared, wanted, strict=True)
    ):
        raise ModelLoadError(
            f"model file {source_path} takes input of shape {declared}, its spec says "
            f"{list(wanted)} ({spec.layout}): correct the spec's input"
        )
    return wanted


def _write_durably(path: Path, payload: bytes) -> None:
    """Write to a temporary file, fsync it, and rename it over ``path``."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with staging.open("wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
