"""``harness colorize``: a run's trained model on a folder of the user's own photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.color import rgb_to_lab
from harness.colorize import find_inputs
from harness.config import load_config
from harness.errors import ExitCode
from harness.plugins import get_plugin_manager
from harness.run import execute

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """configs/smoke.yaml, finished: gray and mean-prior trained at 32 px."""
    cfg = load_config(ROOT / "configs" / "smoke.yaml",
                      [f"output_dir={tmp_path_factory.mktemp('colorize-runs')}"])
    run_dir, code = execute(cfg, get_plugin_manager(cfg.plugins))
    assert code == ExitCode.OK
    return run_dir


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour photo-like (h, w, 3) uint8 image with mid-range brightness."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.3 * np.sin(6 * x + c + seed) * np.cos(4 * y - c) for c in range(3)],
                    axis=-1)
    return np.clip(255 * (base + 0.02 * rng.standard_normal(base.shape)), 0, 255).astype(np.uint8)


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "holiday" / "day2").mkdir(parents=True)
    Image.fromarray(_photo(90, 130, 1)).save(root / "beach.png")  # colour
    Image.fromarray(_photo(75, 61, 2)).save(root / "holiday" / "sunset.jpg", quality=95)
    Image.fromarray(_photo(64, 100, 3)).convert("L").save(root / "holiday" / "old.png")  # grey
    Image.fromarray(_photo(40, 52, 4)).convert("L").save(root / "holiday" / "day2" / "scan.tif")
    (root / "holiday" / "broken.jpg").write_bytes(b"\xff\xd8\xff this is no jpeg")
    (root / "notes.txt").write_text("not an image, ignored")
    return root


def _lab(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return rgb_to_lab(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)


def test_colorize_a_folder_keeps_names_sizes_and_luminance(smoke_run, photos, tmp_path):
    out = tmp_path / "coloured"
    result = CliRunner().invoke(main, ["colorize", "--run", str(smoke_run), "--model",
                                       "mean-prior", str(photos), "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["beach.png", "holiday/day2/scan.png", "holiday/old.png",
                       "holiday/sunset.png"]
    assert "broken.jpg" in result.output and "not a recognised image format" in result.output
    assert "colorized 4 of 5 image(s) with mean-prior" in result.output
    for source, target in [("beach.png", "beach.png"), ("holiday/sunset.jpg", "holiday/sunset.png"),
                           ("holiday/old.png", "holiday/old.png"),
                           ("holiday/day2/scan.tif", "holiday/day2/scan.png")]:
        with Image.open(photos / source) as a, Image.open(out / target) as b:
            assert a.size == b.size and b.mode == "RGB", source  # full resolution
        before, after = _lab(photos / source), _lab(out / target)
        dl = np.abs(before[..., 0] - after[..., 0])
        assert dl.mean() < 0.5 and np.percentile(dl, 99) < 2.0, source  # same luminance
        chroma = np.hypot(after[..., 1], after[..., 2])
        assert chroma.mean() > 3.0, source  # and now in colour


def test_named_files_land_at_the_top_and_collisions_keep_the_extension(tmp_path, photos):
    (photos / "beach.jpg").write_bytes((photos / "beach.png").read_bytes())
    jobs = find_inputs([photos / "beach.png", photos / "beach.jpg", photos / "beach.png",
                        tmp_path / "missing.png"])
    assert [str(j.target) for j in jobs] == ["beach.png", "beach-jpg.png", "missing.png"]
    assert jobs[-1].error == "no such file or folder"


def test_nothing_readable_exits_nonzero(smoke_run, photos, tmp_path):
    result = CliRunner().invoke(main, ["colorize", "--run", str(smoke_run), "--model", "gray",
                                       str(photos / "holiday" / "broken.jpg"),
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == ExitCode.MODEL_FAILED
    assert "colorized 0 of 1" in result.output


def test_unknown_model_names_the_available_ones(smoke_run, photos, tmp_path):
    result = CliRunner().invoke(main, ["colorize", "--run", str(smoke_run), "--model", "zhang",
                                       str(photos), "--out", str(tmp_path / "o")])
    assert result.exit_code == ExitCode.USAGE
    assert "models there: gray, mean-prior" in result.output and "Traceback" not in result.output
