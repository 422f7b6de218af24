"""``table.tex``: the comparison as booktabs tables, ready to ``\\input`` into a paper.

Needs ``\\usepackage{booktabs}`` in the preamble. Values are shown as ``value\\,[lo, hi]`` (the 95%
bootstrap interval), the best value of each run in bold, ``$^{*}$`` where a model differs
significantly from the run's reference; across runs as ``mean $\\pm$ std`` with a column for the
number of runs.
"""

from __future__ import annotations

import math
import re

from harness import __version__, assistance
from harness.report.tables import Cell, Table, fmt

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
            "±": r"$\pm$", "<": r"$<$", ">": r"$>$", "†": r"\dag{}", "‡": r"\ddag{}"}
_SPECIAL_RE = re.compile("|".join(re.escape(k) for k in _SPECIAL))
ARROWS = {"higher": r" $\uparrow$", "lower": r" $\downarrow$"}


def escape(text: str) -> str:
    r"""Text safe inside a LaTeX document.

    >>> escape("auc_rebalanced 5% & more")
    'auc\\_rebalanced 5\\% \\& more'
    """
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], str(text))


def number(x: float) -> str:
    r"""Four significant digits; powers of ten in math mode.

    >>> number(1.2e-05), number(20.256)
    ('$1.2\\times10^{-5}$', '20.26')
    """
    text = fmt(x)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"${mantissa}\\times10^{{{int(exponent)}}}$"
    return text


def cell_latex(cell: Cell | None, table: Table) -> str:
    if cell is None or cell.empty:
        return ""
    if cell.unavailable:
        return "n/a"
    text = number(cell.value)
    if cell.best:
        text = f"\\textbf{{{text}}}"
    if table.kind == "aggregate":
        return text + ("" if math.isnan(cell.std) else f" $\\pm$ {number(cell.std)}")
    if not (math.isnan(cell.low) or math.isnan(cell.high)):
        text += f"\\,[{number(cell.low)}, {number(cell.high)}]"
    if cell.significant:
        text += "$^{*}$"
    return text


def _caption(table: Table, config: str) -> str:
    n = sorted(set(table.n_images))
    images = (f" on {n[0]} test images" if len(n) == 1
              else f" on {'/'.join(map(str, n))} test images" if n else "")
    arrows = r"$\uparrow$/$\downarrow$: higher/lower is better."
    if table.kind == "aggregate":
        text = (f"Comparison across runs of \\texttt{{{escape(config)}}}: mean $\\pm$ standard "
                f"deviation over the runs (seeds); best mean in bold; {arrows}")
    else:
        text = (f"Comparison{images} (config \\texttt{{{escape(config)}}}). Means with 95\\% "
                f"bootstrap intervals; best in bold; {arrows}")
        refs = sorted(set(table.references.values()))
        if refs:
            names = ", ".join(f"\\texttt{{{escape(r)}}}" for r in refs)
            text += (f" $^{{*}}$: differs from {names} (Wilcoxon signed-rank test on per-image "
                     f"values, Holm-corrected, $p<{table.alpha}$).")
    for line in assistance.footnotes(r.assisted for r in table.rows):
        text += f" {escape(line)}"
    for metric, why in table.unavailable.items():
        text += f" \\texttt{{{escape(metric)}}} n/a: {escape(why)}."
    return text


def table_latex(table: Table, config: str, label: str) -> str:
    """One ``table`` environment with a booktabs ``tabular``, caption and label."""
    runs_col = table.kind == "aggregate"
    keys = list(table.key_names) + (["runs"] if runs_col else [])
    spec = "l" * len(keys) + "c" * len(table.columns)
    header = [escape(k) for k in keys] + [
        escape(c.metric) + ARROWS.get(c.direction, "") + (f" ({escape(c.unit)})" if c.unit else "")
        for c in table.columns]
    lines = [f"% Made by colorization-harness {__version__}; needs \\usepackage{{booktabs}}.",
             "\\begin{table}[t]", "  \\centering", "  \\small",
             f"  \\begin{{tabular}}{{{spec}}}", "    \\toprule",
             "    " + " & ".join(header) + r" \\", "    \\midrule"]
    previous = None
    for row in table.rows:
        if len(row.keys) > 1 and previous is not None and row.keys[0] != previous:
            lines.append("    \\midrule")
        previous = row.keys[0]
        keys = [escape(k) for k in row.keys]
        keys[-1] += f" {escape(row.mark)}" if row.mark else ""
        keys[-1] += " (ref.)" if row.reference else ""
        if runs_col:
            keys.append(str(max((c.n_runs for c in row.cells.values()), default=0)))
        if row.failed:
            reason = row.failed if len(row.failed) <= 80 else row.failed[:77] + "..."
            cells = [f"\\multicolumn{{{len(table.columns)}}}{{l}}{{failed: {escape(reason)}}}"]
        else:
            cells = [cell_latex(row.cells.get(c.metric), table) for c in table.columns]
        lines.append("    " + " & ".join(keys + cells) + r" \\")
    lines += ["    \\bottomrule", "  \\end{tabular}",
              f"  \\caption{{{_caption(table, config)}}}",
              f"  \\label{{{label}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
