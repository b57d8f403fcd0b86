"""The face gallery: exact top-k (checked against float32 brute force), changes, threads."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from edge.facepay import gallery as gallery_module
from edge.facepay.gallery import EXACT_BELOW, FLOOR_CAP, Gallery, SearchResult

DIM = 128


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def random_members(seed: int, count: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"m{i}" for i in range(count)], unit(rng.standard_normal((count, DIM)))


def near(rng: np.random.Generator, template: np.ndarray, noise: float) -> np.ndarray:
    return unit(template + rng.normal(0, noise, DIM))


def brute_force(
    templates: np.ndarray, ids: list[str], probe: np.ndarray, k: int, floor: float | None
) -> list[tuple[str, float]]:
    scores = templates @ unit(probe)
    order = np.argsort(-scores, kind="stable")
    count = k
    if floor is not None:
        count = max(k, min(FLOOR_CAP, int(np.count_nonzero(scores >= floor))))
    return [(ids[i], float(scores[i])) for i in order[:count]]


def assert_exact(
    result: SearchResult,
    templates: np.ndarray,
    ids: list[str],
    probe: np.ndarray,
    k: int = 2,
    floor: float | None = None,
) -> None:
    """Same members, order and scores as brute force; members may differ only on exact ties."""
    expected = brute_force(templates, ids, probe, k, floor)
    got = [(c.member_id, c.score) for c in result.candidates]
    assert len(got) == len(expected)
    assert result.gallery_size == len(ids)
    exact = dict(zip(ids, (templates @ unit(probe)).tolist(), strict=True))
    for (got_id, got_score), (want_id, want_score) in zip(got, expected, strict=True):
        assert got_score == pytest.approx(want_score, abs=1e-5)
        assert got_score == pytest.approx(exact[got_id], abs=1e-5)
        if got_id != want_id:  # only a tie at float32 resolution may swap two members
            assert abs(exact[got_id] - exact[want_id]) < 1e-6


def naive_int8_top(templates: np.ndarray, probe: np.ndarray, k: int) -> set[int]:
    """Top k by the quantised score alone: what a search without the exact re-rank returns."""
    codes = np.clip(np.rint(templates * gallery_module.SCALE), -127, 127).astype(np.int32)
    probe = unit(probe)
    probe_codes = np.rint(probe * 127 / np.abs(probe).max()).astype(np.int32)
    return set(np.argsort(-(codes @ probe_codes), kind="stable")[:k].tolist())


@pytest.fixture(scope="module")
def big() -> tuple[Gallery, list[str], np.ndarray]:
    ids, templates = random_members(0, 100_000)
    gallery = Gallery(DIM)
    gallery.bulk_load(ids, templates)
    return gallery, ids, templates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_galleries_match_brute_force(seed: int) -> None:
    ids, templates = random_members(seed, 100_000)
    gallery = Gallery(DIM)
    gallery.bulk_load(ids, templates)
    rng = np.random.default_rng(100 + seed)
    for _ in range(8):
        member = int(rng.integers(len(ids)))
        returning = near(rng, templates[member], 0.08)
        result = gallery.search(returning, k=2)
        assert result.candidates[0].member_id == ids[member]
        assert_exact(result, templates, ids, returning, k=2)
        stranger = rng.standard_normal(DIM)
        assert_exact(gallery.search(stranger, k=5), templates, ids, stranger, k=5)
        assert_exact(
            gallery.search(stranger, k=8, floor=0.0), templates, ids, stranger, k=8, floor=0.0
        )


def test_clustered_near_ties_match_brute_force() -> None:
    rng = np.random.default_rng(7)
    centres = unit(rng.standard_normal((40, DIM)))
    # 250 look-alikes per centre: their scores to a probe differ by far less than the int8
    # pass's error, so only a sound re-rank window gets the order right.
    templates = unit(np.repeat(centres, 250, axis=0) + rng.normal(0, 0.02, (10_000, DIM)))
    ids = [f"twin{i}" for i in range(len(templates))]
    gallery = Gallery(DIM)
    gallery.bulk_load(ids, templates)
    assert len(gallery) >= EXACT_BELOW  # the int8 pass is in play
    naive_wrong = 0
    for probe_number in range(12):
        probe = near(rng, centres[probe_number], 0.01)
        top = np.sort(templates @ probe)[::-1]
        assert top[0] - top[7] < 0.02  # near ties indeed
        naive_wrong += naive_int8_top(templates, probe, 8) != {
            int(i) for i in np.argsort(-(templates @ probe))[:8]
        }
        assert_exact(gallery.search(probe, k=8), templates, ids, probe, k=8)
        assert_exact(gallery.search(probe, k=2, floor=0.9), templates, ids, probe, k=2, floor=0.9)
    assert naive_wrong > 0  # the quantised order alone would have been wrong here


def test_templates_beyond_the_quantisation_range_are_still_found() -> None:
    ids, templates = random_members(3, EXACT_BELOW + 1_000)
    spiky = np.zeros((3, DIM), np.float32)
    spiky[:, 0] = 0.9  # one component far beyond the int8 range: scored exactly instead
    spiky[:, 1:4] = np.eye(3) * 0.4
    spiky = unit(spiky)
    all_ids = [*ids, "spike0", "spike1", "spike2"]
    all_templates = np.vstack([templates, spiky])
    gallery = Gallery(DIM)
    gallery.bulk_load(all_ids, all_templates)
    assert len(gallery._outliers) == 3  # kept out of the int8 pass
    for number in range(3):
        result = gallery.search(spiky[number], k=3)
        assert result.candidates[0].member_id == f"spike{number}"
        assert result.candidates[0].score == pytest.approx(1.0, abs=1e-5)
        assert_exact(result, all_templates, all_ids, spiky[number], k=3)
    assert gallery.remove("spike1")
    result = gallery.search(spiky[1], k=3)
    assert "spike1" not in [c.member_id for c in result.candidates]
    assert {c.member_id for c in result.candidates[:2]} == {"spike0", "spike2"}


def test_upsert_replaces_a_template(big: tuple[Gallery, list[str], np.ndarray]) -> None:
    gallery, _ids, _templates = big
    rng = np.random.default_rng(11)
    first, second = unit(rng.standard_normal((2, DIM)))
    gallery.upsert("replaced", first)
    size = len(gallery)
    assert gallery.search(first, k=1).candidates[0].member_id == "replaced"
    gallery.upsert("replaced", second * 3.0)  # not unit length: normalised on the way in
    assert len(gallery) == size
    assert gallery.score("replaced", second) == pytest.approx(1.0, abs=1e-5)
    assert gallery.search(second, k=1).candidates[0].member_id == "replaced"
    assert "replaced" not in [c.member_id for c in gallery.search(first, k=2).candidates]
    assert gallery.remove("replaced")


@pytest.mark.parametrize("size", [10, EXACT_BELOW + 10])
def test_removed_members_are_never_returned_and_their_row_is_overwritten(size: int) -> None:
    ids, templates = random_members(4, size)
    gallery = Gallery(DIM)
    gallery.bulk_load(ids, templates)
    for gone in (ids[3], ids[-1]):  # one moved over by the last member, one the last itself
        assert gallery.remove(gone)
        assert gone not in gallery
        assert gallery.score(gone, templates[ids.index(gone)]) is None
        found = gallery.search(templates[ids.index(gone)], k=5, floor=-1.0)
        assert gone not in [c.member_id for c in found.candidates]
        assert found.gallery_size == len(gallery)
        # Nothing of the removed template remains in the gallery's memory.
        assert not np.any(np.all(gallery._exact == templates[ids.index(gone)], axis=1))
    assert not gallery.remove(ids[3])
    assert not gallery.remove("never-enrolled")
    assert len(gallery) == size - 2
    kept = [i for i in range(size) if ids[i] not in (ids[3], ids[-1])]
    kept_ids = [ids[i] for i in kept]
    probe = templates[7] + 0.05
    assert_exact(gallery.search(probe, k=3), templates[kept], kept_ids, probe, k=3)
    # The member that filled the freed slot is still itself.
    assert gallery.score(ids[-2], templates[-2]) == pytest.approx(1.0, abs=1e-5)


def test_floor_returns_every_member_above_it_up_to_the_cap() -> None:
    probe = np.zeros(DIM, np.float32)
    probe[0] = 1.0
    gallery = Gallery(DIM)
    for number, score in enumerate([0.95, 0.9, 0.8, 0.7, 0.6, 0.3]):
        template = np.zeros(DIM, np.float32)
        template[0], template[number + 1] = score, np.sqrt(1 - score**2)
        gallery.upsert(f"m{number}", template)
    floored = gallery.search(probe, k=2, floor=0.65)
    assert [c.member_id for c in floored.candidates] == ["m0", "m1", "m2", "m3"]
    assert [round(c.score, 4) for c in floored.candidates] == [0.95, 0.9, 0.8, 0.7]
    assert [c.member_id for c in gallery.search(probe, k=2, floor=0.99).candidates] == [
        "m0",
        "m1",
    ]
    assert len(gallery.search(probe, k=2).candidates) == 2


def test_floor_is_capped(big: tuple[Gallery, list[str], np.ndarray]) -> None:
    gallery, ids, templates = big
    probe = np.random.default_rng(5).standard_normal(DIM)
    result = gallery.search(probe, k=8, floor=-1.0)
    assert len(result.candidates) == FLOOR_CAP
    assert_exact(result, templates, ids, probe, k=8, floor=-1.0)


def test_empty_gallery() -> None:
    gallery = Gallery(DIM)
    probe = np.ones(DIM, np.float32)
    assert gallery.search(probe) == SearchResult((), 0)
    assert gallery.search(probe, k=3, floor=0.0) == SearchResult((), 0)
    assert gallery.score("anyone", probe) is None
    assert not gallery.remove("anyone")
    assert len(gallery) == 0
    assert "anyone" not in gallery


def test_wrong_shapes_and_values_are_refused() -> None:
    gallery = Gallery(DIM)
    gallery.upsert("a", np.ones(DIM))
    with pytest.raises(ValueError, match="128-value"):
        gallery.upsert("b", np.ones(DIM + 1))
    with pytest.raises(ValueError, match="128-value"):
        gallery.search(np.ones(512))
    with pytest.raises(ValueError, match="128-value"):
        gallery.score("a", np.ones((1, DIM)))
    with pytest.raises(ValueError, match="shape"):
        gallery.bulk_load(["c", "d"], np.ones((2, 64)))
    with pytest.raises(ValueError, match="shape"):
        gallery.bulk_load(["c", "d"], np.ones((3, DIM)))
    with pytest.raises(ValueError, match="twice"):
        gallery.bulk_load(["c", "c"], np.ones((2, DIM)))
    with pytest.raises(ValueError, match="all zeros"):
        gallery.upsert("z", np.zeros(DIM))
    with pytest.raises(ValueError, match="not finite"):
        gallery.bulk_load(["c", "d"], np.array([np.ones(DIM), np.full(DIM, np.nan)]))
    with pytest.raises(ValueError, match="k must"):
        gallery.search(np.ones(DIM), k=0)
    assert len(gallery) == 1 and "c" not in gallery  # a refused bulk load adds nobody


def test_bulk_load_adds_to_and_replaces_members() -> None:
    ids, templates = random_members(6, 4_000)
    gallery = Gallery(DIM)
    gallery.bulk_load(ids[:3_000], templates[:3_000])
    rng = np.random.default_rng(60)
    replacements = unit(rng.standard_normal((10, DIM)))
    gallery.bulk_load([*ids[:10], *ids[3_000:]], np.vstack([replacements, templates[3_000:]]))
    assert len(gallery) == 4_000
    expected = templates.copy()
    expected[:10] = replacements
    for probe in (replacements[4], templates[3_500], rng.standard_normal(DIM)):
        assert_exact(gallery.search(probe, k=4), expected, ids, probe, k=4)


def test_searches_in_a_thread_while_members_change() -> None:
    ids, templates = random_members(8, EXACT_BELOW * 2)
    gallery = Gallery(DIM)
    gallery.bulk_load(ids, templates)
    churn = unit(np.random.default_rng(80).standard_normal((300, DIM)))
    done = threading.Event()
    failures: list[str] = []
    searches = 0

    def search_loop() -> None:
        nonlocal searches
        probes = np.random.default_rng(9)
        try:
            while not done.is_set() or searches < 20:
                member = int(probes.integers(len(ids)))
                result = gallery.search(templates[member], k=3, floor=0.5)
                scores = [c.score for c in result.candidates]
                if result.candidates[0].member_id != ids[member]:
                    failures.append(f"{ids[member]} found {result.candidates[0].member_id}")
                if scores != sorted(scores, reverse=True):
                    failures.append(f"unsorted {scores}")
                if not len(ids) <= result.gallery_size <= len(ids) + len(churn):
                    failures.append(f"gallery size {result.gallery_size}")
                searches += 1
        except Exception as exc:  # reported below: a thread's exception would be lost
            failures.append(repr(exc))

    worker = threading.Thread(target=search_loop)
    worker.start()
    try:
        for round_number in range(3):
            for number, template in enumerate(churn):
                gallery.upsert(f"churn{number}", template)
            for number in range(len(churn)):
                if (number + round_number) % 2 == 0:
                    assert gallery.remove(f"churn{number}")
            for number in range(len(churn)):
                gallery.remove(f"churn{number}")
    finally:
        done.set()
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert failures == []
    assert searches >= 20
    assert len(gallery) == len(ids)
    for number in range(0, len(churn), 37):
        assert f"churn{number}" not in gallery
        found = gallery.search(churn[number], k=3)
        assert f"churn{number}" not in [c.member_id for c in found.candidates]


def test_small_gallery_uses_the_same_answers() -> None:
    ids, templates = random_members(10, 50)
    gallery = Gallery(DIM)
    for member, template in zip(ids, templates, strict=True):
        gallery.upsert(member, template)
    probe = np.random.default_rng(110).standard_normal(DIM)
    assert_exact(gallery.search(probe, k=3), templates, ids, probe, k=3)
    assert_exact(gallery.search(probe, k=100), templates, ids, probe, k=100)
    assert repr(gallery) == "Gallery(dim=128, members=50)"


def test_bytes_per_member_counts_the_arrays() -> None:
    assert Gallery(DIM).bytes_per_member == 128 * 4 + 128 + 4


def test_measure_search_smoke() -> None:
    if importlib.util.find_spec("faiss") is None:
        pytest.skip("faiss is not installed (pip install -e .[bench])")
    from edge.bench.facepay_search import measure_search

    result = measure_search(n=20_000, queries=5)
    assert set(result) == {
        "search_ms",
        "faiss_ms",
        "ratio",
        "agree",
        "bytes_per_member",
        "faiss_threads",
    }
    for key in ("search_ms", "faiss_ms"):
        timings = result[key]
        assert isinstance(timings, dict) and set(timings) == {"p50", "p99"}
        assert 0 < timings["p50"] <= timings["p99"]
    assert isinstance(result["ratio"], float) and result["ratio"] > 0
    assert result["agree"] == 1.0
    assert result["bytes_per_member"] == 644
