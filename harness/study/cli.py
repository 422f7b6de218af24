"""``harness study``: export a rating kit from a finished run, import the votes it returns."""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import HarnessError


@click.group()
def study() -> None:
    """Human study: rate colorized against real images in a browser, then score the votes."""


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@study.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Kit folder to create (outside RUN_DIR/study, where the manifest goes).")
@click.option("--design", type=click.Choice(["plausibility", "2afc"]), default="plausibility",
              show_default=True,
              help="plausibility: one image, plausible or not; 2afc: which of a real / "
                   "colorized pair is real.")
@click.option("--raters", type=click.IntRange(min=1), default=10, show_default=True,
              help="Number of rater slots, each with its own item list.")
@click.option("--colorized", type=click.IntRange(min=0), default=10, show_default=True,
              help="Colorized images (2afc: pairs) per rater, balanced over the models.")
@click.option("--real", type=click.IntRange(min=0), default=10, show_default=True,
              help="Real images per rater (the control; not used by 2afc).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the item lists, their order and the 2afc sides.")
@click.option("--models", multiple=True, metavar="NAME[,NAME]",
              help="Models to include (repeat or comma-separate); default every finished one.")
def export(run_dir: Path, out: Path, design: str, raters: int, colorized: int, real: int,
           seed: int, models: tuple[str, ...]) -> None:
    """Write a static rating kit for RUN_DIR's test images to --out.

    Example: harness study export results/all-20261121-101500 --out study-kit --raters 8
    """
    from harness.study.kit import export_kit

    res = export_kit(run_dir, out, design=design, raters=raters, colorized=colorized,
                     real=real, seed=seed, models=_split(models) or None)
    for note in res.notes:
        click.echo(f"Note: {note}", err=True)
    per_rater = (f"{res.per_rater[0]}" if len(set(res.per_rater)) == 1
                 else f"{min(res.per_rater)}-{max(res.per_rater)}")
    index = res.out.resolve() / "index.html"
    click.echo(f"Kit: {res.out} ({res.design}, {len(res.per_rater)} raters x {per_rater} "
               f"items, {res.images} items with images; models: {', '.join(res.models)})")
    click.echo(f"Manifest (for you only; do not send it): {res.manifest}")
    click.echo(f"Try it: {index.as_uri()}#rater=1")
    click.echo(f"Send rater k the folder (or its address on a static server) with "
               f"index.html#rater=k, k = 1..{len(res.per_rater)}; then "
               f"harness study import {run_dir} VOTES.csv ...")


@study.command(name="import")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def import_(run_dir: Path, files: tuple[Path, ...]) -> None:
    """Validate vote FILES (CSV or JSON) and add them to RUN_DIR's study results.

    Needs columns rater_id, item_id, answer (plausible | implausible; 2afc: a | b).
    Bad rows are reported by file and line; good rows are kept. A file that cannot be used
    at all is reported with the reason and the others are imported; the exit status is then
    2. Re-importing a file changes nothing; with no FILES the stored votes are merged into
    the tables again.
    Example: harness study import results/all-20261121-101500 votes-*.csv
    """
    from harness.study.stats import markdown_section
    from harness.study.votes import import_votes

    report = import_votes(run_dir, list(files))
    for f in report.files:
        if f.unusable:
            click.echo(f"not imported: {f.unusable}")
            continue
        parts = [f"{f.read} rows read", f"{f.kept} kept ({f.new} new)",
                 f"{len(f.rejected)} rejected"]
        if f.blank:
            parts.append(f"{f.blank} blank line{'s' if f.blank > 1 else ''} skipped")
        click.echo(f"{f.file}: {', '.join(parts)}")
        for problem in sorted(f.notes + f.rejected, key=lambda p: p.line):
            click.echo(f"  {problem}")
    if files and report.kept == 0:
        raise HarnessError(f"no vote kept from {len(report.files)} file(s); nothing imported")
    if not report.stored:
        raise HarnessError(f"{run_dir}: no votes imported yet; give the vote files to import")
    click.echo(f"Stored {report.stored} votes from {report.raters} raters in "
               f"{report.votes_path}; summary.csv and table.md updated.\n")
    click.echo(markdown_section(report.studies))
    if report.unusable:
        raise HarnessError(f"{len(report.unusable)} of {len(report.files)} file(s) could not be "
                           f"imported (listed above as 'not imported'); the votes of the others "
                           f"are stored")
