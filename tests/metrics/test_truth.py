"""The ground-truth store: computes once, shares read-only values, spills past its budget."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import ImageBatch, ScoringContext
from harness.metrics.truth import TruthStore, digest


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_computes_once_and_shares_read_only_values():
    store = TruthStore()
    compute, calls = _counting(np.arange(6.0))
    first = store.get("k", "x", compute)
    assert store.get("k", "x", compute) is first and len(calls) == 1
    assert store.nbytes == first.nbytes and not first.flags.writeable
    with pytest.raises(ValueError):
        first[0] = 1.0
    other, _ = _counting(np.zeros(2))
    assert store.get("k", "y", other).shape == (2,) and store.get("j", "x", other).shape == (2,)


def test_over_budget_without_spill_dir_recomputes():
    store = TruthStore(budget=8)
    compute, calls = _counting(np.arange(4.0))  # 32 bytes
    for _ in range(2):
        np.testing.assert_array_equal(store.get("k", "x", compute), np.arange(4.0))
    assert len(calls) == 2 and store.nbytes == 0


def test_over_budget_spills_to_memory_maps_then_deletes_them(tmp_path):
    store = TruthStore(budget=0, spill_dir=tmp_path)
    value = (np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(4))
    compute, calls = _counting(value)
    got = store.get("k", "lpips", compute)
    assert isinstance(got, tuple) and all(isinstance(a, np.memmap) for a in got)
    assert store.get("k", "lpips", compute) is got and len(calls) == 1
    for a, b in zip(got, value):
        np.testing.assert_array_equal(a, b)
    assert store.spilled_bytes == sum(a.nbytes for a in value) and store.nbytes == 0
    assert len(list(tmp_path.glob(".truth-*/*.npy"))) == 2
    del got
    store.close()
    assert not list(tmp_path.iterdir())


def test_batches_share_by_content_not_identity():
    L = np.full((2, 4, 4), 50.0, np.float32)
    ab = np.zeros((2, 4, 4, 2), np.float32)
    context = ScoringContext()
    a, b = ImageBatch(L, ab, ab, context), ImageBatch(L.copy(), ab + 1, ab.copy(), context)
    assert a.truth_key == b.truth_key and a.rgb_true is b.rgb_true
    c = ImageBatch(L, ab, ab + 1, context)
    assert c.truth_key != a.truth_key and c.rgb_true is not a.rgb_true
    assert digest(L) != digest(L[:1]) and digest(L) != digest(L.astype(np.float64))
