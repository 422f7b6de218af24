"""``harness sweep``: one config over several seeds, each seed a run inside a sweep directory.

Layout of ``<output_dir>/<name>-sweep-<timestamp>/``::

    sweep.json           the config file, overrides and seeds, and each seed's run directory
    <name>-<timestamp>[-k]/   a run directory per seed (see :mod:`harness.rundir`)

Every seed's run is prepared first (its directory, split, Lab cache and scoring context;
:func:`harness.run.prepare`), then all the (model x seed) jobs go to the config's
``execution`` backend together (:func:`harness.run.dispatch`), so ``process`` workers or a Ray
cluster stay busy across seeds; each run's table and report follow when every job has ended.
``harness report SWEEP_DIR`` aggregates the runs per protocol like any folder of runs. Started
again with ``--resume SWEEP_DIR``, a sweep keeps its finished runs and resumes the others.
"""

from __future__ import annotations

import contextlib
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
    from harness.run import dispatch, finish, prepare

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

    def record() -> None:
        write_json(sweep_dir / MANIFEST, {"config": str(Path(config).resolve()),
                                          "overrides": list(overrides), "seeds": seeds,
                                          "runs": runs})

    record()
    with contextlib.ExitStack() as stack:
        try:
            prepared = []
            for seed in seeds:
                previous = runs.get(str(seed))
                if previous and RunDir(previous).finished and _all_done(RunDir(previous)):
                    log.info("seed %d: finished in %s, kept", seed, previous)
                    continue
                # The runs keep the config's name: the report groups runs by name and protocol.
                cfg = cfgs[seed].model_copy(update={"output_dir": sweep_dir})
                resume = Path(previous) if previous and RunDir(previous).started else None
                prepared.append(prepare(cfg, registry, resume, False, stack, f"seed {seed}"))
                runs[str(seed)] = str(prepared[-1].run.path)
                record()
            dispatch(prepared)
            code = max((finish(p) for p in prepared), default=ExitCode.OK)
        except KeyboardInterrupt as exc:  # the manifest names every run; --resume continues
            exc.run_dir = sweep_dir
            raise
    return sweep_dir, int(code)


def _all_done(run: RunDir) -> bool:
    return all(m.done for m in run.models())
