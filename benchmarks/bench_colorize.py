"""Photos per second of ``harness colorize`` against the pipeline it replaced, and its stages.

Five photo-like JPEGs of 1 to 6 megapixels are made from the demo photos bundled with
scikit-image and scikit-learn (upscaled, with a little grain so they compress like camera
photos, saved at quality 90). A ``zhang`` model (width 0.125, 64 px input) is trained for a
few steps on them and saved in a fake finished run, then loaded as ``harness colorize`` loads
it. The arms run interleaved, round after round, each colorizing all photos into its own
folder:

* old: the pipeline before this benchmark existed, one photo at a time: float RGB, the full
  Lab image, the model, ``lab_to_rgb`` of the full Lab image, ``to_uint8``, Pillow's default
  PNG (zlib level 6);
* new png / new jpeg: :func:`harness.colorize.colorize_files` with each ``--format``, and
  new png with a single worker thread (what the threads add).

The old arm keeps torch's default thread count, as the old code did; the new code runs torch
on one thread while its pool works.

Printed: photos per second per arm (min / median / max over rounds, start-up excluded), the new
pipeline's stages timed one after another on one thread (seconds per megapixel and per
photo), output sizes, and the largest difference between old and new PNG pixels.
Run: ``python benchmarks/bench_colorize.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.color import lab_to_rgb, lab_to_srgb8, rgb_to_lab, to_uint8  # noqa: E402
from harness.colorize import (  # noqa: E402
    FORMATS,
    colorize_files,
    find_inputs,
    predict_ab,
    save_rgb8,
)
from harness.colorizer import Budget, FitContext  # noqa: E402
from harness.config import dump_config, load_config  # noqa: E402
from harness.data.dataset import LabSet  # noqa: E402
from harness.data.decode import decode_l, decode_rgb  # noqa: E402
from harness.progress import LossLog  # noqa: E402
from harness.resize import resize_ab, resize_l  # noqa: E402
from harness.run import load_trained  # noqa: E402
from harness_plugins.zhang_model import ZhangColorizer  # noqa: E402

MEGAPIXELS = (1.0, 2.0, 3.5, 5.0, 6.0)
SIZE = 64


def demo_photos() -> list[np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    return [data.astronaut(), data.chelsea(), data.coffee(), *load_sample_images().images]


def write_photos(folder: Path) -> list[Path]:
    """The demo photos upscaled to MEGAPIXELS (aspect kept), grain added, as JPEGs."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (src, mp) in enumerate(zip(demo_photos(), MEGAPIXELS)):
        h, w = src.shape[:2]
        scale = (mp * 1e6 / (h * w)) ** 0.5
        big = Image.fromarray(src).resize((round(w * scale), round(h * scale)),
                                          Image.Resampling.BICUBIC)
        grain = rng.normal(0.0, 2.0, (big.height, big.width, 1))  # luminance grain, 2 levels
        arr = np.clip(np.asarray(big, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
        paths.append(folder / f"photo{i}.jpg")
        Image.fromarray(arr).save(paths[-1], quality=90)
    return paths


def make_run(root: Path, photos: list[Path], steps: int) -> Path:
    """A finished run holding ``zhang`` trained ``steps`` steps on crops of ``photos``."""
    cfg_path = root / "config-src.yaml"
    cfg_path.write_text(f"name: bench\ndata: {{size: {SIZE}}}\nmodels:\n"
                        f"  - plugin: zhang\n    options: {{width: 0.125, batch_size: 16}}\n")
    cfg = load_config(cfg_path)
    run_dir = root / "run"
    model_dir = run_dir / "models" / "zhang"
    model_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    lab = []
    for path in photos:  # 16 crops of 2 * SIZE from each photo shrunk to 4 * SIZE
        with Image.open(path) as img:
            small = np.asarray(img.convert("RGB").resize((4 * SIZE, 4 * SIZE)), np.float32)
        lab += [rgb_to_lab(small[y : y + 2 * SIZE, x : x + 2 * SIZE] / 255)
                for y in range(0, 2 * SIZE + 1, SIZE // 2)[:4]
                for x in range(0, 2 * SIZE + 1, SIZE // 2)[:4]]
    lab = np.stack(lab)
    n = len(lab)
    train = LabSet(lab, range(n), [str(i) for i in range(n)], np.full(n, -1), [], crop=SIZE)
    model = ZhangColorizer(ZhangColorizer.Options(width=0.125, batch_size=16))
    ctx = FitContext(device="cpu", seed=0, model_dir=model_dir,
                     loss_log=LossLog(model_dir / "loss.csv"))
    model.fit(train, None, Budget(steps=steps), ctx)
    model.save(model_dir / "weights")
    (model_dir / "status.json").write_text('{"status": "done"}\n')
    return run_dir


def old_pipeline(colorizer, photos: list[Path], out: Path) -> None:
    """The replaced ``colorize_files``, step for step: float RGB, full Lab, full float RGB."""
    for path in photos:
        L = rgb_to_lab(decode_rgb(path))[..., 0]
        ab = predict_ab(colorizer, resize_l(L[None], SIZE))
        full = resize_ab(ab, L.shape)[0]
        rgb = lab_to_rgb(np.concatenate([L[..., None], full], axis=-1))
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(rgb)).save(out / f"{path.stem}.png", format="PNG")


def new_pipeline(colorizer, photos: list[Path], out: Path, fmt: str,
                 workers: int | None = None) -> None:
    jobs = find_inputs([photos[0].parent], out, FORMATS[fmt].suffix)
    colorize_files(colorizer, SIZE, jobs, out, fmt=fmt, workers=workers)
    failed = [j for j in jobs if j.error]
    if failed:
        raise RuntimeError(f"{failed[0].source}: {failed[0].error}")


class _Timer:
    """Seconds per photo of named steps, accumulated across photos."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def __call__(self, name, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        self.times.setdefault(name, []).append(time.perf_counter() - start)
        return result


def new_stages(colorizer, photos: list[Path], out: Path) -> dict[str, list[float]]:
    """Each step of the new pipeline, one after another, on one thread (torch too)."""
    timed = _Timer()
    Ls = [timed("decode + L", decode_l, p) for p in photos]
    small = np.stack([timed("resize L", resize_l, L[None], SIZE)[0] for L in Ls])
    start = time.perf_counter()
    ab = predict_ab(colorizer, small)  # one call for all, as the pipeline groups them
    timed.times["predict"] = [(time.perf_counter() - start) / len(photos)] * len(photos)
    for path, L, a in zip(photos, Ls, ab):
        full = timed("upsample ab", resize_ab, a[None], L.shape)[0]
        rgb8 = timed("Lab -> sRGB8", lab_to_srgb8, L, full[..., 0], full[..., 1])
        for fmt in FORMATS:
            timed(f"encode {fmt}", save_rgb8, rgb8, out / f"{path.stem}{FORMATS[fmt].suffix}",
                  FORMATS[fmt])
    return timed.times


def old_stages(colorizer, photos: list[Path], out: Path) -> dict[str, list[float]]:
    """Each step of the old pipeline, on one thread."""
    timed = _Timer()
    for path in photos:
        rgb = timed("decode (float)", decode_rgb, path)
        L = timed("sRGB -> Lab", rgb_to_lab, rgb)[..., 0]
        ab = timed("resize, predict", lambda x: predict_ab(colorizer, resize_l(x[None], SIZE)), L)
        full = timed("upsample ab", resize_ab, ab, L.shape)[0]
        rgb = timed("Lab -> sRGB", lab_to_rgb, np.concatenate([L[..., None], full], axis=-1))
        rgb8 = timed("to uint8", to_uint8, rgb)
        timed("PNG level 6", Image.fromarray(rgb8).save, out / f"{path.stem}.png", "PNG")
    return timed.times


def print_stages(title: str, times: dict[str, list[float]], mp: list[float]) -> None:
    total = sum(sum(ts) for name, ts in times.items() if name != "encode jpeg")
    print(f"\n{title}, one thread, one step after another\n")
    print(f"| {'stage':<16} | {'s per MP':>8} | {'s per photo':>11} | {'share':>6} |")
    print(f"|{'-' * 18}|{'-' * 9}:|{'-' * 12}:|{'-' * 7}:|")
    for name, ts in times.items():
        share = "-" if name == "encode jpeg" else f"{sum(ts) / total:.0%}"
        print(f"| {name:<16} | {sum(ts) / sum(mp):>8.3f} | {sum(ts) / len(ts):>11.3f} | "
              f"{share:>6} |")
    print(f"| {'all (png)':<16} | {total / sum(mp):>8.3f} | {total / len(mp):>11.3f} | "
          f"{'100%':>6} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every arm")
    parser.add_argument("--steps", type=int, default=40, help="training steps of the model")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="bench-colorize-") as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        photos = write_photos(root / "photos")
        mp = [Image.open(p).width * Image.open(p).height / 1e6 for p in photos]
        colorizer = load_trained(make_run(root, photos, args.steps), "zhang")

        arms = {"old (png, level 6)": lambda o: old_pipeline(colorizer, photos, o),
                "new png": lambda o: new_pipeline(colorizer, photos, o, "png"),
                "new png, 1 worker": lambda o: new_pipeline(colorizer, photos, o, "png", 1),
                "new jpeg": lambda o: new_pipeline(colorizer, photos, o, "jpeg")}
        rates: dict[str, list[float]] = {name: [] for name in arms}
        for r in range(args.rounds):
            for i, (name, arm) in enumerate(arms.items()):
                start = time.perf_counter()
                arm(root / f"out{i}-{r}")
                rates[name].append(len(photos) / (time.perf_counter() - start))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        (root / "stages-old").mkdir()
        breakdown = {"new": new_stages(colorizer, photos, root / "stages"),
                     "old": old_stages(colorizer, photos, root / "stages-old")}
        torch.set_num_threads(threads)

        print(f"\n{len(photos)} photos of {', '.join(f'{m:.1f}' for m in mp)} MP; zhang width "
              f"0.125 at {SIZE} px; {args.rounds} interleaved rounds\n")
        print(f"| {'arm':<20} | {'photos/s min':>12} | {'median':>7} | {'max':>7} | "
              f"{'x old (median)':>14} |")
        print(f"|{'-' * 22}|{'-' * 13}:|{'-' * 8}:|{'-' * 8}:|{'-' * 15}:|")
        base = statistics.median(rates["old (png, level 6)"])
        for name, rs in rates.items():
            print(f"| {name:<20} | {min(rs):>12.3f} | {statistics.median(rs):>7.3f} | "
                  f"{max(rs):>7.3f} | {statistics.median(rs) / base:>14.2f} |")
        paired = [n / o for n, o in zip(rates["new png"], rates["old (png, level 6)"])]
        print(f"\nnew png / old per round: min {min(paired):.2f}, median "
              f"{statistics.median(paired):.2f}, max {max(paired):.2f}")
        print_stages("new pipeline's stages", breakdown["new"], mp)
        print_stages("old pipeline's stages", breakdown["old"], mp)

        sizes = {fmt: sum((root / "stages" / f"{p.stem}{FORMATS[fmt].suffix}").stat().st_size
                          for p in photos) / 1e6 for fmt in FORMATS}
        old_size = sum((root / "out0-0" / f"{p.stem}.png").stat().st_size for p in photos) / 1e6
        print(f"\noutput sizes for all photos: PNG level 6 (old) {old_size:.1f} MB, new PNG "
              f"{sizes['png']:.1f} MB ({sizes['png'] / old_size - 1:+.1%}), JPEG q95 4:4:4 "
              f"{sizes['jpeg']:.1f} MB")

        worst, differing = 0, 0.0
        for p in photos:
            old = np.asarray(Image.open(root / "out0-0" / f"{p.stem}.png"), dtype=np.int16)
            new = np.asarray(Image.open(root / "out1-0" / f"{p.stem}.png"), dtype=np.int16)
            diff = np.abs(old - new)
            worst, differing = max(worst, int(diff.max())), max(differing, (diff > 0).mean())
        print(f"old vs new PNG pixels: max abs difference {worst} (8-bit levels); at most "
              f"{differing:.3%} of a photo's channel values differ")


if __name__ == "__main__":
    main()
