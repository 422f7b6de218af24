"""LabSet crops, flips, epochs and batches; split_groups; splits through load_splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.data.dataset import LabSet, split_groups
from harness.data.loader import load_splits

SIZE = 32


def coordinate_lab(n: int = 5, size: int = SIZE) -> np.ndarray:
    """Lab-shaped cache where L is the image number, a the column and b the row of a pixel."""
    lab = np.zeros((n, size, size, 3), np.float32)
    lab[..., 0] = np.arange(n, dtype=np.float32)[:, None, None]
    lab[..., 1] = np.arange(size, dtype=np.float32)[None, None, :]
    lab[..., 2] = np.arange(size, dtype=np.float32)[None, :, None]
    return lab


def make_set(crop: int | None = 16, seed: int = 0, n: int = 5, indices=None) -> LabSet:
    lab = coordinate_lab(n)
    indices = list(range(n)) if indices is None else indices
    return LabSet(lab, indices, [f"img{i}" for i in indices], np.arange(len(indices)) % 2,
                  ["even", "odd"], crop=crop, seed=seed)


def window(L: np.ndarray, ab: np.ndarray) -> tuple[int, int, int, bool]:
    """(image, top, left, flipped) of a crop of coordinate_lab, checking it is one window."""
    cols, rows = ab[..., 0], ab[..., 1]
    flipped = bool(cols[0, 0] > cols[0, -1])
    left = int(cols.min())
    expect_cols = np.arange(left, left + ab.shape[1])[::-1 if flipped else 1]
    np.testing.assert_array_equal(cols, np.broadcast_to(expect_cols, cols.shape))
    top = int(rows.min())
    expect_rows = np.arange(top, top + ab.shape[0])[:, None]
    np.testing.assert_array_equal(rows, np.broadcast_to(expect_rows, rows.shape))
    assert np.unique(L).size == 1
    return int(L[0, 0]), top, left, flipped


def test_crops_have_the_configured_size_and_stay_inside():
    labset = make_set(crop=16)
    assert labset.image_size == 16
    for i in range(len(labset)):
        L, ab = labset.sample(i, epoch=3)
        assert L.shape == (16, 16) and ab.shape == (16, 16, 2)
        assert L.dtype == np.float32 and ab.dtype == np.float32
        image, top, left, _ = window(L, ab)
        assert image == i and 0 <= top <= SIZE - 16 and 0 <= left <= SIZE - 16


def test_crops_are_deterministic_for_seed_epoch_index():
    a, b = make_set(seed=7), make_set(seed=7)
    for epoch in range(3):
        for i in range(len(a)):
            for x, y in zip(a.sample(i, epoch), b.sample(i, epoch)):
                np.testing.assert_array_equal(x, y)
    # reading order does not matter: sample 3 alone equals sample 3 inside a batch
    L, ab = a.batch([4, 3, 0], epoch=2)
    np.testing.assert_array_equal(ab[1], a.sample(3, 2)[1])


def test_crops_change_between_epochs_and_seeds():
    labset = make_set()
    per_epoch = [[window(*labset.sample(i, e)) for i in range(len(labset))] for e in range(4)]
    for e in range(1, 4):
        assert per_epoch[e] != per_epoch[0]
        assert sum(x != y for x, y in zip(per_epoch[e], per_epoch[0])) >= 3
    other = [window(*make_set(seed=1).sample(i, 0)) for i in range(len(labset))]
    assert other != per_epoch[0]


def test_flips_happen_about_half_the_time_and_offsets_spread():
    labset = make_set(crop=16)
    draws = [window(*labset.sample(i, e)) for e in range(100) for i in range(len(labset))]
    flipped = np.mean([d[3] for d in draws])
    assert 0.4 < flipped < 0.6, flipped
    tops = {d[1] for d in draws}
    lefts = {d[2] for d in draws}
    assert tops == set(range(SIZE - 16 + 1)) and lefts == set(range(SIZE - 16 + 1))


def test_eval_set_returns_the_whole_image():
    lab = coordinate_lab(4)
    labset = LabSet(lab, [2, 0], ["b", "a"], np.array([-1, -1]), [], crop=None)
    assert labset.image_size == SIZE
    for epoch in (0, 5):
        L, ab = labset.sample(0, epoch)
        np.testing.assert_array_equal(L, lab[2, ..., 0])
        np.testing.assert_array_equal(ab, lab[2, ..., 1:])
    L, ab = labset.arrays()
    assert L.shape == (2, SIZE, SIZE) and ab.shape == (2, SIZE, SIZE, 2)
    np.testing.assert_array_equal(ab, lab[[2, 0], ..., 1:])
    assert not labset.has_labels


def test_iter_batches_covers_each_sample_once_per_epoch():
    labset = make_set(n=7)
    for shuffle in (False, True):
        seen = []
        batches = list(labset.iter_batches(3, epoch=1, shuffle=shuffle))
        assert [len(b[0]) for b in batches] == [3, 3, 1]
        for L, ab, labels in batches:
            assert L.shape[1:] == (16, 16) and ab.shape[1:] == (16, 16, 2)
            images = [int(x[0, 0]) for x in L]
            seen += images
            np.testing.assert_array_equal(labels, np.asarray(images) % 2)
        assert sorted(seen) == list(range(7))
        if not shuffle:
            assert seen == list(range(7))
    assert labset.steps_per_epoch(3) == 3
    orders = [tuple(labset.order(e, shuffle=True)) for e in range(4)]
    assert len(set(orders)) > 1 and orders[0] == tuple(make_set(n=7).order(0, True))


def test_has_labels_needs_every_image_labelled():
    labset = make_set()
    assert labset.has_labels
    partial = LabSet(coordinate_lab(2), [0, 1], ["a", "b"], np.array([0, -1]), ["x"], crop=8)
    assert not partial.has_labels


def test_split_groups_is_seeded_and_sized():
    groups = [f"g{i}" for i in range(20)]
    held = split_groups(groups, 0.25, seed=3)
    assert len(held) == 5 and held <= set(groups)
    assert split_groups(list(reversed(groups)), 0.25, seed=3) == held  # order-independent
    assert len({frozenset(split_groups(groups, 0.25, s)) for s in range(10)}) >= 8
    assert split_groups(["a", "a", "a"], 0.5, 0) == set()
    assert split_groups(["a", "b"], 0.01, 0) in ({"a"}, {"b"})  # at least one held out
    assert len(split_groups(["a", "b", "c"], 0.99, 0)) == 2  # and at least one kept


def test_load_splits_split_by_image_and_deterministic(photo_folder, registry, make_cfg):
    folder = photo_folder(12)
    cfg = make_cfg(folder, size=16, eval_size=24, test_fraction=0.25, val_fraction=0.2)
    runs = {seed: load_splits(cfg, registry, seed=seed) for seed in range(5)}
    first = load_splits(cfg, registry, seed=0)
    assert first.report["test_images"] == runs[0].report["test_images"]
    assert first.report["splits"] == {"train": 7, "val": 2, "test": 3}
    tests = {seed: tuple(s.report["test_images"]) for seed, s in runs.items()}
    assert len(set(tests.values())) >= 3  # other seeds mostly hold out other images

    for splits in runs.values():
        train, val, test = set(splits.train.names), set(splits.val.names), set(splits.test.names)
        assert not (train & test) and not (train & val) and not (val & test)
        assert len(train | val | test) == 12
        assert set(splits.train_full.names) == train
        assert not set(splits.train.indices) & set(splits.test.indices)
        np.testing.assert_array_equal(splits.train.indices, splits.train_full.indices)
        assert splits.train.crop == 16 and splits.train.image_size == 16
        assert splits.test.crop is None and splits.test.image_size == 24
        assert splits.val.crop is None
        json.dumps(splits.report)  # the run writes it as JSON


def test_max_images_is_a_seeded_cap(photo_folder, registry, make_cfg):
    folder = photo_folder(10)
    a = load_splits(make_cfg(folder, max_images=6), registry, seed=0)
    b = load_splits(make_cfg(folder, max_images=6), registry, seed=0)
    assert a.report["found"] == 6 and a.report["used"] == 6
    assert sorted(a.train.names + a.test.names) == sorted(b.train.names + b.test.names)


@pytest.mark.parametrize("crop", [8, 16, 32])
def test_train_crops_from_the_loader(photo_folder, registry, make_cfg, crop):
    splits = load_splits(make_cfg(photo_folder(4), size=crop, eval_size=32), registry, seed=0)
    L, ab, _ = next(splits.train.iter_batches(2))
    assert L.shape == (2, crop, crop) and ab.shape == (2, crop, crop, 2)


@pytest.mark.parametrize(("n", "batch"), [(3, 8), (7, 3), (6, 3)])
def test_stream_cuts_seeded_epochs_into_full_batches(n, batch):
    labset = make_set(n=n)
    stream = labset.stream(batch)
    steps = stream.steps_for_epochs(4)
    assert steps == -(-4 * n // batch)
    items = [item for step in range(steps) for item in stream.items(step)]
    assert all(len(stream.items(s)) == batch for s in range(steps))
    for epoch in range(4):  # each epoch is its own seeded order of every image once
        assert [i for e, i in items if e == epoch] == list(labset.order(epoch, shuffle=True))
    assert [stream.epoch_at(s) for s in range(steps)] == [items[s * batch][0] for s in range(steps)]
    L, ab, labels = stream.batch(1)
    assert L.shape == (batch, 16, 16) and ab.shape == (batch, 16, 16, 2)
    for (epoch, i), l_crop, ab_crop, label in zip(stream.items(1), L, ab, labels, strict=True):
        expected = labset.sample(i, epoch)  # the crop of that image in that epoch
        np.testing.assert_array_equal(l_crop, expected[0])
        np.testing.assert_array_equal(ab_crop, expected[1])
        assert label == labset.labels[i]
    again = make_set(n=n).stream(batch)  # a pure function of (seed, step): resumable
    assert [again.items(s) for s in reversed(range(steps))] == \
        [stream.items(s) for s in reversed(range(steps))]


def test_stream_with_fewer_images_than_a_batch_draws_distinct_crops():
    stream = make_set(n=2).stream(6)
    L, ab, _ = stream.batch(0)  # three epochs of two images
    windows = [window(l_crop, ab_crop) for l_crop, ab_crop in zip(L, ab, strict=True)]
    assert sorted(w[0] for w in windows) == [0, 0, 0, 1, 1, 1]
    assert len({w[1:] for w in windows if w[0] == 0}) > 1  # not one crop three times


def test_stream_ranks_split_each_step_between_them():
    labset = make_set(n=5)
    whole = labset.stream(6)
    ranks = [labset.stream(3, rank=r, world=2) for r in range(2)]
    for step in range(4):
        assert ranks[0].items(step) + ranks[1].items(step) == whole.items(step)
        assert ranks[0].epoch_at(step) == whole.epoch_at(step)
    assert ranks[0].steps_for_epochs(3) == whole.steps_for_epochs(3) == 3
    with pytest.raises(ValueError, match="rank 2"):
        labset.stream(3, rank=2, world=2)
    with pytest.raises(ValueError, match="empty"):
        make_set(n=1, indices=[]).stream(3)
