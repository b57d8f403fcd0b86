"""The canonical JSON form that command signatures cover.

UTF-8, keys sorted, no insignificant whitespace, non-ASCII characters as themselves (not
``\\u`` escapes). NaN and Infinity have no JSON form and are refused. Numbers are written the way
Python writes them: a signer in another language should keep to strings and integers in
``data`` (a float such as ``1.0`` or ``1e16`` is spelled differently by other serialisers).
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes; ``ValueError`` for NaN, Infinity or lone surrogates."""
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise ValueError(f"not representable as canonical JSON: {exc}") from exc
    # A lone surrogate (from a "\ud800" escape) has no UTF-8 form: UnicodeEncodeError is a
    # ValueError, so callers see one kind of error for "cannot be canonicalised".
    return text.encode("utf-8")


def strict_loads(text: str | bytes) -> Any:
    """JSON as a signed message must be read: a key given twice, or NaN/Infinity, is refused
    (parsers disagree on which of two equal keys wins; a signed message must mean one thing)."""
    return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
