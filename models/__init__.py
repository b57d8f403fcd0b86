"""ONNX model manifest, preparation and inference wrappers (face payment arrives in a later release)."""
