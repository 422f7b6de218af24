"""``harness colorize``: a run's trained model on a folder of the user's own photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, JpegImagePlugin

from harness.cli import main
from harness.color import lab_to_rgb, rgb_to_lab, to_uint8
from harness.colorize import colorize_files, find_inputs
from harness.colorizer import Colorizer
from harness.config import load_config
from harness.data.decode import decode_rgb
from harness.errors import ExitCode
from harness.plugins import load_registry
from harness.resize import resize_ab, resize_l
from harness.run import execute

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """configs/smoke.yaml, finished: gray and mean-prior trained at 32 px."""
    cfg = load_config(ROOT / "configs" / "smoke.yaml",
                      [f"output_dir={tmp_path_factory.mktemp('colorize-runs')}"])
    run_dir, code = execute(cfg, load_registry(cfg.plugins))
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


class _Swirl(Colorizer):
    """ab that vary with L and position, so the upsampling and recombination are exercised."""

    name = "swirl"
    stateless = True

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def fit(self, train, val, budget, ctx) -> None:
        pass

    def predict(self, L: np.ndarray) -> np.ndarray:
        self.batches.append(len(L))
        x = np.linspace(-1, 1, L.shape[-1], dtype=np.float32)
        return np.stack([(L - 50) * 0.8 + 30 * x, 60 * np.sin(L / 9) - 20 * x[:, None]], -1)


def _reference(colorizer: Colorizer, path: Path, size: int) -> np.ndarray:
    """The protocol in full: the full Lab of the photo, its L resized, ab upsampled, lab_to_rgb."""
    L = rgb_to_lab(decode_rgb(path))[..., 0]
    ab = resize_ab(colorizer.predict(resize_l(L[None], size)), L.shape)[0]
    return to_uint8(lab_to_rgb(np.concatenate([L[..., None], ab], axis=-1)))


def test_output_is_the_full_lab_recombination_to_rounding(photos, tmp_path):
    jobs = find_inputs([photos])
    colorizer = _Swirl()
    colorize_files(colorizer, 16, jobs, tmp_path / "out", workers=2, group=2)
    assert [j.error for j in jobs if j.error] == ["not a recognised image format"]
    assert colorizer.batches == [1, 2, 1]  # groups of two; the broken one is in the first
    for job in jobs:
        if not job.error:
            with Image.open(tmp_path / "out" / job.target) as img:
                out = np.asarray(img.convert("RGB"), dtype=int)
            diff = np.abs(out - _reference(colorizer, job.source, 16))
            assert diff.max() <= 1, job.source  # to rounding, in 8-bit sRGB


def test_jpeg_format_writes_444_jpegs_in_the_same_structure(smoke_run, photos, tmp_path):
    out = tmp_path / "jpegs"
    result = CliRunner().invoke(main, ["colorize", "--run", str(smoke_run), "--model",
                                       "mean-prior", str(photos), "--out", str(out),
                                       "--format", "jpeg"])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["beach.jpg", "holiday/day2/scan.jpg", "holiday/old.jpg",
                       "holiday/sunset.jpg"]
    for name in written:
        with Image.open(out / name) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            assert JpegImagePlugin.get_sampling(img) == 0, name  # 4:4:4, no chroma subsampling


def test_an_out_that_would_overwrite_an_input_is_refused(smoke_run, photos):
    source = photos / "holiday" / "sunset.jpg"
    before = source.read_bytes()
    result = CliRunner().invoke(main, ["colorize", "--run", str(smoke_run), "--model", "gray",
                                       str(source), "--out", str(source.parent),
                                       "--format", "jpeg"])
    assert result.exit_code == ExitCode.USAGE
    assert "would overwrite an input" in result.output and "Traceback" not in result.output
    assert source.read_bytes() == before
