"""The protocol fingerprint: what must match for two runs to be averaged."""

from __future__ import annotations

from pathlib import Path

from harness import protocol
from harness.config import RunConfig
from harness.data.sources import ImageSource
from harness.metrics.basic import METRICS


def _record(split: str, test: list[str], **data) -> dict:
    cfg = RunConfig.model_validate({"models": [{"plugin": "gray"}],
                                    "data": {"source": "photos", "split": split, **data}})
    sources = [ImageSource(Path(f"/x/{n}.jpg"), n, sha256=f"{i:064x}")
               for i, n in enumerate("abcdef")]
    versions = {m.name: "colorization-harness 0.1.0" for m in METRICS}
    return protocol.describe(cfg, sources, test, split, METRICS, versions)


def test_fixed_split_fingerprint_depends_on_the_test_set():
    assert _record("fixed", ["a", "b"])["id"] == _record("fixed", ["b", "a"])["id"]
    assert _record("fixed", ["a", "b"])["id"] != _record("fixed", ["a", "c"])["id"]
    assert protocol.differences(_record("fixed", ["a"]), _record("fixed", ["c"])) == ["test_set"]


def test_random_splits_of_one_collection_compare_but_sizes_do_not():
    assert _record("random", ["a", "b"])["id"] == _record("random", ["c", "d"])["id"]
    a, b = _record("random", ["a"]), _record("random", ["a"], eval_size=128)
    assert a["id"] != b["id"] and protocol.differences(a, b) == ["eval_size"]


def test_file_contents_enter_the_fingerprint(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"one")
    first = protocol.digest_images([ImageSource(tmp_path / "a.jpg", "a")])
    (tmp_path / "a.jpg").write_bytes(b"two")
    assert protocol.digest_images([ImageSource(tmp_path / "a.jpg", "a")]) != first


def test_summary_names_the_id_and_data():
    line = protocol.summary(_record("fixed", ["a"]))
    assert line.startswith("protocol ") and "photos (fixed split; 6 images, 1 test" in line
    assert "not recorded" in protocol.summary({})
