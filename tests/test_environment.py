"""environment.json's git revision comes from the harness source tree, not the current folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import environment
from harness.environment import git_revision

ROOT = Path(__file__).resolve().parents[1]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_revision_is_the_source_trees_from_any_cwd(tmp_path, monkeypatch):
    try:
        expected = _git(ROOT, "rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the tests do not run from a git clone")
    monkeypatch.chdir(tmp_path)
    assert git_revision().split("-")[0] == expected


def test_only_a_repositorys_top_level_counts(tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("a")
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_revision(repo) == head
    assert git_revision(repo / "sub") is None  # e.g. a venv's site-packages inside a clone
    (repo / "f.txt").write_text("b")
    assert git_revision(repo) == f"{head}-dirty"


class _Dist:
    def __init__(self, text: str | None):
        self.text = text

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return self.text


def test_outside_a_clone_the_commit_pip_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(environment, "__file__", str(tmp_path / "harness" / "environment.py"))
    vcs = {"url": "https://example.org/h.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}
    monkeypatch.setattr(environment.md, "distribution", lambda name: _Dist(json.dumps(vcs)))
    assert git_revision() == "abc123"
    local = {"url": "file:///somewhere", "dir_info": {}}
    monkeypatch.setattr(environment.md, "distribution", lambda name: _Dist(json.dumps(local)))
    assert git_revision() is None
