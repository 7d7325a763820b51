"""A fresh clone's `dvc repro` reproduces every output of a committed run byte for byte.

The small pipeline of tests/test_pipeline.py runs twice: once in a git repository whose inputs are committed
(then its outputs), once in a `git clone` of that, which has no DVC cache and no data/ or models/. Every
output's hash in the clone's dvc.lock must equal the original's, and git and `dvc metrics diff` must see
nothing changed: no output may hold a timing, a date, a host name, a process id or an absolute path (the
clone lives at another path), and the report's provenance must name the same commit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_pipeline import ALL, project, ran, run  # noqa: F401 (project is a fixture)

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=explainft-test", "-c", "user.email=test@example.com"]
REPRO_TIMEOUT = 900  # seconds for one whole run of the small pipeline (about 2 minutes on two CPU cores)


def outs(lock_path: Path) -> dict[str, dict[str, str | None]]:
    """{stage: {output path: md5}} from a dvc.lock."""
    stages = yaml.safe_load(lock_path.read_text())["stages"]
    return {name: {o["path"]: o.get("md5") for o in entry.get("outs", [])} for name, entry in stages.items()}


def test_a_fresh_clone_reproduces_every_output(project: Path, tmp_path: Path):
    shutil.copy(ROOT / ".gitignore", project / ".gitignore")  # the project's: data/, models/, timings/, caches
    run(GIT + ["add", "-A"], project)
    run(GIT + ["commit", "-q", "-m", "inputs"], project)
    code_commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()

    first = run(["dvc", "repro"], project, timeout=REPRO_TIMEOUT)
    assert ran(first.stdout) == ALL
    # what git is left to commit: the outputs it tracks, and nothing DVC caches or any timing
    left = {
        line[3:] for line in run(["git", "status", "--porcelain", "--untracked-files=all"], project).stdout.splitlines()
    }
    assert left and {p.split("/")[0] for p in left} == {"dvc.lock", "metrics", "plots", "reports"}, sorted(left)
    assert (project / "timings/train/mixed/on_topic/none/seed_0.json").is_file()
    assert (project / "timings/analysis.json").is_file() and (project / "timings/student.json").is_file()
    run(GIT + ["add", "-A"], project)
    run(GIT + ["commit", "-q", "-m", "outputs"], project)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "data").exists() and not (clone / "models").exists()
    # forced: the stages whose outputs are all committed to git (cache: false) would otherwise be skipped,
    # and their outputs left unchecked
    second = run(["dvc", "repro", "--force"], clone, timeout=REPRO_TIMEOUT)
    assert ran(second.stdout) == ALL  # (a)

    before, after = outs(project / "dvc.lock"), outs(clone / "dvc.lock")  # (b)
    assert set(after) == set(before) == ALL
    differ = [
        f"{stage}: {path} {before[stage].get(path)} -> {md5}"
        for stage in sorted(after)
        for path, md5 in sorted(after[stage].items())
        if before[stage].get(path) != md5
    ]
    assert not differ, "outputs that differ in the fresh clone:\n" + "\n".join(differ)
    assert run(["git", "status", "--porcelain"], clone).stdout == ""  # (c): dvc.lock, metrics, plots, reports
    assert json.loads(run(["dvc", "metrics", "diff", "--json"], clone).stdout) == {}  # (d)
    assert ran(run(["dvc", "repro"], clone, timeout=REPRO_TIMEOUT).stdout) == set()  # (e)

    # the report names the commit of the code, not the later one of the outputs, in both
    prov = json.loads((clone / "metrics/report.json").read_text())["provenance"]
    assert {k: prov[k] for k in ("commit", "dirty", "profile")} == {
        "commit": code_commit,
        "dirty": False,
        "profile": "default",
    }
    assert len(prov["inputs_sha256"]) == 64
    assert (
        f"Profile **default**, inputs at commit `{code_commit}` (clean), dvc.lock inputs sha256 "
        f"`{prov['inputs_sha256']}`"
    ) in (clone / "reports/REPORT.md").read_text()
