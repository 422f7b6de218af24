"""The ``harness`` command line."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import click

from harness import __version__
from harness.errors import ExitCode, HarnessError
from harness.study.cli import study


def _fail(exc: HarnessError) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(int(exc.exit_code))


class _Group(click.Group):
    """Turns user errors into one line and an exit code, with no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("Interrupted; rerun with --resume RUN_DIR to continue.", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="harness")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Train, colorize and score colorization methods under one protocol."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)


@main.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set data.size=32 --set budget.steps=5.")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Continue an interrupted run in this directory; finished models are kept. "
                   "Refused when the config or data differ from the run's.")
@click.option("--allow-changes", is_flag=True,
              help="With --resume: accept config changes that cannot alter results "
                   "(name, report.*, threads.*, execution.*, data.workers, data.cache_dir, "
                   "output_dir).")
def run(config: Path, overrides: tuple[str, ...], resume_dir: Path | None,
        allow_changes: bool) -> None:
    """Train and score every model of CONFIG; write the comparison under results/.

    Example: harness run configs/all.yaml --set budget.steps=50
    """
    from harness.config import load_config
    from harness.data.loader import check_source
    from harness.errors import ConfigError
    from harness.plugins import load_registry
    from harness.run import execute
    from harness.rundir import RunDir

    if resume_dir is not None and not RunDir(resume_dir).started:
        raise ConfigError(f"--resume {resume_dir}: not a run directory (no config.yaml)")
    cfg = load_config(config, list(overrides))
    cfg.threads.apply()  # before the plugins load torch: OpenMP reads its policy once
    registry = load_registry(cfg.plugins, config_dir=cfg.plugin_dir)
    for failure in registry.failures:
        click.echo(f"Warning: plugin {failure.provider.describe()} failed to load: "
                   f"{failure.error}", err=True)
    check_source(cfg.data, registry)  # before the run directory exists
    try:
        run_dir, code = execute(cfg, registry, resume_dir, allow_changes)
    except KeyboardInterrupt as exc:
        where = getattr(exc, "run_dir", None)
        again = shlex.join(["harness", "run", str(config),
                            *(x for o in overrides for x in ("--set", o))])
        click.echo(f"Interrupted; continue with: {again} --resume {where}" if where else
                   "Interrupted before the run directory was made; nothing to resume.",
                   err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    click.echo(_compact(RunDir(run_dir), cfg))
    click.echo(f"Results in {run_dir} (every metric with intervals: "
               f"{RunDir(run_dir).table_file})")
    sys.exit(int(code))


@main.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--seeds", required=True, metavar="SEEDS",
              help="Seeds to run, e.g. 0-4 or 1,5,9.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key for every seed, e.g. --set execution.workers=4.")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Continue a sweep in this directory: finished runs are kept.")
def sweep(config: Path, seeds: str, overrides: tuple[str, ...], resume_dir: Path | None) -> None:
    """Run CONFIG once per seed, each a run inside one sweep directory.

    Aggregate it with harness report SWEEP_DIR.

    \b
    Example: harness sweep configs/all.yaml --seeds 0-4 --set execution.workers=4
    """
    from harness.sweep import parse_seeds
    from harness.sweep import sweep as run_sweep

    try:
        sweep_dir, code = run_sweep(config, parse_seeds(seeds), list(overrides), resume_dir)
    except KeyboardInterrupt as exc:
        where = getattr(exc, "run_dir", None)
        again = shlex.join(["harness", "sweep", str(config), "--seeds", seeds,
                            *(x for o in overrides for x in ("--set", o))])
        click.echo(f"Interrupted; continue with: {again} --resume {where}" if where else
                   "Interrupted before the sweep directory was made.", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    click.echo(f"Sweep in {sweep_dir}; aggregate it with: harness report {sweep_dir}")
    sys.exit(code)


def _compact(run, cfg) -> str:
    """The headline table of a finished run (see :mod:`harness.report.terminal`)."""
    import pandas as pd

    from harness.report.collect import normalise_summary
    from harness.report.terminal import compact_table

    summary = normalise_summary(pd.read_csv(run.summary_file))
    models = [m for m in dict.fromkeys(summary["model"]) if m and not m.startswith("(")]
    automatic = [m for m in models if run.model(m).done
                 and not (summary.loc[summary["model"] == m, "assisted"] != "").any()]
    reference = cfg.report.reference or (automatic[0] if automatic else None)
    return f"{cfg.name}\n\n" + compact_table(summary, models, cfg.report.headline, reference)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
def plugins(as_json: bool) -> None:
    """List every colorizer, metric and data source, and plugins that failed to load.

    Example: harness plugins --json
    """
    from harness.plugins import load_registry

    rows = load_registry().rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    widths = {k: max([len(k)] + [len(str(r[k] or "")) for r in rows])
              for k in ("name", "kind", "framework")}
    for r in rows:
        if r["error"]:
            click.echo(f"FAILED  {r['name']} ({r['distribution']} {r['version']}): {r['error']}")
            continue
        click.echo(f"{r['name']:<{widths['name']}}  {r['kind']:<{widths['kind']}}  "
                   f"{r['framework']:<{widths['framework']}}  "
                   f"{r['distribution']} {r['version']}  {r['summary']}")



@main.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...",
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--a", "model_a", required=True, help="First model (A in A - B).")
@click.option("--b", "model_b", required=True, help="Second model.")
@click.option("--metric", "names", multiple=True, help="Only these metrics; repeatable.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the rows as CSV here.")
def compare(run_dirs: tuple[Path, ...], model_a: str, model_b: str, names: tuple[str, ...],
            csv_path: Path | None) -> None:
    """Paired difference of two models on each run's test images, with intervals and p.

    Per metric: A - B with a 95% paired-bootstrap interval and a Wilcoxon (per-image
    metrics) or bootstrap (dataset-level metrics) p-value; over several runs, how many favour
    each model. A folder holding runs stands for every run in it.

    \b
    Example:
      harness compare results/ --a zhang-rebalanced --b zhang --metric colorfulness
    """
    from harness.plugins import load_registry
    from harness.report.collect import find_runs, load_run
    from harness.report.compare import compare_runs, describe

    runs = [load_run(p) for p in find_runs(run_dirs)]
    for run in runs:
        for model in (model_a, model_b):
            if run.statuses.get(model, {}).get("status") != "done":
                raise HarnessError(f"{run.path}: model {model!r} did not finish there (models: "
                                   f"{', '.join(run.trained)})")
    registry = load_registry()
    wanted = names or registry.names("metric")
    metrics = [registry.get("metric", n).load() for n in wanted]
    frame = compare_runs([r.path for r in runs], model_a, model_b, metrics)
    click.echo(describe(frame), nl=False)
    if csv_path is not None:
        run_of = next((r.path for r in runs if r.path.resolve() in csv_path.resolve().parents),
                      None)
        if run_of is not None and csv_path.exists():
            raise HarnessError(f"--csv {csv_path}: would overwrite a file of the run {run_of}; "
                               f"choose another path")
        frame.to_csv(csv_path, index=False)
        click.echo(f"wrote {csv_path}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...",
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "formats", multiple=True, default=("html", "md"), show_default=True,
              type=click.Choice(["html", "md", "csv", "latex"]),
              help="Output format; repeat for several.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Output folder [default: the run's folder for one run; "
                   "<their parent>/report-<timestamp> for several].")
@click.option("--samples", "max_samples", default=24, show_default=True, type=click.IntRange(0),
              help="Test images per run in the sample grid (pages of four).")
@click.option("--title", help="Report title [default: from the configs' names].")
def report(run_dirs: tuple[Path, ...], formats: tuple[str, ...], out: Path | None,
           max_samples: int, title: str | None) -> None:
    """Compare finished runs: HTML, Markdown, CSV or LaTeX tables and figures.

    Several runs (e.g. seeds, or jobs from other machines) give one row per run and model and
    a table of each model's mean and spread across runs. A folder holding runs (results/)
    stands for every run in it.

    \b
    Examples:
      harness report results/all-20261121-101500
      harness report results/all-2026112*-* --out merged/ --format html --format latex
    """
    from harness.report.build import build_report

    written = build_report(run_dirs, out, formats=formats, max_samples=max_samples, title=title)
    main_files = [p for p in written if p.parent.name != "figures"]
    for path in main_files:
        click.echo(f"wrote {path}")
    figures = len(written) - len(main_files)
    if figures:
        click.echo(f"wrote {figures} figure(s) in {main_files[0].parent / 'figures'}")


@main.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...",
                type=click.Path(path_type=Path))
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="A finished run directory holding the trained model.")
@click.option("--model", required=True, help="The model's name in that run.")
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the colorized images (created).")
@click.option("--format", "fmt", default="png", show_default=True,
              type=click.Choice(["png", "jpeg"]),
              help="png: lossless (Up filter, zlib level 1; about 16% larger than level 6); "
                   "jpeg: quality 95, 4:4:4 chroma, typically a quarter of the size.")
def colorize(inputs: tuple[Path, ...], run_dir: Path, model: str, out: Path, fmt: str) -> None:
    """Colorize your own photos or folders (recursive) with a trained model, at full resolution.

    Each INPUT's luminance is colorized (colour photos too) and written as OUT/<name>.png
    (.jpg with --format jpeg); folders keep their sub-folder structure. Unreadable files, and
    photos over the run's data.max_pixels, are reported and skipped; an OUT that would
    overwrite an input is refused. Exit 0 when at least one image was written.

    \b
    Example:
      harness colorize --run results/all-20261121-101500 --model zhang photos/ --out col/
    """
    from harness.colorize import FORMATS, colorize_files, find_inputs, refuse_overwrites
    from harness.config import load_config
    from harness.errors import ConfigError
    from harness.progress import Progress
    from harness.run import load_trained
    from harness.rundir import RunDir

    run = RunDir(run_dir)
    if not run.started:
        raise ConfigError(f"--run {run_dir}: not a run directory (no config.yaml)")
    data = load_config(run.config_file).data
    size = data.size
    jobs = find_inputs(inputs, out, FORMATS[fmt].suffix)
    if not jobs:
        raise HarnessError(f"no image files in {', '.join(map(str, inputs))} (looked for "
                           f"image suffixes, recursively)")
    refuse_overwrites(jobs, out)
    colorizer = load_trained(run_dir, model)
    with Progress(len(jobs), f"colorizing with {model}", unit="img") as bar:
        colorize_files(colorizer, size, jobs, out, progress=bar.update, fmt=fmt,
                       max_pixels=data.max_pixels)
    failed = [j for j in jobs if j.error]
    for job in failed:
        click.echo(f"could not colorize {job.source}: {job.error}", err=True)
    done = len(jobs) - len(failed)
    click.echo(f"colorized {done} of {len(jobs)} image(s) with {model} ({size} px model input) "
               f"into {out}" + (f"; {len(failed)} could not be read" if failed else ""))
    sys.exit(int(ExitCode.OK if done else ExitCode.MODEL_FAILED))


main.add_command(study)
