"""An operator's anti-spoofing model in face payment, end to end through the service.

No anti-spoofing model ships; an operator names their own ONNX classifier in the configuration
(``facepay.models.extra`` in the manifest's format, chosen by ``facepay.models.antispoof``). The
classifiers here are tiny ONNX graphs built with ``onnx.helper`` whose answer is known: the live
shopper (a real photo that turns and blinks when prompted, on an MJPEG camera simulator) is let
through by one that finds the face live and stopped by one that finds it a spoof. A model file
that cannot be loaded stops ``edge run`` at start with one sentence naming it.

The unit tests of the classifier itself (spec handling, colour order, live class) are in
``tests/models/test_antispoof.py``; preparation errors at the model level in
``tests/models/test_prepare.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from drivers.camera.simulator import MjpegCameraSimulator
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.demo.shopper import ShopperPhoto, SimulatedShopper
from edge.demo.site import SimulatedSite
from edge.facepay.templates import write_key_file
from models.prepare import sha256_file
from tests.edge import test_facepay_flow as flow
from tests.edge.test_cabinet_sessions import client, events
from tests.edge.test_facepay_flow import enroll, face_check, open_by_face, started, template_of

# The face payment flow tests' fixtures: prepared models, the shopper's photo, a cabinet site,
# and a camera showing the shopper.
models_cache = flow.models_cache
face_models = flow.face_models
grace = flow.grace
site = flow.site
camera = flow.camera

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
"""The classifiers' input side, pixels."""


def tiny_classifier(path: Path, weights: np.ndarray, bias: np.ndarray) -> Path:
    """``out = mean colour of the crop (3 values, 0..255) @ weights + bias``: two classes,
    class 0 "live". A graph onnxruntime runs like any other classifier."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["means"], keepdims=0),
            helper.make_node("MatMul", ["means", "weights"], ["scaled"]),
            helper.make_node("Add", ["scaled", "bias"], ["scores"]),
        ],
        "operator-liveness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])],
        initializer=[
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights.astype(np.float32), "weights"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_classifier(path: Path, live: float) -> Path:
    """Outputs the probabilities (live, spoof) = (``live``, 1 - ``live``) whatever it sees."""
    return tiny_classifier(path, np.zeros((3, 2)), np.array([live, 1.0 - live]))


def darkness_classifier(path: Path, brightness: float = 60.0, slope: float = 0.1) -> Path:
    """Logits whose softmax gives P(live) = sigmoid(slope * (brightness - mean grey)): a crop
    darker than ``brightness`` is live, a brighter one a spoof."""
    weights = np.array([[-slope / 3, 0.0]] * 3)
    return tiny_classifier(path, weights, np.array([slope * brightness, 0.0]))


def antispoof_spec(name: str, path: Path, **changes: Any) -> dict[str, Any]:
    """The spec an operator writes under ``facepay.models.extra``."""
    spec: dict[str, Any] = {
        "name": name,
        "role": "antispoof",
        "source": {"kind": "file", "path": str(path), "sha256": sha256_file(path)},
        "input": {"width": SIZE, "height": SIZE, "colour": "bgr"},
        "output": "probabilities",
    }
    spec.update(changes)
    return spec


def models_config(models_cache: Path, spec: dict[str, Any]) -> dict[str, Any]:
    return {"cache_dir": str(models_cache), "antispoof": spec["name"], "extra": [spec]}


async def app_with_antispoof(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera_url: str,
    spec: dict[str, Any],
) -> EdgeApp:
    app = await started(
        start_app,
        site,
        clock,
        tmp_path,
        models_cache,
        camera_url,
        models=models_config(models_cache, spec),
        # One step: the model is asked once the challenge has passed, however long it is.
        liveness={"steps": 1},
    )
    assert app.facepay is not None
    loaded = app.facepay.models.antispoof_spec
    assert loaded is not None and loaded.name == spec["name"]  # the operator's model is in use
    await enroll(app, clock, "grace", template_of(face_models, grace.photo))
    return app


async def test_a_model_that_finds_the_face_live_lets_the_shopper_verify(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
) -> None:
    simulator, shopper = camera
    model = constant_classifier(tmp_path / "says-live.onnx", live=0.95)
    app = await app_with_antispoof(
        start_app,
        site,
        clock,
        tmp_path,
        models_cache,
        face_models,
        grace,
        simulator.url,
        antispoof_spec("says-live", model),
    )
    async with client(app) as http:
        check = await face_check(http, shopper)
        assert check["state"] == "verified", (check["reason"], check["hint"])
        assert check["member_id"] == "grace"
        assert app.facepay is not None
        verified, _evidence = app.facepay.verified(check["id"], "kiosk-1")
        r = await open_by_face(http, check["id"])
        assert r.status_code == 201, r.text
    # The model's score is part of the liveness evidence the payment will carry.
    assert verified.liveness["antispoof"] == pytest.approx(0.95)
    await app.stop()  # before the camera goes


async def test_a_model_that_finds_a_spoof_fails_the_check_and_opens_nothing(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
) -> None:
    """The shopper passes every challenge step; the model's verdict still stops them."""
    simulator, shopper = camera
    model = constant_classifier(tmp_path / "says-spoof.onnx", live=0.05)
    app = await app_with_antispoof(
        start_app,
        site,
        clock,
        tmp_path,
        models_cache,
        face_models,
        grace,
        simulator.url,
        antispoof_spec("says-spoof", model),
    )
    async with client(app) as http:
        check = await face_check(http, shopper)
        assert check["state"] == "failed", check
        assert check["reason"] == "spoof_suspected"
        assert check["member_id"] is None
        r = await open_by_face(http, check["id"])
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "not_verified"
        metrics = (await http.get("/metrics")).text
    assert 'edge_facepay_checks{outcome="spoof_suspected"} 1.0' in metrics
    assert not events(app).of_type("door.opened")
    await app.stop()  # before the camera goes


async def test_the_models_own_live_threshold_decides_when_the_config_sets_none(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
) -> None:
    simulator, shopper = camera
    model = constant_classifier(tmp_path / "strict.onnx", live=0.7)
    spec = antispoof_spec("strict-threshold", model, thresholds={"live": 0.9, "live_class": 0})
    app = await app_with_antispoof(
        start_app, site, clock, tmp_path, models_cache, face_models, grace, simulator.url, spec
    )
    assert app.config.facepay is not None
    assert app.config.facepay.liveness.antispoof_threshold is None  # the model's own applies
    try:
        async with client(app) as http:
            check = await face_check(http, shopper)
        assert check["state"] == "failed", check
        assert check["reason"] == "spoof_suspected"
    finally:
        await app.stop()  # before the camera goes


async def test_the_classifier_sees_the_face_with_the_context_its_crop_scale_asks_for(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    clock: ManualClock,
    tmp_path: Path,
    models_cache: Path,
    face_models: Any,
    grace: ShopperPhoto,
    camera: tuple[MjpegCameraSimulator, SimulatedShopper],
) -> None:
    """With ``crop_scale: 8`` the crop around the shopper's face is mostly black padding past
    the frame's edges (mean grey about 10); the tight aligned face crop is skin (about 110).
    The darkness classifier tells the two apart: live only on the crop the spec asks for."""
    simulator, shopper = camera
    model = darkness_classifier(tmp_path / "context.onnx")
    spec = antispoof_spec("wide-context", model, output="logits", crop_scale=8)
    app = await app_with_antispoof(
        start_app, site, clock, tmp_path, models_cache, face_models, grace, simulator.url, spec
    )
    assert app.facepay is not None and app.facepay.models.spoof is not None
    (face,) = face_models.detector.detect(grace.photo)
    spoof = app.facepay.models.spoof
    assert spoof.is_live(spoof.live_probability_in_frame(grace.photo, face.box))
    try:
        async with client(app) as http:
            check = await face_check(http, shopper)
        assert check["state"] == "verified", (check["reason"], check["hint"])
    finally:
        await app.stop()  # before the camera goes


@pytest.fixture
def corrupt_model(tmp_path: Path) -> Path:
    """A model copied onto the device that did not arrive whole."""
    whole = constant_classifier(tmp_path / "whole.onnx", live=0.9).read_bytes()
    path = tmp_path / "liveness.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def test_a_corrupt_antispoof_model_stops_edge_run_with_one_sentence_naming_it(
    tmp_path: Path, models_cache: Path, corrupt_model: Path
) -> None:
    key_file = tmp_path / "template.key"
    write_key_file(key_file)
    spec = antispoof_spec("operator-liveness", corrupt_model)
    del spec["source"]["sha256"]  # no hash to compare with: the file itself must be checked
    config = tmp_path / "edge.yaml"
    document = {
        "site": {"id": "antispoof-site"},
        "code_secret": "k",
        "data_dir": str(tmp_path / "data"),
        "http": {"port": 0},
        "logging": {"level": "INFO", "format": "json"},
        "facepay": {
            "template_key_file": str(key_file),
            "models": models_config(models_cache, spec),
        },
    }
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"edge: ModelLoadError: model file {corrupt_model} is not a valid ONNX file "
        "(truncated?): replace it with a complete ONNX model"
    )
    assert "Traceback" not in done.stderr + done.stdout
    assert '"controller started"' not in done.stderr
