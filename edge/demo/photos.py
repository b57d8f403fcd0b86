"""Real face photos for the demo, the benchmark and the tests, from wheels on PyPI (the only
source used: the registry the project installs from).

==============  ======================  ===============================================
name            wheel                   file in the wheel
==============  ======================  ===============================================
t1              insightface 2.1         insightface/data/images/t1.jpg (six people)
tom_hanks       insightface 2.1         insightface/data/images/Tom_Hanks_54745.png
                                        (an aligned 112x112 crop, grey)
grace_hopper    matplotlib 3.11.2       matplotlib/mpl-data/sample_data/grace_hopper.jpg
astronaut       scikit-image 0.26.0     skimage/data/astronaut.png
==============  ======================  ===============================================

Each wheel is fetched once with ``pip download --no-deps --only-binary=:all:`` into
``<cache>/wheels``; only the image's bytes are read from the zip (nothing is installed) and
kept, checked by sha256, in ``<cache>/photos``. ``<cache>`` is ``$EDGE_PHOTO_CACHE``, else the
source tree's ``.cache`` (a checkout), else ``~/.cache/edge``. ``python -m edge.demo.photos``
fetches everything ahead of a test run. No photo is ever written anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


def _cache_root() -> Path:
    configured = os.environ.get("EDGE_PHOTO_CACHE")
    if configured:
        return Path(configured).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".cache"
    return Path.home() / ".cache" / "edge"


CACHE = _cache_root()
WHEELS = CACHE / "wheels"
PHOTOS = CACHE / "photos"


class PhotoUnavailable(RuntimeError):
    """A photo's wheel could not be downloaded from PyPI, or does not hold the expected file."""


@dataclass(frozen=True)
class Photo:
    package: str
    version: str
    member: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


CATALOGUE: dict[str, Photo] = {
    "t1": Photo(
        "insightface",
        "2.1",
        "insightface/data/images/t1.jpg",
        "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
    ),
    "tom_hanks": Photo(
        "insightface",
        "2.1",
        "insightface/data/images/Tom_Hanks_54745.png",
        "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
    ),
    "grace_hopper": Photo(
        "matplotlib",
        "3.11.2",
        "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    ),
    "astronaut": Photo(
        "scikit-image",
        "0.26.0",
        "skimage/data/astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ),
}


def photo_path(name: str) -> Path:
    """The photo's original file (JPEG or PNG bytes as in the wheel), fetched if needed."""
    photo = CATALOGUE[name]
    path = PHOTOS / f"{name}{Path(photo.member).suffix}"
    if not (path.is_file() and _sha256(path.read_bytes()) == photo.sha256):
        _extract(name, photo, path)
    return path


def load_photo(name: str) -> np.ndarray:
    """The photo decoded as a BGR uint8 array."""
    path = photo_path(name)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PhotoUnavailable(f"OpenCV cannot decode {path}: delete it and fetch it again")
    return image


def prefetch() -> list[str]:
    """Fetch every photo; returns one line per photo saying where it came from."""
    lines = []
    for name, photo in CATALOGUE.items():
        cached = PHOTOS / f"{name}{Path(photo.member).suffix}"
        was_there = cached.is_file() and _sha256(cached.read_bytes()) == photo.sha256
        path = photo_path(name)
        how = "cached" if was_there else f"extracted from {photo.requirement}"
        lines.append(f"{name}: {path} ({how})")
    return lines


def _extract(name: str, photo: Photo, path: Path) -> None:
    wheel = _wheel(photo)
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(photo.member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise PhotoUnavailable(
            f"{wheel} does not hold {photo.member} ({exc}): delete the wheel and fetch it again"
        ) from exc
    digest = _sha256(data)
    if digest != photo.sha256:
        raise PhotoUnavailable(
            f"{photo.member} in {wheel.name} has sha256 {digest}, expected {photo.sha256}: "
            f"delete {wheel} and fetch {photo.requirement} again"
        )
    PHOTOS.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_bytes(data)
    os.replace(staging, path)


def _wheel(photo: Photo) -> Path:
    """The package's wheel in the cache, downloaded from PyPI with pip if missing."""
    found = _cached_wheel(photo)
    if found is not None:
        return found
    WHEELS.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(WHEELS),
        photo.requirement,
    ]
    # Fixed arguments: this interpreter's pip and a pinned requirement from the catalogue.
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    found = _cached_wheel(photo)
    if result.returncode != 0 or found is None:
        lines = (result.stderr or result.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {result.returncode}"
        raise PhotoUnavailable(
            f"pip could not download the wheel {photo.requirement} from PyPI ({why}): "
            "it carries the face photos; check the network link to PyPI"
        )
    return found


def _cached_wheel(photo: Photo) -> Path | None:
    # Wheel file names normalise the project name (scikit-image -> scikit_image).
    stem = re.sub(r"[-_.]+", "_", photo.package).lower()
    matches = sorted(WHEELS.glob(f"{stem}-{photo.version}-*.whl"))
    return matches[0] if matches else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    try:
        lines = prefetch()
    except PhotoUnavailable as exc:
        print(f"test photos: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"test photos: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
