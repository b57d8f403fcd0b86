"""Face embeddings: an aligned crop in, an L2-normalised vector out (cosine = dot product).

The shipped recognizer is SFace (128 values); any recognizer ONNX of the same role works when
its ``InputSpec`` (size, colour order, mean/std, layout) is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models.errors import ModelLoadError
from models.manifest import InputSpec, load_manifest
from models.preprocess import to_tensor
from models.runtime import open_session

FloatArray = npt.NDArray[np.float32]


class FaceEmbedder:
    """A recognizer network on onnxruntime."""

    def __init__(
        self, model_path: Path, input_spec: InputSpec | None = None, *, threads: int = 1
    ) -> None:
        """``input_spec`` None: the shipped recognizer's (SFace)."""
        self.input_spec = input_spec or load_manifest().recognizer().input
        self._session = open_session(model_path, threads=threads)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelLoadError(
                f"model file {model_path} does not take one image tensor: give a recognizer"
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        # A fixed batch of one (SFace) is run crop by crop; a dynamic batch in one call.
        self._batched = not isinstance(inputs[0].shape[0], int) or inputs[0].shape[0] != 1
        blank = np.zeros((self.input_spec.height, self.input_spec.width, 3), dtype=np.uint8)
        self.dim: int = int(self._run([blank]).shape[1])

    def embed(self, aligned_bgr: np.ndarray) -> FloatArray:
        """``(dim,)`` float32 embedding of one aligned BGR crop, unit length."""
        vector: FloatArray = self._run([aligned_bgr])[0]
        return vector

    def embed_batch(self, crops: Sequence[np.ndarray]) -> FloatArray:
        """``(n, dim)`` embeddings of aligned BGR crops, each of unit length."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._batched:
            return self._run(crops)
        return np.concatenate([self._run([crop]) for crop in crops])

    def _run(self, crops: Sequence[np.ndarray]) -> FloatArray:
        tensor = to_tensor(crops, self.input_spec)
        (raw,) = self._session.run([self._output_name], {self._input_name: tensor})
        vectors = np.asarray(raw, dtype=np.float32).reshape(len(crops), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        # A zero vector (no face features at all) stays zero rather than becoming NaN.
        result: FloatArray = vectors / np.maximum(norms, 1e-12)
        return result
