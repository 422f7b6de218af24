"""The shared loader's entry point: list, decode, cache, exclude, split; write the data report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.config import DataConfig
from harness.data.cache import build_cache
from harness.data.dataset import LabSet, split_groups
from harness.data.sources import ImageSource
from harness.errors import ConfigError, DataError, PluginError
from harness.paths import cache_root
from harness.plugins import Registry
from harness.progress import Progress


@dataclass
class Splits:
    """Train (random crops at ``train_size``), validation and test (whole images at the cache size)
    sets, ``train_full`` (the training images whole), and the data report."""

    train: LabSet
    val: LabSet | None
    test: LabSet
    train_full: LabSet
    report: dict[str, Any] = field(default_factory=dict)
    #: The images used (decoded, not excluded as grey), in cache order.
    sources: list[ImageSource] = field(default_factory=list)


def check_source(cfg: DataConfig, registry: Registry) -> None:
    """Fail now, as a ConfigError naming the key, if ``data.source`` is not registered or
    ``data.path`` does not exist: both would otherwise fail only after the run started."""
    try:
        registry.get("dataset", cfg.source)
    except PluginError as exc:
        raise ConfigError(f"data.source: {exc}") from None
    if cfg.path is not None and not cfg.path.expanduser().exists():
        raise ConfigError(f"data.path: {cfg.path} does not exist")


def list_sources(cfg: DataConfig, registry: Registry, seed: int) -> list[ImageSource]:
    """The images the configured source offers, capped at ``max_images`` by a seeded draw."""
    factory = registry.get("dataset", cfg.source).load()
    options = {**cfg.options, "path": cfg.path}
    sources = list(factory(options))
    if not sources:
        raise DataError(f"data.source={cfg.source}: the source offered no images"
                        + (f" under {cfg.path}" if cfg.path else ""))
    if cfg.max_images and len(sources) > cfg.max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(sources), cfg.max_images,
                                                          replace=False))
        sources = [sources[i] for i in keep]
    return sources


def load_splits(cfg: DataConfig, registry: Registry, seed: int) -> Splits:
    """Everything the models and the scorer read, from one cache, split by source image."""
    sources = list_sources(cfg, registry, seed)
    root = cfg.cache_dir or cache_root()
    with Progress(len(sources), "decoding images", unit="img") as bar:
        cache = build_cache(sources, cfg.cache_size, root, progress=bar.update,
                            workers=cfg.workers, max_pixels=cfg.max_pixels)
    grey = [] if cfg.include_grey else [
        s.name for s, c in zip(cache.sources, cache.max_chroma) if c <= cfg.grey_chroma]
    usable = [i for i, s in enumerate(cache.sources) if s.name not in set(grey)]
    report: dict[str, Any] = {
        "source": cfg.source, "path": str(cfg.path) if cfg.path else None,
        "found": len(sources), "decoded": len(cache.sources), "used": len(usable),
        "skipped": cache.skipped, "grey_excluded": grey, "grey_chroma": cfg.grey_chroma,
        "cache": {"directory": str(cache.directory), "reused": cache.reused,
                  "rebuilt": cache.rebuilt, "size": cfg.cache_size},
    }
    if len(usable) < 2:
        where = f" under {cfg.path}" if cfg.path else ""
        raise DataError(f"data.source={cfg.source}{where}: {len(usable)} usable colour image(s) "
                        f"of {len(sources)} found; need at least 2 (see skipped/grey in the "
                        f"data report)")
    srcs = [cache.sources[i] for i in usable]
    class_names = sorted({s.label for s in srcs if s.label is not None})
    labels = np.array([class_names.index(s.label) if s.label is not None else -1 for s in srcs])
    groups = [s.group or s.name for s in srcs]
    fixed = cfg.split == "fixed" and any(s.split for s in srcs)
    if fixed:
        test_mask = np.array([s.split == "test" for s in srcs])
        if test_mask.all() or not test_mask.any():
            where = f"data.path {cfg.path}" if cfg.path else f"data.source={cfg.source}"
            raise DataError(f"{where}: its fixed split needs usable images on both sides "
                            f"(train and test: seg_train/ and seg_test/ for a folder); or use "
                            f"--set data.split=random")
    else:
        held = split_groups(groups, cfg.test_fraction, seed, labels=[s.label for s in srcs])
        test_mask = np.array([g in held for g in groups])
    train_idx = np.flatnonzero(~test_mask)
    val_groups = split_groups([groups[i] for i in train_idx], cfg.val_fraction, seed + 1,
                              labels=[srcs[i].label for i in train_idx]) \
        if cfg.val_fraction > 0 else set()
    val_idx = np.array([i for i in train_idx if groups[i] in val_groups], dtype=np.int64)
    train_idx = np.array([i for i in train_idx if groups[i] not in val_groups], dtype=np.int64)
    test_idx = np.flatnonzero(test_mask)

    def subset(idx: np.ndarray, crop: int | None = None, lab: np.ndarray = cache.lab,
               rows: Sequence[int] = usable) -> LabSet:
        return LabSet(lab, np.asarray(rows)[idx], [srcs[i].name for i in idx],
                      labels[idx], class_names, crop=crop, seed=seed)

    report["splits"] = {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)}
    report["split"] = "fixed" if fixed else "random"
    report["test_images"] = [srcs[i].name for i in test_idx]
    report["classes"] = class_names
    val = subset(val_idx) if len(val_idx) else None
    train_lab, train_rows = cache.lab, usable
    if cfg.train_size != cfg.cache_size:
        # Training crops are drawn at the scale the models see at test (L resized to `size`),
        # from the same images cached a second time at `train_size`.
        with Progress(len(sources), "decoding training images", unit="img") as bar:
            small = build_cache(sources, cfg.train_size, root, progress=bar.update,
                                workers=cfg.workers, max_pixels=cfg.max_pixels)
        row = {s.name: i for i, s in enumerate(small.sources)}
        lost = [srcs[i].name for i in train_idx if srcs[i].name not in row]
        if lost:  # readable a moment ago: changed on disk while the run started
            raise DataError(f"{lost[0]}: could not be decoded again at {cfg.train_size} px "
                            f"({len(lost)} file(s) changed during loading); run again")
        train_lab, train_rows = small.lab, [row.get(s.name, -1) for s in srcs]
        report["cache"].update(train_size=cfg.train_size, train_directory=str(small.directory),
                               train_rebuilt=small.rebuilt)
    return Splits(train=subset(train_idx, cfg.size, train_lab, train_rows), val=val,
                  test=subset(test_idx), train_full=subset(train_idx), report=report,
                  sources=srcs)
