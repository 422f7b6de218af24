"""The torch DataLoader and Keras PyDataset adapters over a LabSet."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data.dataset import LabSet


@pytest.fixture
def labset() -> LabSet:
    rng = np.random.default_rng(0)
    lab = rng.normal(0, 30, size=(6, 24, 24, 3)).astype(np.float32)
    lab[..., 0] = rng.uniform(0, 100, size=(6, 24, 24))
    return LabSet(lab, [5, 1, 2, 3, 0], [f"i{k}" for k in range(5)], np.array([0, 1, 2, 0, 1]),
                  ["a", "b", "c"], crop=16, seed=3)


@pytest.fixture
def eval_set(labset) -> LabSet:
    return LabSet(labset._lab, labset.indices, labset.names, labset.labels, labset.class_names)


def test_torch_loader_shapes_dtypes_and_values(labset):
    import torch

    loader = labset.torch_loader(2, shuffle=False)
    batches = list(loader)
    assert [len(b["L"]) for b in batches] == [2, 2, 1]
    first = batches[0]
    assert first["L"].shape == (2, 1, 16, 16) and first["ab"].shape == (2, 2, 16, 16)
    assert first["L"].dtype == torch.float32 and first["ab"].dtype == torch.float32
    assert first["label"].tolist() == [0, 1]
    labels = torch.cat([b["label"] for b in batches]).tolist()
    assert labels == labset.labels.tolist()
    L, ab = labset.sample(1, epoch=0)
    np.testing.assert_array_equal(first["L"][1, 0].numpy(), L)
    np.testing.assert_array_equal(first["ab"][1].numpy(), ab.transpose(2, 0, 1))


def test_torch_set_epoch_changes_crops(labset):
    loader = labset.torch_loader(5, shuffle=False)
    e0 = next(iter(loader))["ab"].clone()
    again = next(iter(loader))["ab"]
    assert np.array_equal(e0.numpy(), again.numpy())  # same epoch, same crops
    loader.dataset.set_epoch(1)
    e1 = next(iter(loader))["ab"]
    assert not np.array_equal(e0.numpy(), e1.numpy())
    np.testing.assert_array_equal(e1[0].numpy(), labset.sample(0, epoch=1)[1].transpose(2, 0, 1))
    started = labset.torch_loader(5, shuffle=False, epoch=1)  # the epoch= argument agrees
    np.testing.assert_array_equal(next(iter(started))["ab"].numpy(), e1.numpy())


def test_torch_shuffle_is_a_seeded_permutation(labset):
    def labels(loader):
        return [x for b in loader for x in b["label"].tolist()]

    a = labels(labset.torch_loader(2, shuffle=True))
    b = labels(labset.torch_loader(2, shuffle=True))
    assert a == b and sorted(a) == sorted(labset.labels.tolist())


def test_torch_eval_set_yields_whole_images(eval_set):
    batch = next(iter(eval_set.torch_loader(5, shuffle=False)))
    assert batch["L"].shape == (5, 1, 24, 24)
    np.testing.assert_array_equal(batch["L"][:, 0].numpy(), eval_set.arrays()[0])


def test_keras_dataset_batches(labset):
    from harness.keras_env import configure

    configure()  # as the adapter does: torch loads before TensorFlow
    import keras

    ds = labset.keras_dataset(2, shuffle=False)
    assert isinstance(ds, keras.utils.PyDataset)
    assert len(ds) == 3
    x, y = ds[0]
    assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
    assert x.shape == (2, 16, 16, 1) and y.shape == (2, 16, 16, 2)
    assert x.dtype == np.float32 and y.dtype == np.float32
    L, ab = labset.sample(1, epoch=0)
    np.testing.assert_array_equal(x[1, ..., 0], L)
    np.testing.assert_array_equal(y[1], ab)
    x_last, _ = ds[2]
    assert x_last.shape == (1, 16, 16, 1)


def test_keras_with_labels_gives_a_dict(labset):
    ds = labset.keras_dataset(2, shuffle=False, with_labels=True)
    x, y = ds[1]
    assert x.shape == (2, 16, 16, 1)
    assert set(y) == {"ab", "label"}
    assert y["ab"].shape == (2, 16, 16, 2)
    np.testing.assert_array_equal(y["label"], labset.labels[2:4])


def test_keras_on_epoch_end_changes_crops(labset):
    ds = labset.keras_dataset(5, shuffle=False)
    x0, y0 = ds[0]
    np.testing.assert_array_equal(ds[0][1], y0)  # same epoch, same crops
    ds.on_epoch_end()
    x1, y1 = ds[0]
    assert not np.array_equal(y0, y1)
    np.testing.assert_array_equal(y1[0], labset.sample(0, epoch=1)[1])


def test_keras_shuffle_follows_the_epoch_order(labset):
    ds = labset.keras_dataset(5, shuffle=True, with_labels=True)
    orders = []
    for epoch in range(3):
        _, y = ds[0]
        order = labset.order(epoch, shuffle=True)
        np.testing.assert_array_equal(y["label"], labset.labels[order])
        orders.append(tuple(order))
        ds.on_epoch_end()
    assert len(set(orders)) > 1
