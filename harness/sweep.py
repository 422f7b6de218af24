"""``harness sweep``: one config over several seeds, each seed a run inside a sweep directory.

Layout of ``<output_dir>/<name>-sweep-<timestamp>/``::

    sweep.json           the config file, overrides and seeds, and each seed's run directory
    <name>-<timestamp>[-k]/   a run directory per seed (see :mod:`harness.rundir`)

Each seed's run sends its (model x seed) jobs to the config's ``execution`` backend, so the
workers of a ``process`` or ``ray`` sweep train that seed's models side by side; the seeds
follow one another, since each has its own split and data. ``harness report SWEEP_DIR``
aggregates the runs per protocol like any folder of runs. Started again with ``--resume
SWEEP_DIR``, a sweep keeps its finished runs and resumes the others.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from harness.atomic import write_json
from harness.config import load_config
from harness.errors import ConfigError, ExitCode
from harness.rundir import RunDir, read_json

log = logging.getLogger("harness")

MANIFEST = "sweep.json"


def parse_seeds(text: str) -> list[int]:
    """``0-4`` -> [0, 1, 2, 3, 4]; ``1,5,9`` and mixes such as ``0-2,7`` too."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ConfigError(f"--seeds {text!r}: expected seeds such as 0-4 or 1,5,9")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise ConfigError(f"--seeds {text!r}: {part.strip()} counts down; write {high}-{low}")
        seeds.extend(range(low, high + 1))
    dupes = sorted({s for s in seeds if seeds.count(s) > 1})
    if dupes:
        raise ConfigError(f"--seeds {text!r}: seed {dupes[0]} given twice")
    return seeds


def sweep(config: Path, seeds: list[int], overrides: list[str],
          sweep_dir: Path | None = None) -> tuple[Path, int]:
    """Run ``config`` once per seed inside a sweep directory (new, or ``sweep_dir`` to
    resume); return the directory and the exit code (the worst of the runs')."""
    from harness.data.loader import check_source
    from harness.plugins import load_registry
    from harness.run import execute

    cfgs = {seed: load_config(config, [*overrides, f"seed={seed}"]) for seed in seeds}
    first = cfgs[seeds[0]]
    if sweep_dir is None:
        sweep_dir = RunDir.create(first.output_dir, f"{first.name}-sweep").path
        runs: dict[str, str] = {}
    else:
        manifest = read_json(sweep_dir / MANIFEST)
        if not manifest:
            raise ConfigError(f"--resume {sweep_dir}: no readable {MANIFEST}; not a sweep")
        if manifest.get("overrides") != list(overrides):
            raise ConfigError(f"--resume {sweep_dir}: the sweep ran with --set "
                              f"{manifest.get('overrides')}, not {list(overrides)}")
        runs = manifest.get("runs", {})
    first.threads.apply()
    registry = load_registry(first.plugins, config_dir=first.plugin_dir)
    check_source(first.data, registry)
    code = ExitCode.OK

    def record() -> None:
        write_json(sweep_dir / MANIFEST, {"config": str(Path(config).resolve()),
                                          "overrides": list(overrides), "seeds": seeds,
                                          "runs": runs})

    record()
    for seed in seeds:
        # The runs keep the config's name: the report groups runs by name and protocol.
        cfg = cfgs[seed].model_copy(update={"output_dir": sweep_dir})
        previous = runs.get(str(seed))
        if previous and RunDir(previous).finished and _all_done(RunDir(previous)):
            log.info("seed %d: finished in %s, kept", seed, previous)
            continue
        log.info("seed %d of %s", seed, ", ".join(map(str, seeds)))
        try:
            run_dir, run_code = execute(cfg, registry,
                                        Path(previous) if previous and RunDir(previous).started
                                        else None)
        except KeyboardInterrupt as exc:  # remember the run, so --resume continues it
            if getattr(exc, "run_dir", None):
                runs[str(seed)] = str(exc.run_dir)
                record()
            exc.run_dir = sweep_dir
            raise
        runs[str(seed)] = str(run_dir)
        record()
        code = max(code, run_code)
    return sweep_dir, int(code)


def _all_done(run: RunDir) -> bool:
    return all(m.done for m in run.models())
