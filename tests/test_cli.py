"""The command line as a user meets it: exit codes, one-paragraph errors, no tracebacks."""

from __future__ import annotations

import json

from harness.errors import ExitCode


def test_typo_exits_2_with_one_paragraph(tmp_path, cli):
    config = tmp_path / "typo.yaml"
    config.write_text("name: t\nmodels: [{plugin: gray}]\nbugdet: {steps: 3}\n")
    out = cli("run", str(config))
    assert out.returncode == ExitCode.USAGE
    assert "Traceback" not in out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert str(config) in error[0] and "'bugdet'" in error[0] and "'budget'" in error[0]


def test_missing_data_folder_is_named(tmp_path, cli):
    config = tmp_path / "folder.yaml"
    config.write_text(f"models: [{{plugin: gray}}]\n"
                      f"data: {{source: folder, path: {tmp_path}/nope}}\n"
                      f"output_dir: {tmp_path}/results\n")
    out = cli("run", str(config))
    assert out.returncode == ExitCode.USAGE and "Traceback" not in out.stderr
    assert f"{tmp_path}/nope does not exist" in out.stderr


def test_smoke_config_with_overrides_prints_table(tmp_path, cli):
    out = cli("run", "configs/smoke.yaml", "--set", f"output_dir={tmp_path}",
              "--set", "data.size=16", "--set", "data.eval_size=16")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(x.startswith("gray (ref) ") for x in lines)
    assert any(x.startswith("mean-prior ") for x in lines)
    table = lines[:next(i for i, x in enumerate(lines) if x.startswith("Results in"))]
    assert max(len(x) for x in table) <= 100
    run_dir = next(tmp_path.iterdir())
    assert "size: 16" in (run_dir / "config.yaml").read_text()


def test_resume_needs_a_run_dir(tmp_path, cli):
    out = cli("run", "configs/smoke.yaml", "--resume", str(tmp_path))
    assert out.returncode == ExitCode.USAGE and "not a run directory" in out.stderr


def test_plugins_lists_builtins_with_distribution(harness_cli):
    out = harness_cli("plugins")
    assert out.exit_code == 0
    line = next(x for x in out.stdout.splitlines() if x.startswith("mean-prior "))
    assert "colorizer" in line and "colorization-harness" in line
    rows = json.loads(harness_cli("plugins", "--json").stdout)
    assert {"demo", "folder", "psnr", "gray"} <= {r["name"] for r in rows}


def test_bad_input_exits_2_naming_it_before_any_run_directory(tmp_path, cli):
    """Binary config, out-of-range seed, oversized image size, unknown source: exit 2, one
    paragraph naming the file or key, and no stub run directory left behind."""
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    config = tmp_path / "ok.yaml"
    config.write_text(f"models: [{{plugin: gray}}]\noutput_dir: {tmp_path}/results\n")
    cases = [((str(binary),), f"{binary}: not a text file"),
             ((str(config), "--set", "seed=-1"), "'seed' = -1 is invalid: expected an integer "
                                                 "from 0 to 4294967295"),
             ((str(config), "--set", "data.size=100000"),
              "'data.size' = 100000 is invalid: must be <= 2048: the Lab cache"),
             ((str(config), "--set", "data.source=nope"),
              "data.source: unknown dataset 'nope'; available:")]
    for args, message in cases:
        out = cli("run", *args)
        assert out.returncode == ExitCode.USAGE, out.stderr
        assert "Traceback" not in out.stderr and message in out.stderr, out.stderr
        assert not (tmp_path / "results").exists()
