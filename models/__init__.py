"""ONNX face models for face payment: manifest, one-time preparation, inference wrappers.

- ``models.manifest``: what a model is (``ModelSpec``), the shipped ``manifest.yaml``.
- ``models.prepare``: verify, repair (``models.repair``) and cache a model; ``load_prepared``.
- ``models.runtime``: ``open_session``, the onnxruntime options every model runs with.
- ``models.faces``: the public API: ``FaceDetector``, ``align_face``, ``FaceEmbedder``,
  ``SpoofClassifier``, ``load_face_models``.
- ``models.errors``: the exceptions, each with a message that says what to do.

Nothing here imports ``edge``.
"""
