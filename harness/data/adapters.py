"""Framework adapters over a :class:`~harness.data.dataset.LabSet`: torch and Keras."""

from __future__ import annotations

import numpy as np

from harness.data.dataset import LabSet, SampleStream


def _torch_sample(labset: LabSet, i: int, epoch: int) -> dict:
    """Sample ``i`` of ``epoch`` as tensors: ``L`` (1, H, W), ``ab`` (2, H, W), ``label``."""
    import torch

    L, ab = labset.sample(i, epoch)
    return {"L": torch.from_numpy(np.ascontiguousarray(L[None])),
            "ab": torch.from_numpy(np.ascontiguousarray(ab.transpose(2, 0, 1))),
            "label": int(labset.labels[i])}


def torch_loader(labset: LabSet, batch_size: int, shuffle: bool = True, *, epoch: int = 0,
                 sampler=None, num_workers: int = 0, pin_memory: bool = False,
                 drop_last: bool = False):
    """A DataLoader yielding dicts ``L`` (B, 1, H, W), ``ab`` (B, 2, H, W), ``label`` (B,).

    Call ``loader.dataset.set_epoch(e)`` (and the sampler's, under DDP) before each epoch so
    crops and order change between epochs yet stay reproducible.
    """
    import torch

    class _TorchLabDataset(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.epoch = epoch

        def set_epoch(self, value: int) -> None:
            self.epoch = value

        def __len__(self) -> int:
            return len(labset)

        def __getitem__(self, i: int):
            return _torch_sample(labset, i, self.epoch)

    generator = torch.Generator().manual_seed(labset.seed)
    return torch.utils.data.DataLoader(
        _TorchLabDataset(), batch_size=batch_size, shuffle=shuffle and sampler is None,
        sampler=sampler, num_workers=num_workers, pin_memory=pin_memory, drop_last=drop_last,
        generator=generator, persistent_workers=num_workers > 0,
    )


def torch_stream_loader(stream: SampleStream, start: int, stop: int | None, *,
                        num_workers: int = 0, pin_memory: bool = False):
    """A DataLoader over steps ``start`` to ``stop`` (None: endless) of ``stream``: this rank's
    full batches in step order, dicts as :func:`torch_loader` yields them."""
    import itertools

    import torch

    labset = stream.labset

    class _StreamDataset(torch.utils.data.Dataset):
        def __getitem__(self, item: tuple[int, int]):
            epoch, i = item
            return _torch_sample(labset, i, epoch)

    class _Steps:
        def __iter__(self):
            steps = itertools.count(start) if stop is None else range(start, stop)
            return (stream.items(s) for s in steps)

        def __len__(self) -> int:
            if stop is None:
                raise TypeError("an endless stream has no length")
            return max(0, stop - start)

    # Its own generator: a loader draws its workers' base seed when iterated, which would
    # otherwise advance the global RNG differently in a resumed run.
    return torch.utils.data.DataLoader(
        _StreamDataset(), batch_sampler=_Steps(), num_workers=num_workers,
        pin_memory=pin_memory, generator=torch.Generator().manual_seed(labset.seed))


def keras_dataset(labset: LabSet, batch_size: int, shuffle: bool = True, *,
                  with_labels: bool = False, epoch: int = 0, **kwargs):
    """A PyDataset yielding ``(L (B, H, W, 1), ab (B, H, W, 2))`` batches.

    With ``with_labels`` the targets are ``{"ab": ab, "label": labels}`` for multi-output models.
    ``on_epoch_end`` advances the epoch, so crops and order change yet stay reproducible.
    """
    from harness.keras_env import configure

    configure()  # torch (and Triton) before TensorFlow, or torch's first optimizer step crashes
    import keras

    class _KerasLabDataset(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(**kwargs)
            self.epoch = epoch
            self._order = labset.order(epoch, shuffle)

        def __len__(self) -> int:
            return labset.steps_per_epoch(batch_size)

        def __getitem__(self, idx: int):
            items = self._order[idx * batch_size : (idx + 1) * batch_size]
            L, ab = labset.batch(items, self.epoch)
            x = L[..., None]
            if with_labels:
                return x, {"ab": ab, "label": labset.labels[items]}
            return x, ab

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self._order = labset.order(self.epoch, shuffle)

    return _KerasLabDataset()
