"""Vote import: validation by file and line, idempotence, storage and the merged tables."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import HarnessError
from harness.study.kit import export_kit
from harness.study.votes import import_votes, load_votes

SUMMARY_HEAD = ("model,metric,value,ci_low,ci_high,n,p_vs_ref,significant,direction,unit,"
                "granularity,status,note\n")
TABLE = "# fake\n\n| model | psnr ↑ (dB) |\n|---|---|\n| zhang (ref) | 20.1 [19, 21] |\n"


@pytest.fixture
def study(fake_run, tmp_path):
    """A run with a plausibility kit and a 2AFC kit; returns (run, items by kind/method)."""
    models, n = ("zhang", "iizuka"), 30
    run = fake_run(models, n)  # with the run's own summary.csv and table.md
    (run / "summary.csv").write_text(SUMMARY_HEAD + "".join(
        f"{m},psnr,20.1,19.0,21.0,{n},,False,higher,dB,image,ok,\n" for m in models))
    (run / "table.md").write_text(TABLE)
    export_kit(run, tmp_path / "kit", raters=4, colorized=6, real=6)
    export_kit(run, tmp_path / "kit2", design="2afc", raters=2, colorized=4)
    items = {}
    for design in ("plausibility", "2afc"):
        manifest = json.loads((run / "study" / f"manifest-{design}.json").read_text())
        for item_id, item in sorted(manifest["items"].items()):
            items.setdefault((design, item["kind"], item["method"]), []).append(
                (item_id, item))
    return run, items


def write_csv(path: Path, rows, header=("rater_id", "item_id", "answer", "design",
                                        "timestamp")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def good_votes(items, tmp_path) -> Path:
    """zhang: 7 of 10 plausible; real images: 9 of 10; five raters, two items each."""
    x = [i for i, _ in items[("plausibility", "colorized", "zhang")][:2]]
    y = [i for i, _ in items[("plausibility", "real", None)][:2]]
    rows = []
    for k in range(10):
        rater, which = f"r{k // 2}", k % 2
        rows.append([rater, x[which], "plausible" if k < 7 else "implausible", "plausibility",
                     "2026-11-21T10:00:00Z"])
        rows.append([rater, y[which], "plausible" if k < 9 else "implausible", "plausibility",
                     ""])
    return write_csv(tmp_path / "good.csv", rows)


def summary_rows(run: Path) -> dict:
    with (run / "summary.csv").open() as f:
        return {(r["model"], r["metric"]): r for r in csv.DictReader(f)}


def test_good_file_gives_hand_computed_rates(study, tmp_path):
    run, items = study
    report = import_votes(run, [good_votes(items, tmp_path)])
    assert (report.kept, report.stored, report.raters) == (20, 20, 5)
    rows = summary_rows(run)
    zhang = rows[("zhang", "human-plausible")]
    assert float(zhang["value"]) == 0.7 and zhang["n"] == "10"
    assert float(zhang["ci_low"]) == pytest.approx(0.39678, abs=1e-5)
    assert float(zhang["ci_high"]) == pytest.approx(0.89221, abs=1e-5)
    # Fisher [[7, 3], [9, 1]]: (210 + 1200 + 1200 + 210) / 4845, see test_study_stats.
    assert float(zhang["p_vs_ref"]) == pytest.approx(2820 / 4845)
    assert float(rows[("(ground truth)", "human-plausible")]["value"]) == 0.9
    assert float(rows[("zhang", "human-naturalness")]["value"]) == pytest.approx(7 / 9)
    assert rows[("zhang", "psnr")]["value"] == "20.1"  # the run's own rows are kept
    table = (run / "table.md").read_text()
    assert table.startswith(TABLE) and "| zhang | 10 | 5 | 70.0% [39.7, 89.2] | 0.78 |" in table
    stored = load_votes(run)
    assert stored[0]["method"] == "zhang" and stored[0]["source"] == "good.csv"
    assert stored[0]["line"] == "2" and stored[0]["timestamp"] == "2026-11-21T10:00:00Z"


def test_messy_file_reports_exact_lines_and_keeps_good_rows(study, tmp_path):
    run, items = study
    x1, x2 = [i for i, _ in items[("plausibility", "colorized", "zhang")][:2]]
    y1 = items[("plausibility", "real", None)][0][0]
    lines = [
        "rater_id,item_id,answer,design,timestamp,comment",  # 1 (after a BOM)
        f"m1,{x1},plausible,plausibility,,fine",              # 2 kept
        "",                                                   # 3 blank
        "m1,nope,plausible,,,",                               # 4 unknown id
        f"m1,{x2},maybe,,,",                                  # 5 bad answer
        f'm1,{y1},implausible,,,"two',                        # 6 kept; the quoted
        'lines"',                                             # 7 comment spans 6-7
        f"m1,{x1},implausible,,,again",                       # 8 duplicate of line 2
        f"m2,{x1},plausible,2afc,,",                          # 9 wrong design
        f",{x2},plausible,,,",                                # 10 no rater
        f"m2,{x2},plausible,,,,surplus",                      # 11 too many fields
        "",                                                   # 12 blank
        f"m2,{x2}, Implausible ,,,",                          # 13 kept
    ]
    messy = tmp_path / "messy.csv"
    messy.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    report = import_votes(run, [messy])
    got = report.files[0]
    assert (got.read, got.kept, got.new, got.blank) == (9, 3, 3, 2)
    assert [p.line for p in got.rejected] == [4, 5, 8, 9, 10, 11]
    assert [str(n) for n in got.notes] == [f"{messy}:1: extra column(s) ignored: comment"]
    reasons = dict((p.line, p.message) for p in got.rejected)
    assert "unknown item_id 'nope'" in reasons[4]
    assert "answer 'maybe' is not one of plausible, implausible" in reasons[5]
    assert f"already answered item {x1} at {messy}:2" in reasons[8]
    assert "design '2afc'" in reasons[9] and "empty rater_id" in reasons[10]
    assert "7 fields but the header has 6" in reasons[11]
    assert [(v["rater_id"], v["item_id"], v["answer"], v["line"]) for v in load_votes(run)] == [
        ("m1", x1, "plausible", "2"), ("m1", y1, "implausible", "6"),
        ("m2", x2, "implausible", "13")]


def test_a_huge_field_loses_only_its_row(study, tmp_path):
    """One 300 kB field (past csv's 128 KiB field limit) sank the whole file."""
    run, items = study
    x1, x2 = [i for i, _ in items[("plausibility", "colorized", "zhang")][:2]]
    path = tmp_path / "huge.csv"
    path.write_text("rater_id,item_id,answer,comment\n"
                    f"h1,{x1},plausible,ok\n"
                    f"h1,{x2},plausible,{'x' * 300_000}\n"
                    f"h2,{x2},implausible,ok\n")
    got = import_votes(run, [path]).files[0]
    assert (got.read, got.kept) == (3, 2) and [p.line for p in got.rejected] == [3]
    assert "unreadable CSV row (field larger than field limit" in got.rejected[0].message
    assert [(v["rater_id"], v["line"]) for v in load_votes(run)] == [("h1", "2"), ("h2", "4")]


def test_one_unusable_file_does_not_stop_the_good_ones(study, tmp_path):
    run, items = study
    good = good_votes(items, tmp_path)
    (tmp_path / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    (tmp_path / "cols.csv").write_text("rater,item_id,verdict\nr1,x,plausible\n")
    files = [tmp_path / "photo.csv", good, tmp_path / "cols.csv", run / "summary.csv"]
    report = import_votes(run, files)
    assert [f.unusable is not None for f in report.files] == [True, False, True, True]
    assert "photo.csv: not UTF-8 text" in report.files[0].unusable
    assert "missing column(s) rater_id, answer" in report.files[2].unusable
    assert "this import writes that file (summary.csv)" in report.files[3].unusable
    assert report.files[1].new == 20 and len(load_votes(run)) == 20
    assert "human-plausible" in (run / "summary.csv").read_text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
def test_a_fifo_among_the_vote_files_is_refused_unread(study, tmp_path):
    run, items = study
    os.mkfifo(tmp_path / "pipe.csv")  # reading it would block
    report = import_votes(run, [tmp_path / "pipe.csv", good_votes(items, tmp_path)])
    assert "pipe.csv: not a regular file" in report.files[0].unusable
    assert report.files[1].new == 20


def test_import_twice_changes_nothing(study, tmp_path):
    run, items = study
    good = good_votes(items, tmp_path)
    import_votes(run, [good])
    before = {p: (run / p).read_bytes() for p in ("study/votes.csv", "summary.csv", "table.md")}
    report = import_votes(run, [good, good])
    assert report.files[0].already == 20 and report.files[0].rejected == []
    assert len(report.files[1].rejected) == 0 and report.stored == 20
    assert {p: (run / p).read_bytes() for p in before} == before
    assert (run / "table.md").read_text().count("## Human study") == 1
    (run / "table.md").write_text(TABLE)  # as a rewrite of the run's tables leaves it
    import_votes(run, [])
    assert (run / "table.md").read_bytes() == before["table.md"]


def test_a_changed_answer_later_is_reported_and_the_first_kept(study, tmp_path):
    run, items = study
    import_votes(run, [good_votes(items, tmp_path)])
    x1 = items[("plausibility", "colorized", "zhang")][0][0]
    late = write_csv(tmp_path / "late.csv", [["r0", x1, "implausible", "", ""]])
    report = import_votes(run, [late])
    assert report.kept == 0 and report.stored == 20
    assert "with 'plausible' (good.csv:2, imported earlier)" in report.files[0].rejected[0].message


def test_file_level_errors_name_the_problem_and_write_nothing(study, tmp_path):
    run, _ = study
    (tmp_path / "cols.csv").write_text("rater,item_id,verdict\nr1,x,plausible\n")
    with pytest.raises(HarnessError, match=r"missing column\(s\) rater_id, answer"):
        import_votes(run, [tmp_path / "cols.csv"])
    with pytest.raises(HarnessError, match="cannot read the vote file"):
        import_votes(run, [tmp_path / "absent.csv"])
    (tmp_path / "latin.csv").write_bytes("rater_id,item_id,answer\nJos\xe9,x,plausible\n"
                                         .encode("latin-1"))
    with pytest.raises(HarnessError, match="not UTF-8"):
        import_votes(run, [tmp_path / "latin.csv"])
    (tmp_path / "broken.json").write_text('[{"rater_id": "r1",')
    with pytest.raises(HarnessError, match="not valid JSON"):
        import_votes(run, [tmp_path / "broken.json"])
    assert not (run / "study" / "votes.csv").exists()


def test_json_array_and_json_lines_report_lines(study, tmp_path):
    run, items = study
    x1, x2 = [i for i, _ in items[("plausibility", "colorized", "zhang")][:2]]
    votes = [{"rater_id": "j1", "item_id": x1, "answer": "plausible", "worker": 7},
             {"rater_id": "j1", "item_id": x2, "answer": "yes"}]
    (tmp_path / "v.json").write_text(json.dumps(votes, indent=2))  # objects start on 2 and 8
    (tmp_path / "v.jsonl").write_text(
        f'{{"rater_id": "j2", "item_id": "{x1}", "answer": "implausible"}}\n\nnot json\n')
    report = import_votes(run, [tmp_path / "v.json", tmp_path / "v.jsonl"])
    array, lines = report.files
    assert (array.kept, [p.line for p in array.rejected]) == (1, [8])
    assert "extra key(s) ignored: worker" in array.notes[0].message
    assert (lines.kept, [p.line for p in lines.rejected]) == (1, [3])
    assert "not valid JSON" in lines.rejected[0].message


def test_crowd_export_with_semicolons_and_spelled_out_headers(study, tmp_path):
    run, items = study
    x1 = items[("plausibility", "colorized", "iizuka")][0][0]
    (tmp_path / "crowd.csv").write_text(f"Rater ID;Item-ID;Answer\nw1;{x1};PLAUSIBLE\n")
    report = import_votes(run, [tmp_path / "crowd.csv"])
    assert report.kept == 1 and load_votes(run)[0]["method"] == "iizuka"


def test_2afc_fooling_rate_from_a_b_answers(study, tmp_path):
    run, items = study
    pairs = items[("2afc", "pair", "zhang")][:2]
    rows = []
    for k in range(10):
        item_id, item = pairs[k % 2]
        fake = "b" if item["real"] == "a" else "a"
        rows.append([f"r{k // 2}", item_id, fake if k < 3 else item["real"], "2afc", ""])
    report = import_votes(run, [write_csv(tmp_path / "afc.csv", rows)])
    assert report.kept == 10
    row = summary_rows(run)[("zhang", "human-fooling")]
    assert float(row["value"]) == 0.3 and float(row["p_vs_ref"]) == pytest.approx(352 / 1024)
    assert "### Two-alternative forced choice (10 trials, 5 raters)" in (
        run / "table.md").read_text()
    wrong = write_csv(tmp_path / "wrong.csv", [["r9", pairs[0][0], "plausible", "", ""]])
    assert "not one of a, b" in import_votes(run, [wrong]).files[0].rejected[0].message


def test_cli_import_prints_report_and_table_and_exit_codes(study, tmp_path):
    run, items = study
    x1 = items[("plausibility", "colorized", "zhang")][0][0]
    bad = write_csv(tmp_path / "bad.csv", [["r1", x1, "maybe", "", ""]])
    out = CliRunner().invoke(main, ["study", "import", str(run),
                                    str(good_votes(items, tmp_path)), str(bad)])
    assert out.exit_code == 0, out.output
    assert "good.csv: 20 rows read, 20 kept (20 new), 0 rejected" in out.output
    assert f"{bad}:2: answer 'maybe'" in out.output
    assert "## Human study" in out.output and "| zhang | 10 | 5 |" in out.output
    only_bad = CliRunner().invoke(main, ["study", "import", str(run), str(bad)])
    assert only_bad.exit_code == 2 and "no vote kept" in only_bad.output
    missing = CliRunner().invoke(main, ["study", "import", str(run), str(tmp_path / "no.csv")])
    assert missing.exit_code == 2 and "cannot read the vote file" in missing.output
    assert "Traceback" not in missing.output
    second = write_csv(tmp_path / "second.csv", [["r8", x1, "plausible", "", ""]])
    mixed = CliRunner().invoke(main, ["study", "import", str(run), str(tmp_path / "no.csv"),
                                      str(second)])
    assert mixed.exit_code == 2, mixed.output
    assert f"not imported: {tmp_path / 'no.csv'}: cannot read the vote file" in mixed.output
    assert "second.csv: 1 rows read, 1 kept (1 new)" in mixed.output
    assert "1 of 2 file(s) could not be imported" in mixed.output
    assert ("r8", x1) in {(v["rater_id"], v["item_id"]) for v in load_votes(run)}
