"""Welsh et al. 2002: only ab out, colour from the reference, auto choice blind to test colour."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from harness.colorizer import FitContext
from harness.data.dataset import LabSet
from harness.progress import LossLog
from harness_baselines.welsh import (
    Choice,
    RefIndex,
    WelshColorizer,
    WelshOptions,
    colour_statistics,
    gaussian_w2,
    welsh_transfer,
)

STRIPES = [(20, (45, -25)), (50, (-35, 20)), (80, (15, 55))]


def labset(images: list[tuple[np.ndarray, np.ndarray]], names: list[str] | None = None) -> LabSet:
    lab = np.stack([np.concatenate([L[..., None], ab], axis=-1) for L, ab in images])
    n = len(images)
    return LabSet(lab.astype(np.float32), np.arange(n), names or [f"img{i}" for i in range(n)],
                  np.full(n, -1), [])


def ctx(tmp_path: Path, seed: int = 0) -> FitContext:
    return FitContext(device="cpu", seed=seed, model_dir=tmp_path,
                      loss_log=LossLog(tmp_path / "loss.csv"))


def striped(levels, vertical: bool, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Three equal stripes of constant L (``levels``) and the STRIPES colours."""
    L = np.zeros((size, size))
    ab = np.zeros((size, size, 2))
    for k, (lum, (_, colour)) in enumerate(zip(levels, STRIPES)):
        band = (slice(None), slice(16 * k, 16 * k + 16)) if vertical else \
            (slice(16 * k, 16 * k + 16), slice(None))
        L[band], ab[band] = lum, colour
    return L, ab


def scene(seed: int, mean: float, colour: tuple[float, float], size: int = 32):
    """A textured random image with its own luminance level and colour cast."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    L = np.clip(mean + 15 * np.sin((seed + 2) * 3 * x) * np.cos(4 * y)
                + rng.normal(0, 1 + 3 * seed, (size, size)), 0, 100)
    ab = np.stack([np.full((size, size), colour[0]), np.full((size, size), colour[1])], -1)
    return L, ab + rng.normal(0, 4, ab.shape)


def test_transfer_maps_remapped_luminance_to_the_reference_colour(tmp_path):
    # Reference: horizontal stripes L 20/50/80; target: vertical stripes L 60/70/80, the same
    # distribution shifted and squeezed. The reference is remapped onto the target's mean and
    # spread, so target L 60 takes the colour of reference L 20, and so on; without the
    # remapping 60 and 70 would take the colours of 50 and 80.
    reference = striped([20, 50, 80], vertical=False)
    model = WelshColorizer()
    model.fit(labset([reference]), None, None, ctx(tmp_path))
    L_target, ab_expected = striped([60, 70, 80], vertical=True)
    out = model.predict(L_target[None])[0]
    error = np.abs(out - ab_expected)
    interior = np.zeros((48, 48), dtype=bool)  # 5x5 windows inside one stripe: exact matches
    for k in range(3):
        interior[:, 16 * k + 2 : 16 * k + 14] = True
    assert error[interior].max() < 1e-4
    assert error.mean() < 5


def test_only_ab_is_returned_and_the_input_l_is_untouched(tmp_path):
    model = WelshColorizer()
    model.fit(labset([scene(0, 40, (20, 10)), scene(1, 60, (-10, 30))]), None, None,
              ctx(tmp_path))
    L = np.stack([scene(2, 50, (0, 0))[0], scene(3, 30, (0, 0))[0]]).astype(np.float32)
    before = L.copy()
    out = model.predict(L)
    assert out.shape == (2, 32, 32, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(L, before)


def test_auto_choice_reads_only_l_and_the_oracle_reads_the_truth(tmp_path):
    train = [scene(0, 25, (40, 0)), scene(1, 50, (-30, 30)), scene(2, 75, (0, -40))]
    model = WelshColorizer()
    model.fit(labset(train, ["dark", "mid", "bright"]), None, None, ctx(tmp_path))
    # The API offers the auto choice no colour at all, and the automatic model refuses it ...
    assert list(inspect.signature(model.choose).parameters) == ["L"]
    assert not model.uses_ground_truth
    with pytest.raises(ValueError, match="takes no ab_true"):
        model.predict(train[0][0][None], ab_true=train[0][1][None])
    # ... and a test photo with the dark image's L but the bright image's colour is matched on
    # its L by auto and on its colour by the oracle.
    L_test, ab_test = train[0][0], train[2][1]
    auto = model.choose(L_test[None])
    assert (auto[0].train_index, auto[0].name, auto[0].oracle) == (0, "dark", False)
    oracle = model.choose_oracle(ab_test[None])
    assert (oracle[0].train_index, oracle[0].name, oracle[0].oracle) == (2, "bright", True)
    # Test sets that differ only in colour give the same auto references.
    for ab in (ab_test, ab_test[::-1], ab_test + 30):
        L_only, _ = labset([(L_test, ab)]).arrays()
        assert model.choose(L_only) == auto


def test_choices_are_recorded_and_the_oracle_is_a_separate_method(tmp_path):
    train = [scene(0, 25, (40, 0)), scene(1, 75, (0, -40))]
    model = WelshColorizer(WelshOptions(reference="oracle"))
    assert model.uses_ground_truth
    model.fit(labset(train), None, None, ctx(tmp_path))
    with pytest.raises(ValueError, match="needs the test ground truth"):
        model.predict(train[0][0][None])
    out = model.predict(train[0][0][None], ab_true=train[1][1][None])
    assert model.chosen == [Choice(1, "img1", model.chosen[0].distance, oracle=True)]
    assert model.chosen[0].as_dict()["name"] == "img1"
    # The oracle's colour comes from the chosen reference's samples.
    assert np.abs(out[0].mean(axis=(0, 1)) - np.array([0, -40])).max() < 5
    model.write_extras(tmp_path, labset([train[0]], ["test, one"]))
    lines = (tmp_path / "references.csv").read_text().splitlines()
    assert lines[0] == "image,reference,distance,choice"
    assert lines[1].startswith('"test, one",img1,') and lines[1].endswith(",oracle")


def test_whole_training_images_are_indexed_at_the_input_side(tmp_path):
    # ``train`` serves 32 px crops; ctx.train_full holds the same photos whole at 64 px. The
    # index is built from the whole photos, shrunk to 32 px, the side predict is given L at.
    whole = [scene(i, 30 + 20 * i, (15 * i, 10 - 10 * i), size=64) for i in range(2)]
    lab = np.stack([np.concatenate([L[..., None], ab], -1) for L, ab in whole]).astype("f4")
    crops = LabSet(lab, [0, 1], ["a", "b"], np.full(2, -1), [], crop=32)
    full = LabSet(lab, [0, 1], ["a", "b"], np.full(2, -1), [])
    context = ctx(tmp_path)
    context.train_full = full
    model = WelshColorizer()
    model.fit(crops, None, None, context)
    L_small = whole[1][0].reshape(32, 2, 32, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(model.index.lum_mean, [w[0].mean() for w in whole], atol=0.05)
    assert model.index.names == ("a", "b")
    assert model.choose(L_small[None])[0].name == "b"


def test_index_saves_without_pickles_and_loads_back(tmp_path):
    train = [scene(i, 20 + 25 * i, (10 * i, -5 * i)) for i in range(3)]
    model = WelshColorizer()
    model.fit(labset(train), None, None, ctx(tmp_path, seed=4))
    model.save(tmp_path)
    with np.load(tmp_path / "welsh_index.npz", allow_pickle=False) as data:
        assert set(data.files) == set(RefIndex.ARRAYS)
    again = WelshColorizer()
    again.load(tmp_path)
    L = np.stack([scene(5, 45, (0, 0))[0], scene(6, 70, (0, 0))[0]])
    np.testing.assert_array_equal(again.predict(L), model.predict(L))
    assert again.chosen == model.chosen


def test_oracle_distance_is_the_gaussian_w2():
    a = np.random.default_rng(0).normal([10, -5], [3, 8], (500, 2))
    b = np.random.default_rng(1).normal([-4, 6], [6, 2], (500, 2))
    sa, sb = colour_statistics(a), colour_statistics(b)
    # Diagonal covariances: W2^2 = |dm|^2 + sum (sqrt(var_a) - sqrt(var_b))^2 up to the
    # sample covariances' small off-diagonal terms.
    expected = np.sqrt(((sa[:2] - sb[:2]) ** 2).sum() + (np.sqrt(sa[2]) - np.sqrt(sb[2])) ** 2
                       + (np.sqrt(sa[4]) - np.sqrt(sb[4])) ** 2)
    assert gaussian_w2(sa, sb[None])[0] == pytest.approx(expected, rel=0.02)
    assert gaussian_w2(sa, sa[None])[0] == pytest.approx(0, abs=1e-6)


def test_transfer_is_deterministic_given_the_fit_seed(tmp_path):
    train = [scene(i, 30 + 20 * i, (15 * i, 10 - 10 * i)) for i in range(2)]
    L = scene(7, 50, (0, 0))[0]
    runs = []
    for seed in (0, 0, 1):
        model = WelshColorizer()
        model.fit(labset(train), None, None, ctx(tmp_path, seed))
        runs.append((model.index, welsh_transfer(L, model.index, 0)))
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0].sample_L, runs[2][0].sample_L)
