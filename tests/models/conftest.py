"""Session-wide prepared models and photos for the models tests (preparing takes ~1 s)."""

from __future__ import annotations

import numpy as np
import pytest

from models.faces import FaceModels, load_face_models
from models.manifest import Manifest, load_manifest
from models.prepare import prepare_models
from tests.models.support import REPORT, PreparedCache
from tests.photos import CATALOGUE, load_photo


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return load_manifest()


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, manifest: Manifest) -> PreparedCache:
    directory = tmp_path_factory.mktemp("model-cache")
    progress: list[str] = []
    models = prepare_models(directory, manifest, progress=progress.append)
    return PreparedCache(directory, models, progress)


@pytest.fixture(scope="session")
def face_models(prepared: PreparedCache, manifest: Manifest) -> FaceModels:
    return load_face_models(prepared.directory, manifest, threads=1)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in CATALOGUE}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_sep("-", "face recognition scores measured")
        for line in REPORT:
            terminalreporter.write_line(line)
