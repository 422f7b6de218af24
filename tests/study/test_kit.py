"""Study-kit export: counts, balance, anonymity, no outside requests, manifest kept apart."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.color import lab_to_rgb, to_uint8
from harness.errors import HarnessError
from harness.study.kit import export_kit, plan_raters

MODELS = ("zhang", "iizuka", "mean-prior")


def kit_items(out: Path) -> dict:
    text = (out / "items.js").read_text()
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


@pytest.fixture
def run(fake_run) -> Path:
    return fake_run(MODELS, broken=True)


def test_plausibility_lists_have_the_right_counts_and_balance(run, tmp_path):
    res = export_kit(run, tmp_path / "kit", raters=4, colorized=10, real=10, seed=3)
    assert res.models == sorted(MODELS) and res.per_rater == [20] * 4 and not res.notes
    manifest = json.loads(res.manifest.read_text())
    lists = kit_items(res.out)["raters"]
    totals = Counter()
    for trials in lists:
        items = [manifest["items"][t["id"]] for t in trials]
        assert len({t["id"] for t in trials}) == 20
        assert sum(i["kind"] == "real" for i in items) == 10
        per_method = Counter(i["method"] for i in items if i["kind"] == "colorized")
        assert sum(per_method.values()) == 10 and set(per_method) == set(MODELS)
        assert max(per_method.values()) - min(per_method.values()) <= 1
        assert len({i["index"] for i in items}) == 20  # 30 test images: no source twice
        totals.update(per_method)
    assert max(totals.values()) - min(totals.values()) <= 1
    assert lists[0] != lists[1]  # per-rater random order
    assert manifest["kits"][0]["raters"] == [[t["id"] for t in ts] for ts in lists]


def test_kit_hides_methods_and_makes_no_outside_requests(run, tmp_path):
    res = export_kit(run, tmp_path / "kit", raters=2, colorized=6, real=6)
    files = [p for p in res.out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "study.js", "study.css", "items.js"}
    assert not [p for p in files if "manifest" in p.name]
    for path in files:
        data = path.read_bytes()
        for name in (*MODELS, "broken", "real", "colorized"):
            assert name not in path.name
        for name in MODELS:
            assert name.encode() not in data, (path, name)
        if path.suffix in (".html", ".js", ".css"):
            text = data.decode()
            assert "http" not in text.lower() and "://" not in text, path
            assert "fetch(" not in text and "XMLHttpRequest" not in text
            assert not re.search(r"""(?:src|href)=["']/""", text)
            assert "@import" not in text and "url(" not in text
    items_js = (res.out / "items.js").read_text()
    assert not re.search(r"real|colori[sz]ed|method|kind|image|photo", items_js.lower())
    for ref in re.findall(r"""(?:src|href)="([^"#]+)""", (res.out / "index.html").read_text()):
        assert (res.out / ref).exists()
    assert res.manifest.parent == run / "study" and res.manifest.exists()


def test_pngs_hold_the_recombined_images(run, tmp_path):
    res = export_kit(run, tmp_path / "kit", raters=1, colorized=3, real=3)
    manifest = json.loads(res.manifest.read_text())
    lab = np.load(run / "test_lab.npy")
    for item_id, item in manifest["items"].items():
        shown = np.asarray(Image.open(res.out / "img" / f"{item_id}.png"))
        expect = lab[item["index"]].copy()
        if item["kind"] == "colorized":
            expect[..., 1:] = np.load(run / "models" / item["method"] / "pred_ab.npy")[
                item["index"]]
        assert np.array_equal(shown, to_uint8(lab_to_rgb(expect)))


def test_2afc_pairs_real_and_colorized_of_one_source(run, tmp_path):
    res = export_kit(run, tmp_path / "kit", design="2afc", raters=3, colorized=9, real=10,
                     models=["zhang", "iizuka"])
    assert res.per_rater == [9, 9, 9] and res.manifest.name == "manifest-2afc.json"
    manifest = json.loads(res.manifest.read_text())
    lab = np.load(run / "test_lab.npy")
    sides = Counter()
    for trials in kit_items(res.out)["raters"]:
        assert Counter(manifest["items"][t["id"]]["method"] for t in trials) in (
            Counter(zhang=5, iizuka=4), Counter(zhang=4, iizuka=5))
        for t in trials:
            item = manifest["items"][t["id"]]
            sides[t["left"]] += 1
            real = np.asarray(Image.open(res.out / "img" / f"{t['id']}-{item['real']}.png"))
            assert np.array_equal(real, to_uint8(lab_to_rgb(lab[item["index"]])))
            fake = "b" if item["real"] == "a" else "a"
            assert (res.out / "img" / f"{t['id']}-{fake}.png").exists()
    assert set(sides) == {"a", "b"}


def test_item_ids_are_stable_and_reexport_replaces_the_kit(run, tmp_path):
    first = export_kit(run, tmp_path / "kit", raters=2, colorized=3, real=3, seed=1)
    ids = set(json.loads(first.manifest.read_text())["items"])
    lists = kit_items(first.out)["raters"]
    (first.out / "img" / "stale.png").write_bytes(b"x")
    second = export_kit(run, tmp_path / "kit", raters=2, colorized=3, real=3, seed=2)
    manifest = json.loads(second.manifest.read_text())
    assert ids <= set(manifest["items"]) and len(manifest["kits"]) == 2
    assert not (second.out / "img" / "stale.png").exists()
    again = export_kit(run, tmp_path / "kit2", raters=2, colorized=3, real=3, seed=1)
    assert kit_items(again.out)["raters"] == lists  # same seed, same salt: same ids


@pytest.mark.parametrize("out, message", [
    ("run/study", "inside .*study, which holds the manifest"),
    ("run/study/kit2", "inside .*study, which holds the manifest"),
    ("run/study/../study/votes/kit", "inside .*study, which holds the manifest"),
    ("run", "would be inside the kit"),
    (".", "would be inside the kit"),
    ("busy", "not empty and is not a study kit"),
    ("run/test_lab.npy", "exists and is not a folder"),
    ("run/models/zhang", "not empty and is not a study kit"),
])
def test_refuses_a_kit_folder_that_would_leak_or_clobber(run, tmp_path, out, message):
    """Outputs never overwrite inputs: the kit stays outside RUN/study and off the run's files."""
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    export_kit(run, tmp_path / "kit", raters=1, colorized=2, real=2)  # study/ now exists
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(HarnessError, match=message):
        export_kit(run, tmp_path / out)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_cli_refuses_a_kit_inside_the_study_folder(run, tmp_path):
    out = CliRunner().invoke(main, ["study", "export", str(run), "--out",
                                    str(run / "study" / "kit2")])
    assert out.exit_code == 2 and "Traceback" not in out.output
    assert f"--out {run / 'study' / 'kit2'}: inside {run / 'study'}" in out.output
    assert "so that it can be sent without them" in out.output
    assert not (run / "study" / "kit2").exists()


def test_models_option_and_errors(run, tmp_path):
    with pytest.raises(HarnessError, match="broken.*finished: iizuka, mean-prior, zhang"):
        export_kit(run, tmp_path / "kit", models=["broken"])
    with pytest.raises(HarnessError, match="no test_lab.npy"):
        export_kit(tmp_path / "nowhere", tmp_path / "kit")


def test_small_test_sets_cap_counts_and_say_so():
    plans, notes = plan_raters(2, ["a", "b"], 3, 10, 10, np.random.default_rng(0))
    assert all(len(p) == 6 and len(set(p)) == 6 for p in plans)  # 4 colorized + 2 real
    assert any("each rater gets 4 colorized and 2 real" in n for n in notes)


def test_cli_export_prints_kit_manifest_and_link(run, tmp_path):
    result = CliRunner().invoke(main, ["study", "export", str(run), "--out",
                                       str(tmp_path / "kit"), "--raters", "2", "--colorized",
                                       "4", "--real", "4", "--models", "zhang,iizuka"])
    assert result.exit_code == 0, result.output
    assert "2 raters x 8 items" in result.output and "models: zhang, iizuka" in result.output
    assert "manifest-plausibility.json" in result.output and "#rater=1" in result.output
    bad = CliRunner().invoke(main, ["study", "export", str(run), "--out", str(run)])
    assert bad.exit_code == 2 and "would be inside the kit" in bad.output
