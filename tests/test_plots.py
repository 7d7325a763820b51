"""`explainft plots`: DVC's plots (show and diff) rendered to PNG with no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from explainft.cli import main as cli
from explainft.plots import PlotsError, plots_json, render

DVC = str(Path(sys.executable).with_name("dvc"))
PNG = b"\x89PNG\r\n\x1a\n"


def sh(cwd: Path, *cmd: str) -> None:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    subprocess.run(list(cmd), cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits of a project with a CSV plot declared in dvc.yaml (x: words, y: mse) and a PNG plot."""
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, DVC, "init", "-q")
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n  - curve.csv:\n      x: words\n      y: mse\n      title: length\n  - figure.png\n"
    )
    (tmp_path / "curve.csv").write_text("words,mse\n0,0.05\n8,0.04\n")
    (tmp_path / "figure.png").write_bytes(PNG + b"first")
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "commit", "-qm", "one")
    (tmp_path / "curve.csv").write_text("words,mse\n0,0.05\n8,0.03\n16,0.02\n")
    (tmp_path / "figure.png").write_bytes(PNG + b"second")
    sh(tmp_path, "git", "commit", "-qam", "two")
    return tmp_path


def test_diff_of_two_revisions_renders_every_plot_offline(repo: Path, tmp_path: Path):
    out = tmp_path / "png"
    data = plots_json(["HEAD~1", "HEAD"], [], repo, out)
    vega = data["data"]["curve.csv"][0]
    values = vega["content"]["data"]["values"]
    assert {v["rev"] for v in values} == {"HEAD~1", "HEAD"} and len(values) == 5  # both revisions' rows inlined
    files = render(data, out, root=repo)
    names = sorted(p.name for p in files)
    assert "curve.csv.png" in names
    assert (out / "curve.csv.png").read_bytes()[:8] == PNG
    images = sorted(p for p in files if p.name.endswith("figure.png"))
    assert [p.read_bytes()[8:] for p in images] == [b"second", b"first"]  # HEAD, HEAD~1: each revision's own file
    index = (out / "index.md").read_text()
    assert "[curve.csv](curve.csv.png)" in index and "HEAD~1, HEAD" in index


def test_cli_show_and_a_bad_revision(repo: Path, tmp_path: Path):
    runner = CliRunner()
    r = runner.invoke(cli, ["plots", "--root", str(repo), "-o", str(tmp_path / "show"), "--targets", "curve.csv"])
    assert r.exit_code == 0, r.output
    assert "plots ->" in r.output and (tmp_path / "show" / "curve.csv.png").is_file()
    bad = runner.invoke(cli, ["plots", "nosuchrev", "--root", str(repo), "-o", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "nosuchrev" in bad.output
    with pytest.raises(PlotsError, match="plots diff"):
        plots_json(["nosuchrev"], [], repo, tmp_path / "bad2")
