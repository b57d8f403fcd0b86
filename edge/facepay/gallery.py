"""The face gallery: every enrolled member's template in memory, and fast exact 1:N search.

A search is two passes. An int8 pass scores the probe against every member at once (a one-node
ONNX ``MatMulInteger`` graph run by onnxruntime, the gallery fed in as an input so enrolment
never rebuilds anything); then the few members that could still be in the true top-k are
re-scored exactly in float32. The window between the passes is sound, not a guess:

- Templates are unit vectors, quantised with one fixed scale ``s = 127 / 0.5`` (components up
  to ±0.5 fit; a unit vector in 128-d has components of about ±0.09, so 0.5 leaves room for
  any plausible embedding while keeping the step, 1/254, small). The probe gets its own scale,
  ``127 / max|q|``, which changes no ranking.
- For a template ``g`` stored as ``c / s`` with residual norm ``rho_g = |g - c/s|`` and a probe
  ``q`` with residual norm ``rho_q``, ``|q·g - (q_c/s_q)·(c/s)| <= rho_g + rho_q (1 + rho_g)``
  (Cauchy-Schwarz, twice). Every template in the int8 pass has ``rho_g <= rho_cap(d)``; a rounding
  error of at most 1/(2s) per component gives ``rho_g ≈ √(d/3)/(2s)``, and the cap ``√(d/2)/(2s)``
  sits over 6 standard deviations above that for d = 128. The rare row beyond it (a clipped
  component) is left out of the int8 pass and always scored exactly.
- With ``b`` that bound, a member whose approximate score is more than ``2b`` below the k-th
  best approximate score cannot be in the top k, so only the members within ``2b`` are
  re-ranked. Results therefore equal an exact float32 brute force (up to float rounding ties).
  On random 128-d data ``b`` is about 0.022, the largest error seen is under a third of it, and
  a returning shopper's probe re-ranks some 15 members of 1,000,000.

The int8 graph multiplies ``uint8(q_c + 128)`` by the int8 codes (the u8 x s8 path is the fast
one in onnxruntime); ``128 · Σc`` per member is subtracted in the graph, which also returns
the maximum of each group of ``GROUP`` members, so finding the k-th best needs no full sort.
Codes live transposed in blocks of ``BLOCK`` members, ``(blocks, d, BLOCK)``, which is the
layout that kernel reads fastest while still growing by whole blocks.

Memory per member: 512 bytes of float32 template, 128 of int8 code and 4 of correction, plus
the id in a list and a dict. One ``threading.Lock`` guards everything: searches run in a
worker thread while enrolment and removal run on the event loop, and removal is immediate.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from models.runtime import session_options

# Components up to ±CLIP survive quantisation unclipped.
CLIP = 0.5
SCALE = 127.0 / CLIP
# Members per block of transposed codes: big enough that a block is one efficient kernel call,
# small enough that a part-filled last block wastes little.
BLOCK = 16_384
# Members per group whose best int8 score the graph reports: the wanted-th best group gives a
# lower bound for the window at once, without sorting every member's score.
GROUP = 256
# Below this many members plain float32 numpy is faster than the int8 pass (measured on 2 cores:
# the two cross between 5,000 and 10,000 members, at about 0.25 ms), and simpler.
EXACT_BELOW = 6_000
# With a floor, at most this many members scoring above it are returned (the 1:1 candidates).
FLOOR_CAP = 50
# The correction of an empty or exactly-scored slot: its int8 score lands far below any real
# one (real scores are within ±2**23), so neither the group maxima nor the window see it.
_PAD = 2**30
_REAL = -(2**29)
# float32 arithmetic in the exact pass and in normalisation: a slack far above its error.
_SLACK = 1e-5
_INITIAL_ROWS = 256
# Rows per step of a bulk load: temporaries stay a few MB, reused rather than freshly mapped.
_CHUNK = 8_192


@dataclass(frozen=True, slots=True)
class Candidate:
    member_id: str
    score: float
    """Cosine similarity, exact float32."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    candidates: tuple[Candidate, ...]
    """Best first; never empty when the gallery isn't."""
    gallery_size: int


def rho_cap(dim: int) -> float:
    """The largest residual norm a template may have and still take part in the int8 pass."""
    return math.sqrt(dim / 2) / (2 * SCALE)


def _int8_graph(dim: int) -> bytes:
    """``dot = uint8 probe @ int8 codes - correction`` per member, and each group's maximum."""
    inputs = [
        helper.make_tensor_value_info("probe", TensorProto.UINT8, [1, dim]),
        helper.make_tensor_value_info("codes", TensorProto.INT8, ["blocks", dim, BLOCK]),
        helper.make_tensor_value_info("correction", TensorProto.INT32, ["blocks", 1, BLOCK]),
    ]
    outputs = [
        helper.make_tensor_value_info("dot", TensorProto.INT32, ["blocks", 1, BLOCK]),
        helper.make_tensor_value_info("group_max", TensorProto.INT32, ["groups"]),
    ]
    group_shape = helper.make_tensor("group_shape", TensorProto.INT64, [2], [-1, GROUP])
    nodes = [
        helper.make_node("MatMulInteger", ["probe", "codes"], ["raw"]),
        helper.make_node("Sub", ["raw", "correction"], ["dot"]),
        helper.make_node("Reshape", ["dot", "group_shape"], ["grouped"]),
        helper.make_node("ReduceMax", ["grouped"], ["group_max"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "gallery_int8", inputs, outputs, [group_shape])
    # IR 8 / opset 13: well inside what every onnxruntime we support loads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return bytes(model.SerializeToString())


class Gallery:
    """Enrolled members' unit-norm templates and exact top-k search over them."""

    def __init__(self, dim: int = 128, *, threads: int = 2) -> None:
        if dim < 1:
            raise ValueError(f"dim must be at least 1, not {dim}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.dim = dim
        self.threads = threads
        self._rho_cap = rho_cap(dim)
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._slots: dict[str, int] = {}
        self._exact = np.zeros((_INITIAL_ROWS, dim), np.float32)
        self._codes = np.zeros((1, dim, BLOCK), np.int8)
        self._correction = np.full((1, 1, BLOCK), _PAD, np.int32)
        self._outliers: set[int] = set()
        self._session: Any = None

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._slots

    def __repr__(self) -> str:
        return f"Gallery(dim={self.dim}, members={len(self._ids)})"

    @property
    def bytes_per_member(self) -> int:
        """Array bytes one member costs (ids and their dict entries not counted)."""
        return self.dim * 4 + self.dim + 4

    # -- changes ---------------------------------------------------------------------------

    def upsert(self, member_id: str, template: np.ndarray) -> None:
        """Add a member, or replace an existing member's template; ``template`` is normalised."""
        row = self._normalised(template, "template")
        with self._lock:
            slot = self._slots.get(member_id)
            if slot is None:
                slot = len(self._ids)
                self._reserve(slot + 1)
                self._ids.append(member_id)
                self._slots[member_id] = slot
            self._write(slot, row[None, :])

    def remove(self, member_id: str) -> bool:
        """Forget a member at once (the next search cannot return it); False if unknown.

        The last member moves into the freed slot and the last slot is zeroed, so the removed
        template's bytes are overwritten in every array.
        """
        with self._lock:
            slot = self._slots.pop(member_id, None)
            if slot is None:
                return False
            last = len(self._ids) - 1
            if slot != last:
                moved = self._ids[last]
                self._ids[slot] = moved
                self._slots[moved] = slot
                self._exact[slot] = self._exact[last]
                block, column = divmod(slot, BLOCK)
                last_block, last_column = divmod(last, BLOCK)
                self._codes[block, :, column] = self._codes[last_block, :, last_column]
                self._correction[block, 0, column] = self._correction[last_block, 0, last_column]
                if last in self._outliers:
                    self._outliers.add(slot)
                else:
                    self._outliers.discard(slot)
            self._ids.pop()
            self._clear(last)
            return True

    def bulk_load(self, member_ids: Sequence[str], templates: np.ndarray) -> None:
        """Add many members at once (start-up); ids already present are replaced.

        Nothing is added unless every template is valid. The work goes in chunks so no
        temporary is ever the size of the whole gallery.
        """
        ids = list(member_ids)
        rows = np.asarray(templates)
        if rows.shape != (len(ids), self.dim):
            raise ValueError(
                f"templates must have shape ({len(ids)}, {self.dim}) for {len(ids)} member "
                f"ids, not {rows.shape}: pass one {self.dim}-value template per member"
            )
        if len(set(ids)) != len(ids):
            raise ValueError("member_ids holds the same id twice: pass each member once")
        for start in range(0, len(ids), _CHUNK):
            self._unit_rows(rows[start : start + _CHUNK], "template")
        with self._lock:
            fresh = [i for i, member in enumerate(ids) if member not in self._slots]
            for i, member in enumerate(ids):
                if member in self._slots:
                    self._write(self._slots[member], self._unit_rows(rows[i : i + 1], "template"))
            everyone = len(fresh) == len(ids)
            new_ids = ids if everyone else [ids[i] for i in fresh]
            first = len(self._ids)
            self._reserve(first + len(new_ids))
            self._ids.extend(new_ids)
            self._slots.update(zip(new_ids, range(first, first + len(new_ids)), strict=True))
            for start in range(0, len(fresh), _CHUNK):
                part = slice(start, start + _CHUNK)
                chunk = rows[part] if everyone else rows[fresh[part]]
                self._write(first + start, self._unit_rows(chunk, "template"))

    # -- queries ---------------------------------------------------------------------------

    def search(self, probe: np.ndarray, *, k: int = 2, floor: float | None = None) -> SearchResult:
        """The top ``k`` members by exact score; with ``floor``, also every member scoring at
        least ``floor``, best first, up to ``FLOOR_CAP`` (the candidates for a 1:1 check)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        query = self._normalised(probe, "probe")
        with self._lock:
            size = len(self._ids)
            if size == 0:
                return SearchResult((), 0)
            wanted = max(k, FLOOR_CAP) if floor is not None else k
            if size < EXACT_BELOW or size <= wanted:
                scores = _scores(self._exact[:size], query)
                slots = np.arange(size)
                if size > wanted:  # only the best ``wanted`` can be returned: sort just those
                    slots = np.argpartition(scores, size - wanted)[size - wanted :]
                    scores = scores[slots]
            else:
                slots = self._int8_candidates(query, k, floor)
                scores = _scores(self._exact[slots], query)
            return self._pick(slots, scores, k, floor, size)

    def score(self, member_id: str, probe: np.ndarray) -> float | None:
        """1:1: the exact cosine similarity of ``probe`` to one member, None if unknown."""
        query = self._normalised(probe, "probe")
        with self._lock:
            slot = self._slots.get(member_id)
            if slot is None:
                return None
            return float(_scores(self._exact[slot : slot + 1], query)[0])

    # -- internals (callers hold the lock) -------------------------------------------------

    def _pick(
        self,
        slots: np.ndarray,
        scores: np.ndarray,
        k: int,
        floor: float | None,
        size: int,
    ) -> SearchResult:
        order = np.argsort(-scores, kind="stable")
        count = k
        if floor is not None:
            count = max(k, min(FLOOR_CAP, int(np.count_nonzero(scores >= floor))))
        best = order[:count]
        return SearchResult(
            tuple(Candidate(self._ids[int(slots[i])], float(scores[i])) for i in best),
            size,
        )

    def _int8_candidates(self, query: np.ndarray, k: int, floor: float | None) -> np.ndarray:
        """Slots that may be in the exact top-k (or above ``floor`` within the cap)."""
        size = len(self._ids)
        blocks = -(-size // BLOCK)
        exact = query.astype(np.float64)
        probe_scale = 127.0 / float(np.max(np.abs(exact)))
        probe_code = np.rint(exact * probe_scale)
        rho_q = float(np.linalg.norm(exact - probe_code / probe_scale))
        probe_u8 = (probe_code + 128).astype(np.uint8).reshape(1, self.dim)
        dot_blocks, group_max = self._run_int8(probe_u8, blocks)
        dot = dot_blocks.reshape(-1)[:size]

        # b bounds |exact - approximate| for every member in the int8 pass (module docstring).
        bound = self._rho_cap * (1 + _SLACK) + rho_q * (1 + self._rho_cap) + _SLACK
        unit = SCALE * probe_scale  # approximate score = dot / unit
        window = 2 * bound * unit
        wanted = max(k, FLOOR_CAP) if floor is not None else k
        in_pass = size - len(self._outliers)
        # The wanted-th best group maximum is a lower bound on the wanted-th best score, so
        # members more than ``window`` below it can be dropped before any sorting.
        coarse = float(_REAL)
        if in_pass > wanted and group_max.shape[0] >= wanted:
            coarse = max(coarse, _kth_largest(group_max, wanted) - window)
        slots = np.flatnonzero(dot >= coarse)
        values = dot[slots]
        threshold = _kth_largest(values, k) - window
        if floor is not None:
            above_floor = max((floor - bound) * unit, _kth_largest(values, FLOOR_CAP) - window)
            threshold = min(threshold, above_floor)
        slots = slots[values >= threshold]
        if self._outliers:
            slots = np.concatenate([slots, np.fromiter(self._outliers, np.int64)])
        return slots

    def _run_int8(self, probe: np.ndarray, blocks: int) -> tuple[np.ndarray, np.ndarray]:
        if self._session is None:
            self._session = ort.InferenceSession(
                _int8_graph(self.dim),
                session_options(self.threads),
                providers=["CPUExecutionProvider"],
            )
        dot, group_max = self._session.run(
            None,
            {
                "probe": probe,
                "codes": self._codes[:blocks],
                "correction": self._correction[:blocks],
            },
        )
        return np.asarray(dot), np.asarray(group_max)

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` members, doubling so that adding one member is amortised O(1).

        A quarter to spare on top, so the first enrolments after a start-up load do not copy
        the whole gallery while holding the lock. Untouched spare rows cost address space only.
        """
        capacity = self._exact.shape[0]
        if rows > capacity:
            capacity = max(rows + rows // 4, 2 * capacity)
            exact = np.zeros((capacity, self.dim), np.float32)
            exact[: len(self._ids)] = self._exact[: len(self._ids)]
            self._exact = exact
        blocks = -(-rows // BLOCK)
        if blocks > self._codes.shape[0]:
            blocks = max(-(-capacity // BLOCK), 2 * self._codes.shape[0])
            used = -(-len(self._ids) // BLOCK)
            codes = np.zeros((blocks, self.dim, BLOCK), np.int8)
            codes[:used] = self._codes[:used]
            correction = np.full((blocks, 1, BLOCK), _PAD, np.int32)
            correction[:used] = self._correction[:used]
            self._codes, self._correction = codes, correction

    def _write(self, start: int, rows: np.ndarray) -> None:
        """Store normalised ``rows`` in slots ``start`` onwards: exact, code and correction."""
        end = start + rows.shape[0]
        self._exact[start:end] = rows
        codes = np.clip(np.rint(rows * SCALE), -127, 127)
        residual = np.linalg.norm(rows - codes / SCALE, axis=1)
        in_pass = residual <= self._rho_cap
        codes[~in_pass] = 0
        correction = np.where(in_pass, 128 * codes.sum(axis=1), _PAD).astype(np.int32)
        codes8 = codes.astype(np.int8)
        slot = start
        while slot < end:
            block, column = divmod(slot, BLOCK)
            width = min(BLOCK - column, end - slot)
            part = slice(slot - start, slot - start + width)
            self._codes[block, :, column : column + width] = codes8[part].T
            self._correction[block, 0, column : column + width] = correction[part]
            slot += width
        # Outliers are rare: rebuild the small set rather than touch every written slot.
        self._outliers = {s for s in self._outliers if not start <= s < end}
        self._outliers.update(start + int(i) for i in np.flatnonzero(~in_pass))

    def _clear(self, slot: int) -> None:
        self._exact[slot] = 0.0
        block, column = divmod(slot, BLOCK)
        self._codes[block, :, column] = 0
        self._correction[block, 0, column] = _PAD
        self._outliers.discard(slot)

    def _normalised(self, vector: np.ndarray, what: str) -> np.ndarray:
        values = np.asarray(vector)
        if values.shape != (self.dim,):
            raise ValueError(
                f"the {what} has shape {values.shape}; this gallery holds {self.dim}-value "
                f"templates: use the same recognition model for both"
            )
        return np.asarray(self._unit_rows(values[None, :], what)[0])

    @staticmethod
    def _unit_rows(rows: np.ndarray, what: str) -> np.ndarray:
        """``rows`` scaled to unit length in float32; ValueError for a zero or non-finite row."""
        rows = rows.astype(np.float32)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms < 1e-12):
            raise ValueError(f"a {what} is all zeros or not finite: pass a real face embedding")
        return np.asarray(rows / norms, np.float32)


def _scores(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Exact float32 cosine of each row to ``query``, on this thread.

    Not ``rows @ query``: OpenBLAS spreads a matrix-vector product over threads from about a
    hundred rows on, and on a 2-core machine waking them costs up to 8 ms now and then, which
    is the whole search budget. The same kernel for every call also makes a member's score
    the same whichever way it is asked for.
    """
    scores: np.ndarray = np.einsum("ij,j->i", rows, query)
    return scores


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest of ``values``, or minus infinity when there are fewer than k."""
    if values.shape[0] < k:
        return -math.inf
    return float(np.partition(values, values.shape[0] - k)[values.shape[0] - k])
