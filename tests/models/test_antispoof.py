"""The anti-spoofing role, with a tiny ONNX classifier built here whose answer is known.

The classifier averages each input channel over the image (ReduceMean) and multiplies the
three means by a fixed matrix (MatMul): logits = K * (c2 - c0, c0 - c2) for channels c0, c2 in
the network's colour order. With ``colour: rgb`` that is K * (B - R, R - B), so
P(class 0) = sigmoid(2K * (B - R)): bluer crops are "live" when live_class is 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.antispoof import SpoofClassifier, crop_around
from models.errors import ModelLoadError
from models.faces import load_face_models
from models.manifest import AntispoofSpec, Manifest
from models.prepare import prepare_model, sha256_file
from tests.models.support import PreparedCache

K = 0.02
SIZE = 32


def tiny_classifier(path: Path, *, softmax: bool = False) -> Path:
    weights = K * np.array([[-1.0, 1.0], [0.0, 0.0], [1.0, -1.0]], dtype=np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["means"], keepdims=0),
        helper.make_node("MatMul", ["means", "weights"], ["logits"]),
    ]
    output = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        output = "probabilities"
    graph = helper.make_graph(
        nodes,
        "tiny-liveness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 2])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def spec_for(path: Path, **changes: object) -> AntispoofSpec:
    fields: dict[str, object] = {
        "name": "tiny-liveness",
        "role": "antispoof",
        "source": {"kind": "file", "path": str(path), "sha256": sha256_file(path)},
        "input": {"width": SIZE, "height": SIZE, "colour": "rgb"},
        "thresholds": {"live": 0.5, "live_class": 0},
    }
    fields.update(changes)
    return AntispoofSpec.model_validate(fields)


def colour(b: int, g: int, r: int, size: int = 48) -> np.ndarray:
    return np.full((size, size, 3), (b, g, r), dtype=np.uint8)


def sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return tiny_classifier(tmp_path / "tiny.onnx")


def test_live_probability_is_the_softmax_of_the_live_class(model_file: Path) -> None:
    classifier = SpoofClassifier(model_file, spec_for(model_file))
    assert classifier.live_probability(colour(150, 90, 100)) == pytest.approx(sigmoid(2 * K * 50))
    assert classifier.live_probability(colour(128, 128, 128)) == pytest.approx(0.5)
    assert classifier.live_probability(colour(255, 0, 0)) > 0.99  # pure blue
    assert classifier.live_probability(colour(0, 0, 255)) < 0.01  # pure red
    assert classifier.is_live(classifier.live_probability(colour(200, 0, 0)))


def test_colour_order_mean_std_and_live_class_come_from_the_spec(model_file: Path) -> None:
    crop = colour(150, 90, 100)  # B - R = 50
    # In BGR order channel 0 is blue: the difference changes sign.
    bgr = SpoofClassifier(model_file, spec_for(model_file, input={"width": 32, "height": 32}))
    assert bgr.live_probability(crop) == pytest.approx(sigmoid(-2 * K * 50))
    # Per-channel mean and std: ((B - 30) / 2 - (R - 0) / 2) = 10.
    normalised = {"width": 32, "height": 32, "colour": "rgb", "mean": [0, 0, 30], "std": 2}
    shifted = SpoofClassifier(model_file, spec_for(model_file, input=normalised))
    assert shifted.live_probability(crop) == pytest.approx(sigmoid(2 * K * 10))
    other_class = SpoofClassifier(
        model_file, spec_for(model_file, thresholds={"live": 0.5, "live_class": 1})
    )
    assert other_class.live_probability(crop) == pytest.approx(sigmoid(-2 * K * 50))


def test_a_classifier_that_outputs_probabilities(tmp_path: Path) -> None:
    path = tiny_classifier(tmp_path / "softmax.onnx", softmax=True)
    classifier = SpoofClassifier(path, spec_for(path, output="probabilities"))
    assert classifier.live_probability(colour(150, 90, 100)) == pytest.approx(sigmoid(2 * K * 50))


def test_a_live_class_the_model_does_not_have_is_refused(model_file: Path) -> None:
    spec = spec_for(model_file, thresholds={"live": 0.5, "live_class": 2})
    with pytest.raises(ModelLoadError, match="has 2 output class"):
        SpoofClassifier(model_file, spec)


def test_crop_around_enlarges_the_box_and_pads_past_the_edge() -> None:
    frame = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    inside = crop_around(frame, (40, 30, 20, 10), 2.0)
    assert inside.shape == (20, 40, 3)
    assert np.array_equal(inside, frame[25:45, 30:70])
    corner = crop_around(frame, (-10, -10, 20, 20), 1.0)
    assert corner.shape == (20, 20, 3)
    assert np.array_equal(corner[10:, 10:], frame[:10, :10])
    assert not corner[:10].any() and not corner[:, :10].any()


def test_an_operator_antispoof_model_is_prepared_and_loaded_with_the_others(
    tmp_path: Path,
    prepared: PreparedCache,
    manifest: Manifest,
    photos: dict[str, np.ndarray],
) -> None:
    path = tiny_classifier(tmp_path / "operator-liveness.onnx")
    spec = spec_for(path, crop_scale=1.5)
    cache = tmp_path / "cache"
    progress: list[str] = []
    prepare_model(spec, cache, progress=progress.append)
    assert f"{spec.name}: nothing to repair" in progress
    for model in prepared.models.values():  # the shipped models, already prepared
        for suffix in (".onnx", ".json"):
            source = model.path.with_suffix(suffix)
            (cache / source.name).write_bytes(source.read_bytes())
    models = load_face_models(cache, Manifest(models=[*manifest.models, spec]))
    assert models.spoof is not None and models.antispoof_spec == spec
    frame = photos["grace_hopper"]
    (face,) = models.detector.detect(frame)
    expected = models.spoof.live_probability(crop_around(frame, face.box, 1.5))
    assert models.spoof.live_probability_in_frame(frame, face.box) == pytest.approx(expected)
    assert 0.0 < expected < 1.0
