"""Opening an ONNX model with onnxruntime, the way every model of this package is run.

``session.disable_quant_qdq=1`` keeps onnxruntime from turning the int8 DequantizeLinear →
Conv pairs into quantized kernels: the weights are dequantized once when the session is built
and the network runs in float32, which is about 3x faster for YuNet on an x86 CPU (10 ms
rather than 30 ms per 640x640 frame) and gives the float network's results.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from models.errors import ModelLoadError

PREPARE_HINT = "run `edge models prepare` again"


def session_options(threads: int = 1) -> ort.SessionOptions:
    """The options every session uses: float kernels, a bounded thread pool, quiet logs."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.intra_op_num_threads = threads
    # One model call at a time per session: a second pool would only compete for the 2 cores.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle workers must not spin: the controller's event loop shares the same few cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; they also reach us as exceptions
    return options


def open_session(path: Path, *, threads: int = 1) -> ort.InferenceSession:
    """Load ``path`` on the CPU; any failure is a ``ModelLoadError`` naming the file."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist: {PREPARE_HINT}")
    options = session_options(threads)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unexported exception classes
        raise ModelLoadError(describe_load_failure(path, exc)) from exc


def describe_load_failure(path: Path, exc: BaseException) -> str:
    """One sentence for an onnxruntime load failure."""
    text = str(exc)
    if "INVALID_PROTOBUF" in text or "Protobuf parsing failed" in text:
        return f"model file {path} is not a valid ONNX file (truncated?): {PREPARE_HINT}"
    detail = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"onnxruntime cannot load model file {path} ({detail}): check the file or replace it"
