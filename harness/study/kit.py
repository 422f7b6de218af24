"""Export a self-contained human-study kit (static HTML + PNGs) from a finished run.

The kit folder holds ``index.html``, ``study.css``, ``study.js``, ``items.js`` (the per-rater
item lists, embedded as a script because ``fetch`` fails on ``file://``) and ``img/`` with one
PNG per item (2AFC: ``<id>-a.png`` and ``<id>-b.png``). Item ids are salted hashes, so neither
file names nor the page reveal a method. What each id means is written to
``RUN_DIR/study/manifest-<design>.json``, outside the kit, for the experimenter only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from harness.atomic import write_json
from harness.errors import HarnessError
from harness.rundir import RunDir

DESIGNS = ("plausibility", "2afc")
STATIC_FILES = ("index.html", "study.css", "study.js")
#: Files a kit folder may hold; an existing folder with other files is never overwritten.
KIT_MARKERS = ("index.html", "items.js")


def study_dir(run_dir: Path) -> Path:
    """Where the experimenter's files live: manifests and imported votes."""
    return RunDir(run_dir).study_dir


def manifest_path(run_dir: Path, design: str) -> Path:
    return study_dir(run_dir) / f"manifest-{design}.json"


def load_manifest(run_dir: Path, design: str) -> dict | None:
    path = manifest_path(run_dir, design)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{path}: cannot read the study manifest: {exc}") from None


@dataclass
class FinishedRun:
    """What a kit needs from a run: Lab test images, their names, finished models."""

    run_dir: Path
    test_lab: np.ndarray  # N x E x E x 3
    names: list[str]
    models: list[str]

    def pred_ab(self, model: str) -> np.ndarray:  # N x E x E x 2
        pred = RunDir(self.run_dir).model(model).predictions()
        if pred is None or pred.shape != (*self.test_lab.shape[:3], 2):
            raise HarnessError(f"{self.run_dir}/models/{model}/pred_ab.npy has shape "
                               f"{'no readable array' if pred is None else pred.shape}; "
                               f"expected {(*self.test_lab.shape[:3], 2)}")
        return pred


def load_run(run_dir: Path) -> FinishedRun:
    """The test images and finished models of ``run_dir``; a HarnessError names what is missing."""
    run = RunDir(run_dir)
    if not run.test_lab_file.exists():
        raise HarnessError(f"{run_dir}: not a finished run (no test_lab.npy)")
    test_lab = run.test_lab()
    if test_lab is None:
        raise HarnessError(f"{run.test_lab_file}: not a readable .npy array; rerun the run")
    names = run.test_names() or [f"image-{i}" for i in range(len(test_lab))]
    models = [m.name for m in run.models() if m.done and m.predictions_file.exists()]
    run_dir = run.path
    return FinishedRun(run_dir, test_lab, list(names), models)


def item_hash(salt: str, design: str, method: str, index: int) -> str:
    """Hex digest identifying (design, method, image); unguessable without the salt."""
    return hashlib.sha256(f"{salt}|{design}|{method}|{index}".encode()).hexdigest()


def plan_raters(n_images: int, methods: list[str], raters: int, colorized: int, real: int,
                rng: np.random.Generator) -> tuple[list[list[tuple[str | None, int]]], list[str]]:
    """Per-rater lists of (method or None for a real image, image index), shuffled.

    Methods are rotated so that each rater's colorized items, and the totals over raters,
    differ by at most one between methods. Each rater sees distinct source images while
    ``colorized + real <= n_images``; consecutive raters start at different images so that
    coverage spreads over the test set. Counts larger than the distinct items available are
    capped; the returned notes say so.
    """
    notes = []
    real_n = min(real, n_images)
    col_n = min(colorized, len(methods) * n_images)
    if (real_n, col_n) != (real, colorized):
        notes.append(f"only {n_images} test images and {len(methods)} methods: each rater gets "
                     f"{col_n} colorized and {real_n} real items")
    if real_n + col_n > n_images:
        notes.append(f"{real_n + col_n} items per rater from {n_images} test images: raters "
                     f"see some source images more than once")
    perm = rng.permutation(n_images)
    window = max(1, real_n + col_n)
    plans = []
    for r in range(raters):
        start = r * window
        order = [int(perm[(start + j) % n_images]) for j in range(n_images)]
        items: list[tuple[str | None, int]] = [(None, i) for i in order[:real_n]]
        used = set(order[:real_n])
        prefer = order[real_n:] + order[:real_n]
        for j in range(col_n):
            method = methods[(r * col_n + j) % len(methods)]
            free = [i for i in prefer if (method, i) not in items]
            image = next((i for i in free if i not in used), free[0])
            used.add(image)
            items.append((method, image))
        rng.shuffle(items)
        plans.append(items)
    return plans, notes


@dataclass
class ExportResult:
    """What ``export_kit`` wrote."""

    out: Path
    manifest: Path
    design: str
    kit_id: str
    models: list[str]
    per_rater: list[int]
    images: int
    notes: list[str] = field(default_factory=list)


def _check_out(out: Path, run_dir: Path) -> None:
    """Refuse a kit folder that would hold, replace or sit among the run's files it reads.

    The kit is written elsewhere and swapped in as a whole, so it must not contain the run
    (whose manifest is the key to the anonymous ids), and must stay outside ``RUN/study``,
    where the manifest and the imported votes live, so it can be sent without them.
    """
    out_abs, run_abs = out.resolve(), Path(run_dir).resolve()
    study = study_dir(run_dir)
    if run_abs.is_relative_to(out_abs):
        raise HarnessError(f"--out {out}: the run directory {run_dir}, with the manifest "
                           f"{study}/manifest-*.json, would be inside the kit; choose a "
                           f"folder outside the run's study/ folder")
    if out_abs.is_relative_to(study.resolve()):
        raise HarnessError(f"--out {out}: inside {study}, which holds the manifest (the key to "
                           f"the kit's anonymous ids) and the imported votes; the kit must stay "
                           f"outside it so that it can be sent without them, e.g. --out "
                           f"{Path(run_dir).parent / 'study-kit'}")
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out}: exists and is not a folder")
    if (out.exists() and any(out.iterdir())
            and not all((out / name).exists() for name in KIT_MARKERS)):
        raise HarnessError(f"--out {out}: folder is not empty and is not a study kit; "
                           f"choose a new or empty folder")


def _save_png(path: Path, lab: np.ndarray) -> None:
    from PIL import Image

    from harness.color import lab_to_rgb, to_uint8

    Image.fromarray(to_uint8(lab_to_rgb(np.asarray(lab, dtype=np.float32)))).save(path, "PNG")


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished folder ``tmp`` (a rename each way)."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "kit")
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def export_kit(run_dir: Path, out: Path, design: str = "plausibility", raters: int = 10,
               colorized: int = 10, real: int = 10, seed: int = 0,
               models: list[str] | None = None) -> ExportResult:
    """Write the kit to ``out`` and merge its items into ``RUN_DIR/study/manifest-<design>.json``.

    ``models`` defaults to every finished model. In the 2AFC design each trial pairs a
    colorized image with the real one of the same source (``real`` is not used); which file
    of the pair (a or b) is real is fixed per item, the side it is shown on is drawn per rater.
    """
    if design not in DESIGNS:
        raise HarnessError(f"--design {design}: expected one of {', '.join(DESIGNS)}")
    if raters < 1 or colorized < 0 or real < 0:
        raise HarnessError("--raters must be >= 1, --colorized and --real >= 0")
    run = load_run(run_dir)
    if not run.models:
        raise HarnessError(f"{run_dir}: no finished model (models/*/status.json 'done')")
    if models:
        unknown = [m for m in models if m not in run.models]
        if unknown:
            raise HarnessError(f"--models {', '.join(unknown)}: not a finished model of "
                               f"{run_dir}; finished: {', '.join(run.models)}")
    chosen = list(dict.fromkeys(models)) if models else run.models
    real = 0 if design == "2afc" else real
    if colorized + real == 0:
        raise HarnessError("--colorized and --real are both 0: nothing to rate")
    if len(run.test_lab) == 0:
        raise HarnessError(f"{run_dir}: no test images")
    out, manifest_file = Path(out), manifest_path(run_dir, design)
    _check_out(out, run_dir)

    rng = np.random.default_rng(seed)
    plans, notes = plan_raters(len(run.test_lab), chosen, raters, colorized, real, rng)
    manifest = load_manifest(run_dir, design) or {
        "design": design, "salt": secrets.token_hex(16), "items": {}, "kits": []}
    kit_id = secrets.token_hex(4)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        (tmp / "img").mkdir()
        preds = {m: run.pred_ab(m) for m in chosen}
        rater_lists, written = [], set()
        for plan in plans:
            trials = []
            for method, index in plan:
                digest = item_hash(manifest["salt"], design, method or "", index)
                item_id = digest[:12]
                item = {"method": method, "image": run.names[index], "index": index,
                        "kind": "real" if method is None else "colorized"}
                real_lab = run.test_lab[index]
                if method is not None:
                    fake_lab = np.concatenate([real_lab[..., :1], preds[method][index]], -1)
                if design == "2afc":
                    item.update(kind="pair", real="a" if int(digest[12], 16) % 2 else "b")
                    trials.append({"id": item_id, "left": str(rng.choice(["a", "b"]))})
                    if item_id not in written:
                        fake_side = "b" if item["real"] == "a" else "a"
                        _save_png(tmp / "img" / f"{item_id}-{item['real']}.png", real_lab)
                        _save_png(tmp / "img" / f"{item_id}-{fake_side}.png", fake_lab)
                else:
                    trials.append({"id": item_id})
                    if item_id not in written:
                        _save_png(tmp / "img" / f"{item_id}.png",
                                  real_lab if method is None else fake_lab)
                written.add(item_id)
                manifest["items"][item_id] = item
            rater_lists.append(trials)
        static = resources.files("harness.study") / "static"
        for name in STATIC_FILES:
            (tmp / name).write_bytes((static / name).read_bytes())
        kit = {"kit": kit_id, "design": design, "raters": rater_lists}
        (tmp / "items.js").write_text(
            "// Generated by `harness study export`: the item lists, one per rater.\n"
            f"window.STUDY = {json.dumps(kit, separators=(',', ':'))};\n", encoding="utf-8")
        # The manifest first: ids it knows but no kit uses are harmless, the reverse is not.
        manifest["kits"].append({
            "kit": kit_id, "out": str(out.resolve()), "seed": seed, "models": chosen,
            "colorized": colorized, "real": real,
            "created": dt.datetime.now().isoformat(timespec="seconds"),
            "raters": [[t["id"] for t in trials] for trials in rater_lists]})
        write_json(manifest_file, manifest)
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ExportResult(out, manifest_file, design, kit_id, chosen,
                        [len(t) for t in rater_lists], len(written), notes)
