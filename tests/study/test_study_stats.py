"""Human-study statistics against values worked out by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from harness.study.stats import (
    CONTROL,
    fooling_stats,
    goals_reached,
    krippendorff_alpha_nominal,
    markdown_section,
    plausibility_stats,
    summary_rows,
    wilson_interval,
)

Z95 = 1.959963984540054


def by_formula(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n))
    return centre - half, centre + half


def votes(method: str, plausible: int, total: int, raters: int = 2, kind="colorized"):
    """``total`` plausibility votes on ``method`` (None: real images), spread over raters."""
    return [{"rater_id": f"r{i % raters}", "item_id": f"{method}-{i}", "method": method,
             "kind": kind, "answer": "plausible" if i < plausible else "implausible"}
            for i in range(total)]


def test_wilson_seven_of_ten_matches_the_formula_and_scipy():
    lo, hi = wilson_interval(7, 10)
    assert (lo, hi) == pytest.approx(by_formula(7, 10), abs=1e-12)
    assert (lo, hi) == pytest.approx((0.39678, 0.89221), abs=1e-5)
    ci = sps.binomtest(7, 10).proportion_ci(method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_other_confidence_level_matches_the_formula():
    z90 = float(sps.norm.ppf(0.95))
    p, n = 0.3, 20
    centre = (p + z90**2 / (2 * n)) / (1 + z90**2 / n)
    half = z90 / (1 + z90**2 / n) * math.sqrt(p * (1 - p) / n + z90**2 / (4 * n * n))
    lo, hi = wilson_interval(6, 20, confidence=0.90)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert type(lo) is float and type(hi) is float


def test_wilson_edges():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] > 0
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] < 1
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_goals_are_seed_003s_40_60_100():
    assert [goals_reached(x) for x in (0.0, 0.39, 0.4, 0.59, 0.6, 0.99, 1.0, math.nan)] == [
        "none", "none", "base", "base", "target", "target", "stretch", "none"]


def test_plausibility_rates_fisher_and_naturalness_by_hand():
    got = plausibility_stats(votes("zhang", 7, 10) + votes(None, 9, 10, kind="real")
                             + votes("iizuka", 1, 5, raters=5))
    zhang, iizuka = {r.method: r for r in got.methods}["zhang"], got.methods[0]
    assert iizuka.method == "iizuka"
    assert (zhang.votes, zhang.hits, zhang.raters, zhang.rate) == (10, 7, 2, 0.7)
    assert (zhang.ci_low, zhang.ci_high) == pytest.approx(by_formula(7, 10))
    assert got.control.method == CONTROL and got.control.rate == 0.9
    assert zhang.relative == pytest.approx(0.7 / 0.9)
    # [[7, 3], [9, 1]]: margins 10 / 10 and 16 / 4 of 20; P(top-left = k) is
    # C(10,k) C(10,16-k) / C(20,16) = 210, 1200, 2025, 1200, 210 (/ 4845) for k = 6..10.
    # Two-sided: every table no likelier than the observed one (k = 7): 6, 7, 9, 10.
    assert zhang.p_value == pytest.approx((210 + 1200 + 1200 + 210) / 4845)
    # [[1, 4], [9, 1]]: margins 5 / 10 and 10 / 5 of 15; P(k) = C(5,k) C(10,10-k) / C(15,10)
    # for k = 0..5 is 1, 50, 450, 1200, 1050, 252 (/ 3003); k = 1 and k = 0 are no likelier.
    assert iizuka.p_value == pytest.approx((1 + 50) / 3003)
    assert (zhang.goals_point, zhang.goals_lower) == ("target", "none")
    assert (iizuka.goals_point, iizuka.goals_lower) == ("none", "none")


def test_fisher_textbook_case():
    # [[1, 4], [5, 0]]: margins 5 / 5 and 6 / 4 of 10; P(k) for k = 1..5 is
    # 5, 50, 100, 50, 5 (/ 210); two-sided p = (5 + 5) / 210.
    got = plausibility_stats(votes("m", 1, 5) + votes(None, 5, 5, kind="real"))
    assert got.methods[0].p_value == pytest.approx(10 / 210)


def test_no_control_is_said_not_hidden():
    got = plausibility_stats(votes("m", 3, 4))
    assert got.control is None and math.isnan(got.methods[0].p_value)
    assert any("no votes on real images" in n for n in got.notes)


def test_fooling_rate_and_binomial_test_by_hand():
    trials = [{"rater_id": f"r{i % 3}", "item_id": f"i{i}", "method": "zhang",
               "chose_real": i >= 3} for i in range(10)]
    got = fooling_stats(trials).methods[0]
    assert (got.hits, got.votes, got.rate, got.raters) == (3, 10, 0.3, 3)
    assert (got.ci_low, got.ci_high) == pytest.approx(by_formula(3, 10))
    # P(X <= 3) + P(X >= 7) for X ~ Binomial(10, 1/2) = 2 (1 + 10 + 45 + 120) / 1024.
    assert got.p_value == pytest.approx(352 / 1024)


def test_krippendorff_alpha_by_hand():
    # Unit 1 (y, y, n): pairs y-n and n-y, 2 x 1 / (3 - 1) + 1 x 2 / 2 = 2 disagreeing.
    # Values: y 2, n 4 of 6; alpha = 1 - 5 x 2 / (36 - 4 - 16) = 0.375.
    assert krippendorff_alpha_nominal([["y", "y", "n"], ["n", "n", "n"]]) == pytest.approx(0.375)
    assert krippendorff_alpha_nominal([["y", "n"], ["n", "y"]]) < 0
    assert math.isnan(krippendorff_alpha_nominal([["y"], ["n"]]))  # nothing pairable
    assert math.isnan(krippendorff_alpha_nominal([["y", "y"], ["y", "y"]]))  # one value only


def test_agreement_is_over_items_rated_by_several_raters():
    vs = [{"rater_id": r, "item_id": item, "method": "m", "kind": "colorized", "answer": a}
          for r, item, a in [("r1", "x", "plausible"), ("r2", "x", "plausible"),
                             ("r1", "y", "implausible"), ("r2", "y", "implausible"),
                             ("r1", "z", "plausible")]]
    got = plausibility_stats(vs)
    assert (got.alpha, got.alpha_items, got.raters, got.votes) == (1.0, 2, 2, 5)


def test_summary_rows_and_markdown_name_the_human_metrics():
    study = plausibility_stats(votes("zhang", 7, 10) + votes(None, 9, 10, kind="real"))
    rows = {(r["model"], r["metric"]): r for r in summary_rows(study)}
    zhang = rows[("zhang", "human-plausible")]
    assert float(zhang["value"]) == 0.7 and zhang["n"] == "10"
    assert float(zhang["ci_low"]) == pytest.approx(by_formula(7, 10)[0])
    assert "target" in zhang["note"]
    assert float(rows[("zhang", "human-naturalness")]["value"]) == pytest.approx(7 / 9)
    assert float(rows[("(ground truth)", "human-plausible")]["value"]) == 0.9
    assert ("(all raters)", "human-plausible-alpha") in rows
    text = markdown_section([study])
    assert "| zhang | 10 | 2 | 70.0% [39.7, 89.2] | 0.78 |" in text
    assert "| real images (control) | 10 | 2 | 90.0%" in text
    fooling = fooling_stats([{"rater_id": "r", "item_id": "i", "method": "zhang",
                              "chose_real": False}])
    assert summary_rows(fooling)[0]["metric"] == "human-fooling"
    assert "### Two-alternative forced choice (1 trial, 1 rater)" in markdown_section([fooling])
