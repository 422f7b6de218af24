"""The protocol fingerprint: what a run's numbers depend on besides the models and the seed.

Recorded in ``environment.json`` under ``protocol`` and shown at the top of every report.
Two runs whose fingerprints differ measured different things (other images, sizes, metric
versions or bootstrap settings), and ``harness report`` never averages them together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from harness.config import RunConfig
from harness.data.sources import ImageSource

#: Fields whose values legitimately change with the seed, by split mode: under a random split
#: the test set is drawn from the seed, so only the whole collection must match.
SEED_DEPENDENT = {"random": ("test_set",), "fixed": ()}


def digest_images(sources: Sequence[ImageSource], files: dict[str, str] | None = None) -> str:
    """One sha256 over the (name, file sha256) pairs of ``sources``, in name order; ``files``
    maps names to file digests already known (else each file's is read)."""
    files = files or {}
    h = hashlib.sha256()
    for src in sorted(sources, key=lambda s: s.name):
        h.update(f"{src.name}\0{files.get(src.name) or src.digest()}\n".encode())
    return h.hexdigest()


def describe(cfg: RunConfig, sources: Sequence[ImageSource], test_names: Sequence[str],
             split_mode: str, metrics: Sequence[Any], versions: dict[str, str]) -> dict[str, Any]:
    """The fingerprint of a run: data, sizes, metrics with versions, bootstrap; and its ``id``.

    ``sources`` are the images used (after exclusions), ``test_names`` the held-out ones;
    ``versions`` maps each metric name to its providing distribution and version.
    """
    test = set(test_names)
    files = {s.name: s.digest() for s in sources}  # each file read once
    data = cfg.data
    record: dict[str, Any] = {
        "source": data.source,
        "path": str(data.path) if data.path else None,
        "split": split_mode,
        "collection": digest_images(sources, files),
        "test_set": digest_images([s for s in sources if s.name in test], files),
        "n_images": len(sources),
        "n_test": len(test),
        "size": data.size,
        "eval_size": data.cache_size,
        "train_scale": data.train_scale,
        "grey_chroma": None if data.include_grey else data.grey_chroma,
        "test_fraction": data.test_fraction if split_mode == "random" else None,
        "metrics": {m.name: versions.get(m.name, "?") for m in metrics},
        "bootstrap": {"resamples": cfg.report.bootstrap, "confidence": 0.95,
                      "method": "BCa (means), percentile (dataset-level)",
                      "alpha": cfg.report.alpha},
    }
    record["id"] = fingerprint_id(record)
    return record


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of a fingerprint that must agree for two runs to be aggregated."""
    skip = {"id", "path", *SEED_DEPENDENT.get(record.get("split", ""), ())}
    return {k: v for k, v in record.items() if k not in skip}


def fingerprint_id(record: dict[str, Any]) -> str:
    """Short hex id of a fingerprint's comparable fields."""
    text = json.dumps(comparable(record), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the comparable fields in which fingerprints ``a`` and ``b`` differ."""
    ca, cb = comparable(a), comparable(b)
    out = []
    for key in sorted(set(ca) | set(cb)):
        if key == "metrics" and isinstance(ca.get(key), dict) and isinstance(cb.get(key), dict):
            out += [f"metrics.{m}" for m in sorted(set(ca[key]) | set(cb[key]))
                    if ca[key].get(m) != cb[key].get(m)]
        elif ca.get(key) != cb.get(key):
            out.append(key)
    return out


def summary(record: dict[str, Any]) -> str:
    """One line for the top of a report."""
    if not record:
        return "protocol not recorded (run made before fingerprints)"
    versions = sorted(set(record.get("metrics", {}).values()))
    boot = record.get("bootstrap", {})
    return (f"protocol {record.get('id')}: data {record.get('source')} ({record.get('split')} "
            f"split; {record.get('n_images')} images, {record.get('n_test')} test; collection "
            f"{str(record.get('collection'))[:12]}, test set {str(record.get('test_set'))[:12]}),"
            f" size {record.get('size')}, eval size {record.get('eval_size')}, train scale "
            f"{record.get('train_scale')}; {len(record.get('metrics', {}))} metrics "
            f"({', '.join(versions)}); bootstrap {boot.get('resamples')} resamples, "
            f"alpha {boot.get('alpha')}")
