"""The ``harness`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from harness import __version__
from harness.errors import ExitCode, HarnessError


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
              help="Continue an interrupted run in this directory; finished models are kept.")
def run(config: Path, overrides: tuple[str, ...], resume_dir: Path | None) -> None:
    """Train and score every model of CONFIG; write the comparison under results/.

    Example: harness run configs/all.yaml --set budget.steps=50
    """
    from harness.config import load_config
    from harness.errors import ConfigError
    from harness.plugins import get_plugin_manager
    from harness.run import execute

    if resume_dir is not None and not (resume_dir / "config.yaml").exists():
        raise ConfigError(f"--resume {resume_dir}: not a run directory (no config.yaml)")
    cfg = load_config(config, list(overrides))
    registry = get_plugin_manager(cfg.plugins)
    for failure in registry.failures:
        click.echo(f"Warning: plugin {failure.provider.describe()} failed to load: "
                   f"{failure.error}", err=True)
    run_dir, code = execute(cfg, registry, resume_dir)
    click.echo((run_dir / "table.md").read_text())
    click.echo(f"Results in {run_dir}")
    sys.exit(int(code))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
def plugins(as_json: bool) -> None:
    """List every colorizer, metric and data source, and plugins that failed to load.

    Example: harness plugins --json
    """
    from harness.plugins import get_plugin_manager

    rows = get_plugin_manager().rows()
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
