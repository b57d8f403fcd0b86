"""The exceptions of the models package: each message is one sentence that says what to do."""

from __future__ import annotations


class ModelError(Exception):
    """Base class: a model could not be found, verified, prepared or loaded."""


class ManifestError(ModelError):
    """The manifest (shipped or an operator's) is not valid or lacks a model of a role."""


class ModelSourceError(ModelError):
    """The original model file cannot be found (package not installed, file missing)."""


class ModelHashMismatch(ModelSourceError):
    """The original model file is not the one the manifest names (sha256 differs)."""


class ModelNotPrepared(ModelError):
    """The cache has no prepared copy of a model: run the preparation first."""


class ModelCorrupt(ModelError):
    """A prepared model no longer matches the hash recorded when it was prepared."""


class ModelLoadError(ModelError):
    """A file is not a valid ONNX model, or onnxruntime cannot load or run it."""
