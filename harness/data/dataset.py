"""Deterministic splits and sample sets over the Lab cache, shared by every framework."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np


class LabSet:
    """The images of one split, read from the Lab cache.

    With ``crop`` set (training), sample ``i`` of epoch ``e`` is a random ``crop`` x ``crop``
    window, flipped left-right with probability 1/2, drawn from a generator seeded by
    ``(seed, e, i)``: the same on every run, worker and resume. Without ``crop`` (evaluation)
    it is the whole cached image. Arrays follow :mod:`harness.colorizer`'s conventions.
    """

    def __init__(
        self,
        lab: np.ndarray,
        indices: Sequence[int],
        names: Sequence[str],
        labels: np.ndarray,
        class_names: Sequence[str],
        crop: int | None = None,
        seed: int = 0,
    ) -> None:
        self._lab = lab
        self.indices = np.asarray(indices, dtype=np.int64)
        self.names = list(names)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.crop = crop
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def has_labels(self) -> bool:
        """True when every image has a class label (from class sub-folders)."""
        return bool(self.class_names) and bool(len(self)) and bool((self.labels >= 0).all())

    @property
    def image_size(self) -> int:
        """Side of the samples: the training crop, or the cached image's side."""
        return self.crop or self._lab.shape[1]

    def sample(self, i: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``i``: ``L`` (H, W) and ``ab`` (H, W, 2), float32."""
        lab = self._lab[self.indices[i]]
        if self.crop is not None:
            rng = np.random.default_rng((self.seed, epoch, int(i)))
            size = lab.shape[0]
            top, left = rng.integers(0, size - self.crop + 1, size=2)
            lab = lab[top : top + self.crop, left : left + self.crop]
            if rng.random() < 0.5:
                lab = lab[:, ::-1]
        lab = np.asarray(lab, dtype=np.float32)
        return lab[..., 0], lab[..., 1:]

    def batch(self, items: Sequence[int], epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Stacked samples: ``L`` (B, H, W), ``ab`` (B, H, W, 2)."""
        pairs = [self.sample(int(i), epoch) for i in items]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def order(self, epoch: int, shuffle: bool) -> np.ndarray:
        """Sample order of an epoch: a seeded permutation when shuffling."""
        if not shuffle:
            return np.arange(len(self))
        return np.random.default_rng((self.seed, epoch, 7919)).permutation(len(self))

    def iter_batches(
        self, batch_size: int, epoch: int = 0, shuffle: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``(L, ab, labels)`` batches over one epoch."""
        order = self.order(epoch, shuffle)
        for start in range(0, len(order), batch_size):
            items = order[start : start + batch_size]
            L, ab = self.batch(items, epoch)
            yield L, ab, self.labels[items]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every sample of epoch 0 stacked: ``L`` (N, H, W), ``ab`` (N, H, W, 2)."""
        return self.batch(range(len(self)))

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, math.ceil(len(self) / batch_size))

    def torch_loader(self, batch_size: int, shuffle: bool = True, **kwargs):
        """A ``torch.utils.data.DataLoader`` over this set (see :mod:`harness.data.adapters`)."""
        from harness.data.adapters import torch_loader

        return torch_loader(self, batch_size, shuffle=shuffle, **kwargs)

    def stream(self, batch_size: int, *, rank: int = 0, world: int = 1) -> SampleStream:
        """The training batches of this set as a :class:`SampleStream`."""
        return SampleStream(self, batch_size, rank=rank, world=world)

    def keras_dataset(self, batch_size: int, shuffle: bool = True, **kwargs):
        """A ``keras.utils.PyDataset`` over this set (see :mod:`harness.data.adapters`)."""
        from harness.data.adapters import keras_dataset

        return keras_dataset(self, batch_size, shuffle=shuffle, **kwargs)


class SampleStream:
    """A set's training samples as one endless seeded sequence, cut into full batches by step.

    Global sample ``k`` is position ``k mod N`` of data epoch ``k div N``'s shuffled order
    (:meth:`LabSet.order`), cropped as :meth:`LabSet.sample` crops it for that epoch. Step
    ``s`` (0-based) trains on samples ``[s * B * W, (s + 1) * B * W)`` for batch size ``B`` and
    ``W`` ranks, rank ``r`` taking the ``r``-th ``B`` of them. So every batch holds ``B``
    samples whatever ``N`` (a set smaller than a batch spans several epochs, each copy of an
    image with its own crop), the stream is a pure function of (seed, step), and a resumed
    run's step ``s`` is the batch an uninterrupted run trains on at ``s``.
    """

    def __init__(self, labset: LabSet, batch_size: int, *, rank: int = 0, world: int = 1) -> None:
        if not len(labset):
            raise ValueError("the training set is empty")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world}")
        self.labset, self.batch_size, self.rank, self.world = labset, batch_size, rank, world
        self._orders: dict[int, np.ndarray] = {}

    @property
    def samples_per_step(self) -> int:
        """Samples all ranks train on together in one step."""
        return self.batch_size * self.world

    def steps_for_epochs(self, epochs: int) -> int:
        """Steps that train on ``epochs`` passes over the set (the last step may run over)."""
        return math.ceil(epochs * len(self.labset) / self.samples_per_step)

    def epoch_at(self, step: int) -> int:
        """The data epoch of the first sample of step ``step`` (0-based)."""
        return step * self.samples_per_step // len(self.labset)

    def locate(self, k: int) -> tuple[int, int]:
        """``(epoch, image index)`` of global sample ``k``."""
        epoch, position = divmod(k, len(self.labset))
        order = self._orders.get(epoch)
        if order is None:
            order = self.labset.order(epoch, shuffle=True)
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = order
        return epoch, int(order[position])

    def items(self, step: int) -> list[tuple[int, int]]:
        """``(epoch, image index)`` of each sample of this rank's batch at ``step``."""
        first = step * self.samples_per_step + self.rank * self.batch_size
        return [self.locate(k) for k in range(first, first + self.batch_size)]

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This rank's batch at ``step``: ``L`` (B, H, W), ``ab`` (B, H, W, 2), labels (B,)."""
        items = self.items(step)
        pairs = [self.labset.sample(i, epoch) for epoch, i in items]
        labels = self.labset.labels[[i for _, i in items]]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]), labels


def split_groups(groups: Sequence[str], fraction: float, seed: int,
                 labels: Sequence[str | None] | None = None) -> set[str]:
    """Pick the held-out groups: a seeded shuffle of the distinct groups, ``fraction`` of them.

    With ``labels`` (one per item, like ``groups``) the draw is stratified: each class holds out
    ``fraction`` of its groups (a group's class is its first item's), so every class with two
    or more groups is on both sides. At least one group is held out and at least one kept
    whenever there are two or more.
    """
    distinct = sorted(set(groups))
    if len(distinct) < 2:
        return set()
    rng = np.random.default_rng(seed)
    classes: dict[str | None, list[str]] = {}
    first = dict(zip(reversed(groups), reversed(labels))) if labels is not None else {}
    for group in distinct:
        classes.setdefault(first.get(group), []).append(group)
    held: set[str] = set()
    for label in sorted(classes, key=lambda c: (c is not None, c or "")):
        members = classes[label]
        shuffled = [members[i] for i in rng.permutation(len(members))]
        n = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.update(shuffled[:n])
    if not held:  # every class has a single group: hold out one of them
        held.add(distinct[int(rng.integers(len(distinct)))])
    return held
