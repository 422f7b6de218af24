"""The memory-mapped Lab cache: reuse, invalidation, killed builds, Lab values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2lab

import harness.data.cache as cache_mod
from harness.data.cache import POLICY, build_cache
from harness.data.decode import load_rgb
from harness.data.loader import load_splits
from harness.data.sources import folder_source
from harness.errors import DataError


def _counting_load_rgb(monkeypatch, fail_on: int | None = None, exc: type = KeyboardInterrupt):
    """Patch the cache's load_rgb with a thread-safe counter; optionally raise on call n."""
    calls = []
    lock = threading.Lock()

    def fake(path, size, **kwargs):
        with lock:
            calls.append(Path(path).name)
            n = len(calls)
        if fail_on is not None and n == fail_on:
            raise exc(f"interrupted on file {n}")
        return load_rgb(path, size, **kwargs)

    monkeypatch.setattr(cache_mod, "load_rgb", fake)
    return calls


def _forbid_decoding(monkeypatch):
    def fail(path, size, **kwargs):
        raise AssertionError(f"decoded {path} although the cache should be reused")

    monkeypatch.setattr(cache_mod, "load_rgb", fail)


def test_second_load_reuses_the_cache_and_decodes_nothing(messy_folder, registry, make_cfg,
                                                          monkeypatch):
    root, expected = messy_folder
    cfg = make_cfg(root)
    first = load_splits(cfg, registry, seed=0)
    assert first.report["cache"]["reused"] is False

    _forbid_decoding(monkeypatch)
    second = load_splits(cfg, registry, seed=0)
    assert second.report["cache"]["reused"] is True
    assert second.report["cache"]["directory"] == first.report["cache"]["directory"]
    # everything the first run reported survives the reuse: skipped reasons, grey, split
    for key in ("found", "decoded", "used", "skipped", "grey_excluded", "splits", "test_images"):
        assert second.report[key] == first.report[key], key
    np.testing.assert_array_equal(second.test.arrays()[1], first.test.arrays()[1])
    assert list(cfg.cache_dir.iterdir()) == [Path(first.report["cache"]["directory"])]


def test_cache_is_memory_mapped_float32_lab(photo_folder, tmp_path):
    sources = folder_source({"path": photo_folder(4)})
    cache = build_cache(sources, 16, tmp_path / "cache", workers=2)
    assert isinstance(cache.lab, np.memmap)
    assert cache.lab.shape == (4, 16, 16, 3) and cache.lab.dtype == np.float32
    assert not cache.lab.flags.writeable
    index = json.loads((cache.directory / "index.json").read_text())
    assert index["policy"] == POLICY and index["size"] == 16
    assert index["names"] == [s.name for s in sources]
    assert cache.directory.name.startswith("lab-16-")
    assert len(cache.max_chroma) == 4 and (cache.max_chroma > 20).all()


def test_touching_a_file_invalidates_the_cache(photo_folder, tmp_path, monkeypatch):
    folder = photo_folder(4)
    root = tmp_path / "cache"
    first = build_cache(folder_source({"path": folder}), 16, root)
    st = (folder / "img01.png").stat()
    os.utime(folder / "img01.png", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    calls = _counting_load_rgb(monkeypatch)
    second = build_cache(folder_source({"path": folder}), 16, root)
    assert second.reused is False and second.directory != first.directory
    assert len(calls) == 4
    np.testing.assert_array_equal(second.lab, first.lab)  # same bytes, same pixels


def test_changed_file_contents_are_decoded_again(photo_folder, tmp_path, registry, make_cfg,
                                                 helpers, monkeypatch):
    folder = photo_folder(4)
    cfg = make_cfg(folder, eval_size=16, test_fraction=0.5)
    first = load_splits(cfg, registry, seed=0)
    target = first.test.names[0]
    before = first.test.sample(0)[1].copy()

    path = folder / target
    Image.fromarray(helpers.colourful(seed=999)).save(path)  # different bytes, new mtime
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    calls = _counting_load_rgb(monkeypatch)
    second = load_splits(cfg, registry, seed=0)
    assert second.report["cache"]["reused"] is False
    assert len(calls) == 4
    after = second.test.sample(second.test.names.index(target))[1]
    assert np.abs(after - before).max() > 5  # the new picture, not the stale one


def test_new_file_or_other_size_gets_its_own_cache(photo_folder, tmp_path, helpers):
    folder = photo_folder(3)
    root = tmp_path / "cache"
    a = build_cache(folder_source({"path": folder}), 16, root)
    b = build_cache(folder_source({"path": folder}), 24, root)
    assert b.reused is False and b.directory != a.directory and b.lab.shape[1] == 24
    Image.fromarray(helpers.colourful(seed=5)).save(folder / "extra.png")
    c = build_cache(folder_source({"path": folder}), 16, root)
    assert c.reused is False and c.directory != a.directory and len(c.lab) == 4
    again = build_cache(folder_source({"path": folder}), 16, root)
    assert again.reused is True and again.directory == c.directory


def test_interrupted_build_leaves_nothing_behind(photo_folder, tmp_path, registry, make_cfg,
                                                 monkeypatch):
    folder = photo_folder(6)
    cfg = make_cfg(folder)
    calls = _counting_load_rgb(monkeypatch, fail_on=3)
    with pytest.raises(KeyboardInterrupt):
        load_splits(cfg, registry, seed=0)
    assert len(calls) >= 3
    assert list(cfg.cache_dir.iterdir()) == []  # neither a cache nor a temporary directory

    calls = _counting_load_rgb(monkeypatch)
    splits = load_splits(cfg, registry, seed=0)
    assert splits.report["cache"]["reused"] is False
    assert len(calls) == 6 and splits.report["decoded"] == 6


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
import harness.data.cache as cache_mod
from harness.data.sources import folder_source

real, calls = cache_mod.load_rgb, []
def fake(path, size, **kwargs):
    calls.append(path)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, size, **kwargs)
cache_mod.load_rgb = fake
cache_mod.build_cache(folder_source({"path": sys.argv[1]}), 16, Path(sys.argv[2]), workers=1)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_process_leaves_no_cache_a_later_run_would_read(photo_folder, tmp_path,
                                                               monkeypatch):
    folder = photo_folder(5)
    root = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(folder), str(root)],
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    # a SIGKILL cannot clean up, but what it leaves is a hidden temporary, never a cache
    assert [p for p in root.iterdir() if not p.name.startswith(".")] == []

    calls = _counting_load_rgb(monkeypatch)
    cache = build_cache(folder_source({"path": folder}), 16, root)
    assert cache.reused is False and len(calls) == 5 and cache.lab.shape[0] == 5
    # the next build removed the dead build's temporary folder
    assert [p.name for p in root.iterdir()] == [cache.directory.name]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_dead_builds_temporary_folders_are_removed(photo_folder, tmp_path):
    """A concurrent live build's folder stays: liveness by process id on this host, age else."""
    root = tmp_path / "cache"
    root.mkdir()
    host = cache_mod._host()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folders = {
            "dead": f".lab-16-tmp-{_dead_pid()}-{host}-abcd1234",
            "live": f".lab-16-tmp-{live.pid}-{host}-abcd1234",
            "mine": f".lab-16-tmp-{os.getpid()}-{host}-abcd1234",
            "other_host_recent": f".lab-16-tmp-{_dead_pid()}-elsewhere{host}-abcd1234",
            "other_host_old": f".lab-16-tmp-{_dead_pid()}-elsewhere{host}-efgh5678",
            "old_style_recent": ".lab-16-k2j4h5g6",
            "old_style_old": ".lab-16-a1b2c3d4",
            "unrelated": ".lab-notes",
        }
        for name in folders.values():
            (root / name).mkdir()
        week = time.time() - cache_mod.STALE_AFTER - 60
        for key in ("other_host_old", "old_style_old"):
            os.utime(root / folders[key], (week, week))
        build_cache(folder_source({"path": photo_folder(2)}), 16, root)
    finally:
        live.kill()
        live.wait()
    left = {p.name for p in root.iterdir() if p.name.startswith(".")}
    assert left == {folders[k] for k in ("live", "mine", "other_host_recent",
                                         "old_style_recent", "unrelated")}


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "missing":
        path.unlink()
    elif how == "other shape":  # well-formed, but not what the index lists
        if path.suffix == ".npy":
            np.save(path, np.zeros((1, 16, 16, 3), np.float32))
        else:
            index = json.loads(data)
            path.write_text(json.dumps({**index, "max_chroma": index["max_chroma"][1:]}))


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "missing", "other shape"])
@pytest.mark.parametrize("name", ["lab.npy", "index.json"])
def test_corrupt_entry_is_named_and_rebuilt(photo_folder, tmp_path, registry, make_cfg,
                                            monkeypatch, caplog, name, how):
    cfg = make_cfg(photo_folder(4))
    first = load_splits(cfg, registry, seed=0)
    directory = Path(first.report["cache"]["directory"])
    expected_ab, expected_skipped = first.test.arrays()[1].copy(), first.report["skipped"]
    del first  # its memory map must not see the file truncated under it (SIGBUS)
    _corrupt(directory / name, how)

    calls = _counting_load_rgb(monkeypatch)
    with caplog.at_level("WARNING", logger="harness.data.cache"):
        second = load_splits(cfg, registry, seed=0)
    assert len(calls) == 4  # decoded again, not read from the corrupt files
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"{directory / name}: ") and message.endswith(": rebuilding")
    assert second.report["cache"]["rebuilt"] == message.removesuffix(": rebuilding")
    assert second.report["cache"]["reused"] is False
    np.testing.assert_array_equal(second.test.arrays()[1], expected_ab)
    assert second.report["skipped"] == expected_skipped
    assert load_splits(cfg, registry, seed=0).report["cache"]["reused"] is True


def test_pixel_limit_skips_from_the_header_and_keys_the_cache(photo_folder, tmp_path, registry,
                                                              make_cfg, helpers):
    folder = photo_folder(3)
    helpers.write_flat_png(folder / "wide.png", 120, 60, (200, 30, 40))  # 7200 pixels
    roomy = load_splits(make_cfg(folder, max_pixels=7200), registry, seed=0)
    assert roomy.report["used"] == 4 and roomy.report["skipped"] == []
    tight = load_splits(make_cfg(folder, max_pixels=7199), registry, seed=0)
    assert tight.report["cache"]["directory"] != roomy.report["cache"]["directory"]
    assert tight.report["skipped"] == [{
        "file": str(folder / "wide.png"), "name": "wide.png",
        "reason": "too large: 120x60 = 7,200 pixels, over the limit of 7,199 "
                  "(data.max_pixels); not decoded"}]


def test_unwritable_cache_folder_is_a_data_error_naming_it(photo_folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(DataError, match=rf"{blocker}: cannot write the image cache there"):
        build_cache(folder_source({"path": photo_folder(2)}), 16, blocker)


def test_concurrent_builder_wins_the_rename(photo_folder, tmp_path, monkeypatch):
    """Another process finishing the same cache first: its copy is used, no temp left."""
    folder = photo_folder(4)
    root = tmp_path / "cache"
    sources = folder_source({"path": folder})
    state = {"nested": False}

    def fake(path, size, **kwargs):
        if not state["nested"]:
            state["nested"] = True
            monkeypatch.setattr(cache_mod, "load_rgb", load_rgb)
            build_cache(sources, 16, root, workers=1)  # the "other process"
        return load_rgb(path, size, **kwargs)

    monkeypatch.setattr(cache_mod, "load_rgb", fake)
    cache = build_cache(sources, 16, root, workers=1)
    assert cache.lab.shape == (4, 16, 16, 3)
    assert [p.name for p in root.iterdir()] == [cache.directory.name]
    assert build_cache(sources, 16, root).reused is True


def test_square_image_lab_matches_skimage(tmp_path, helpers):
    """At the cache size a square PNG is not resampled: Lab must equal skimage's rgb2lab."""
    folder = tmp_path / "sq"
    folder.mkdir()
    arrays = [helpers.colourful(24, 24, seed=s) for s in range(3)]
    for i, arr in enumerate(arrays):
        Image.fromarray(arr).save(folder / f"{i}.png")
    cache = build_cache(folder_source({"path": folder}), 24, tmp_path / "cache")
    for i, arr in enumerate(arrays):
        np.testing.assert_allclose(cache.lab[i], rgb2lab(arr / 255.0), atol=1e-3)
        expected = np.hypot(*rgb2lab(arr / 255.0)[..., 1:].transpose(2, 0, 1)).max()
        assert cache.max_chroma[i] == pytest.approx(expected, abs=1e-3)


def test_resized_image_lab_matches_skimage(photo_folder, tmp_path):
    folder = photo_folder(3, ext="jpg")
    sources = folder_source({"path": folder})
    cache = build_cache(sources, 32, tmp_path / "cache")
    for i, src in enumerate(sources):
        ref = rgb2lab(load_rgb(src.path, 32).astype(np.float64))
        np.testing.assert_allclose(cache.lab[i], ref, atol=1e-3)
