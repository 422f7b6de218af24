"""Human-study statistics: plausibility and fooling rates, intervals, tests, rater agreement."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from scipy import stats

#: Seed 003's goals: the share of colorized images rated plausible.
GOALS: tuple[tuple[str, float], ...] = (("base", 0.40), ("target", 0.60), ("stretch", 1.00))

#: Label of the real-image control in every per-method table.
CONTROL = "(real images)"


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``, as plain floats.

    Computed by ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``. Unlike the
    Wald interval it stays inside [0, 1] and is not empty at ``k = 0`` or ``n``. ``n = 0``
    (no votes) gives ``(nan, nan)``.

    >>> [round(x, 4) for x in wilson_interval(7, 10)]
    [0.3968, 0.8922]
    """
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def goals_reached(rate: float) -> str:
    """The highest of seed 003's goals that ``rate`` reaches, or ``"none"``.

    >>> goals_reached(0.62), goals_reached(0.3), goals_reached(1.0)
    ('target', 'none', 'stretch')
    """
    reached = [name for name, level in GOALS if rate == rate and rate >= level - 1e-12]
    return reached[-1] if reached else "none"


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> float:
    """Krippendorff's alpha for nominal ratings; each unit lists the ratings it received.

    Chosen over Fleiss' kappa because every rater sees a different subset of items, so units
    have different numbers of ratings (missing data), which alpha handles and kappa does not.
    Units with fewer than two ratings cannot be paired and are left out. With the coincidence
    matrix ``o[c][k] = sum over units of (pairs of ratings c, k) / (m_u - 1)``, ``n_c`` its
    margins and ``n`` their total::

        alpha = 1 - (n - 1) * sum_{c != k} o[c][k] / sum_{c != k} n_c * n_k

    1 is perfect agreement, 0 is chance; ``nan`` when nothing is pairable or only one value
    was ever given.

    >>> round(krippendorff_alpha_nominal([["y", "y"], ["n", "n"], ["y", "n"]]), 4)
    0.4444
    >>> krippendorff_alpha_nominal([["y", "y", "y"], ["n", "n"], ["y"]])
    1.0
    """
    disagree = 0.0
    margins: Counter = Counter()
    for ratings in units:
        m = len(ratings)
        if m < 2:
            continue
        counts = Counter(ratings)
        for c, n_c in counts.items():
            margins[c] += n_c
            disagree += n_c * (m - n_c) / (m - 1)
    n = sum(margins.values())
    expected = n * n - sum(v * v for v in margins.values())
    if n < 2 or expected == 0:
        return math.nan
    return 1 - (n - 1) * disagree / expected


@dataclass
class MethodStats:
    """One method's (or the control's) votes in one design."""

    method: str
    votes: int
    raters: int
    hits: int  # plausible votes, or (2afc) trials where the colorized image was chosen as real
    rate: float
    ci_low: float
    ci_high: float
    p_value: float = math.nan  # Fisher vs control, or (2afc) binomial test vs 50%
    relative: float = math.nan  # rate / control rate (plausibility only)
    goals_point: str = ""
    goals_lower: str = ""


@dataclass
class StudyStats:
    """The statistics of one design: per-method rows, the control and rater agreement."""

    design: str
    methods: list[MethodStats]
    control: MethodStats | None = None
    alpha: float = math.nan
    alpha_items: int = 0
    raters: int = 0
    votes: int = 0
    notes: list[str] = field(default_factory=list)


def _row(method: str, hits: int, votes: int, raters: int) -> MethodStats:
    lo, hi = wilson_interval(hits, votes)
    return MethodStats(method, votes, raters, hits, hits / votes if votes else math.nan, lo, hi)


def plausibility_stats(votes: Sequence[Mapping]) -> StudyStats:
    """Per-method plausibility rate with Wilson interval, naturalness and Fisher's test.

    ``votes`` are mappings with ``rater_id``, ``item_id``, ``method``, ``kind``
    (``real`` | ``colorized``) and ``answer`` (``plausible`` | ``implausible``). Naturalness is
    the method's rate divided by the real-image control rate; Fisher's exact test (two-sided)
    compares the method's 2x2 table of plausible / implausible votes with the control's.
    """
    groups: dict[str, list[Mapping]] = defaultdict(list)
    for v in votes:
        groups[CONTROL if v["kind"] == "real" else v["method"]].append(v)
    rows = {}
    for method, vs in groups.items():
        hits = sum(v["answer"] == "plausible" for v in vs)
        rows[method] = _row(method, hits, len(vs), len({v["rater_id"] for v in vs}))
    control = rows.pop(CONTROL, None)
    for r in rows.values():
        r.goals_point, r.goals_lower = goals_reached(r.rate), goals_reached(r.ci_low)
        if control is not None:
            if control.rate > 0:
                r.relative = r.rate / control.rate
            table = [[r.hits, r.votes - r.hits], [control.hits, control.votes - control.hits]]
            r.p_value = float(stats.fisher_exact(table).pvalue)
    out = StudyStats("plausibility", sorted(rows.values(), key=lambda r: r.method), control)
    if control is None and rows:
        out.notes.append("no votes on real images: no control rate, naturalness or Fisher test")
    _agreement(out, votes)
    return out


def fooling_stats(votes: Sequence[Mapping]) -> StudyStats:
    """Per-method 2AFC fooling rate (colorized chosen as real) with Wilson interval.

    ``votes`` are mappings with ``rater_id``, ``item_id``, ``method`` and ``chose_real``
    (bool: the rater picked the real image). 50% means raters cannot tell the colorized image
    from the real one; the p-value is a two-sided exact binomial test against 50%.
    """
    groups: dict[str, list[Mapping]] = defaultdict(list)
    for v in votes:
        groups[v["method"]].append(v)
    rows = []
    for method, vs in sorted(groups.items()):
        fooled = sum(not v["chose_real"] for v in vs)
        r = _row(method, fooled, len(vs), len({v["rater_id"] for v in vs}))
        r.p_value = float(stats.binomtest(fooled, len(vs), 0.5).pvalue)
        rows.append(r)
    out = StudyStats("2afc", rows)
    _agreement(out, [{**v, "answer": v["chose_real"]} for v in votes])
    return out


def _agreement(out: StudyStats, votes: Sequence[Mapping]) -> None:
    by_item: dict[str, list] = defaultdict(list)
    for v in votes:
        by_item[v["item_id"]].append(v["answer"])
    out.alpha = krippendorff_alpha_nominal(by_item.values())
    out.alpha_items = sum(len(r) >= 2 for r in by_item.values())
    out.raters = len({v["rater_id"] for v in votes})
    out.votes = len(votes)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _num(x: float) -> str:
    return "" if x != x else repr(float(x))


def summary_rows(study: StudyStats, alpha: float = 0.05) -> list[dict]:
    """Rows for the run's summary.csv (its columns; values as text, empty for missing).

    Plausibility: ``human-plausible`` (rate, Wilson interval, Fisher p vs the real-image
    control in ``p_vs_ref``) and ``human-naturalness`` (rate / control rate) per method, the
    control's ``human-plausible`` under the ground-truth label, and ``human-plausible-alpha``
    (Krippendorff's alpha; ``n`` is the number of items rated twice or more). 2AFC:
    ``human-fooling`` (``p_vs_ref`` is the binomial test against 50%) and
    ``human-fooling-alpha``.
    """
    from harness.metrics.engine import GROUND_TRUTH

    def row(model: str, metric: str, value: float, n: int, lo: float = math.nan,
            hi: float = math.nan, p: float = math.nan, note: str = "",
            direction: str = "higher") -> dict:
        return {"model": model, "metric": metric, "value": _num(value), "ci_low": _num(lo),
                "ci_high": _num(hi), "n": str(n), "p_vs_ref": _num(p),
                "significant": "" if p != p else str(bool(p < alpha)), "direction": direction,
                "unit": "", "granularity": "vote", "status": "ok", "note": note}

    name = "plausible" if study.design == "plausibility" else "fooling"
    rows = []
    for r in study.methods:
        raters = _count(r.raters, "rater")
        if study.design == "plausibility":
            note = (f"{r.hits}/{r.votes} plausible, {raters}; Wilson 95%; p: Fisher vs real "
                    f"images; seed 003 goal reached: {r.goals_point} (95% lower bound: "
                    f"{r.goals_lower})")
        else:
            note = (f"{r.hits}/{r.votes} chose the colorized image as real, {raters}; Wilson "
                    f"95%; 50% = indistinguishable; p: binomial vs 50%")
        rows.append(row(r.method, f"human-{name}", r.rate, r.votes, r.ci_low, r.ci_high,
                        r.p_value, note))
        if study.design == "plausibility" and study.control is not None:
            rows.append(row(r.method, "human-naturalness", r.relative, r.votes,
                            note="plausible rate / real-image plausible rate"))
    if study.control is not None:
        c = study.control
        rows.append(row(GROUND_TRUTH, "human-plausible", c.rate, c.votes, c.ci_low, c.ci_high,
                        note=f"{c.hits}/{c.votes} plausible, {_count(c.raters, 'rater')}; "
                             f"real images (control); Wilson 95%"))
    rows.append(row("(all raters)", f"human-{name}-alpha", study.alpha, study.alpha_items,
                    note=f"Krippendorff's alpha (nominal) over {study.alpha_items} items rated "
                         f"by 2+ of {_count(study.raters, 'rater')}", direction=""))
    return rows


def _pct(r: MethodStats) -> str:
    if r.votes == 0:
        return ""
    return f"{100 * r.rate:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]"


def _p(p: float, alpha: float) -> str:
    if p != p:
        return ""
    return (f"{p:.3g}" if p >= 1e-4 else "<0.0001") + (" *" if p < alpha else "")


def _alpha_line(study: StudyStats) -> str:
    if study.alpha != study.alpha:
        return (f"Rater agreement: not computable ({study.alpha_items} items rated by two or "
                f"more raters, or only one answer given).")
    return (f"Rater agreement: Krippendorff's alpha (nominal) = {study.alpha:.3f} over "
            f"{study.alpha_items} items rated by two or more raters (1 = full agreement, "
            f"0 = chance).")


def _plausibility_table(s: StudyStats, alpha: float) -> list[str]:
    out = [f"### Plausibility ({_count(s.votes, 'vote')}, {_count(s.raters, 'rater')})", "",
           "| method | votes | raters | plausible [95% CI] | ÷ real | Fisher p vs real | "
           "seed 003 goal (rate; 95% lower) |",
           "|---|---|---|---|---|---|---|"]
    for r in s.methods:
        rel = f"{r.relative:.2f}" if r.relative == r.relative else "n/a" if s.control else ""
        out.append(f"| {r.method} | {r.votes} | {r.raters} | {_pct(r)} | {rel} | "
                   f"{_p(r.p_value, alpha)} | {r.goals_point}; {r.goals_lower} |")
    if s.control is not None:
        c = s.control
        out.append(f"| real images (control) | {c.votes} | {c.raters} | {_pct(c)} | 1 |  |  |")
    goals = ", ".join(f"{name} {100 * level:.0f}%" for name, level in GOALS)
    out += ["", f"Share of votes saying *plausible*, Wilson 95% intervals. ÷ real: naturalness, "
                f"the rate divided by the real-image rate. * Fisher's exact test against real "
                f"images, p < {alpha}. Seed 003 goals ({goals} of colorized images judged "
                f"plausible): the highest goal the rate reaches; then the one its 95% lower "
                f"bound reaches."]
    return out


def _fooling_table(s: StudyStats, alpha: float) -> list[str]:
    out = [f"### Two-alternative forced choice ({_count(s.votes, 'trial')}, "
           f"{_count(s.raters, 'rater')})", "",
           "| method | trials | raters | fooling rate [95% CI] | p vs 50% |",
           "|---|---|---|---|---|"]
    for r in s.methods:
        out.append(f"| {r.method} | {r.votes} | {r.raters} | {_pct(r)} | "
                   f"{_p(r.p_value, alpha)} |")
    out += ["", f"Fooling rate: share of trials where the colorized image was chosen as the "
                f"real one (50% = indistinguishable), Wilson 95% intervals. * exact binomial "
                f"test against 50%, p < {alpha}."]
    return out


def markdown_section(studies: Sequence[StudyStats], alpha: float = 0.05) -> str:
    """The human-study section of table.md: one table per design, with its legend."""
    if not studies:
        return ""
    out = ["## Human study", ""]
    for s in studies:
        table = _plausibility_table if s.design == "plausibility" else _fooling_table
        out += [*table(s, alpha), "", _alpha_line(s), ""]
    return "\n".join(out)
