"""ONNX model manifest, preparation and inference wrappers.

Face payment arrives in a later release; nothing here imports ``edge``.
"""
