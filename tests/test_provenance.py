"""The report's provenance (explainft.provenance): the commit of the inputs, dirty, profile, dvc.lock digest."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from explainft.provenance import (
    Provenance,
    collect,
    git_state,
    lock_inputs_sha256,
    pipeline_inputs,
    read_dvc_yaml,
    stage_inputs,
    upstream_stages,
)

# A small pipeline: make (raw -> data/out.txt) feeds the report; other reads make's output but the report does
# not read other's. The report depends on its own script, the library, make's output, paper/ and all params.
DVC_YAML = {
    "stages": {
        "make": {
            "cmd": "python stages/make.py",
            "deps": ["stages/make.py", "src/lib.py", "raw"],
            "params": ["a"],
            "outs": ["data/out.txt"],
        },
        "per": {
            "foreach": ["x", "y"],
            "do": {
                "cmd": "python stages/per.py ${item}",
                "deps": ["stages/per.py", "data/out.txt"],
                "outs": ["data/per/${item}.txt"],
            },
        },
        "other": {
            "cmd": "python stages/other.py",
            "deps": ["stages/other.py", "data/per"],
            "metrics": [{"metrics/other.json": {"cache": False}}],
        },
        "report": {
            "cmd": "python stages/report.py",
            "deps": ["stages/report.py", "src/lib.py", "data/per", "paper"],
            "params": [{"params.yaml": None}],
            "outs": [{"reports/REPORT.md": {"cache": False}}],
            "metrics": [{"metrics/report.json": {"cache": False}}],
        },
    }
}
FILES = {
    "stages/make.py": "m",
    "stages/per.py": "p",
    "stages/other.py": "o",
    "stages/report.py": "r",
    "src/lib.py": "lib",
    "raw/a.txt": "raw",
    "paper/t.csv": "a,b\n",
    "params.yaml": "a: 1\n",
    ".gitignore": "/data/\n",
}
OUTPUTS = {
    "data/out.txt": "1",
    "data/per/x.txt": "x",
    "metrics/other.json": "{}",
    "metrics/report.json": "{}",
    "reports/REPORT.md": "# r\n",
}


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def git(root: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    write(tmp_path, FILES)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    return tmp_path


def test_the_report_s_inputs_and_the_pipeline_s_inputs_from_dvc_yaml():
    assert stage_inputs(DVC_YAML) == ["paper", "params.yaml", "src/lib.py", "stages/report.py"]
    # data/per is written by per (through its template data/per/${item}.txt), data/out.txt by make
    assert pipeline_inputs(DVC_YAML) == [
        "dvc.yaml",
        "paper",
        "params.yaml",
        "raw",
        "src/lib.py",
        "stages/make.py",
        "stages/other.py",
        "stages/per.py",
        "stages/report.py",
    ]


def test_the_real_report_depends_on_every_input_but_the_other_stage_scripts_and_dvc_yaml():
    """The commit and digest cover the report's inputs only (a change to anything else does not rerun it, and a
    fresh clone would disagree); that leaves out nothing but the glue scripts of the other stages and dvc.yaml.
    A new input the report does not depend on (a data folder, a config file) fails here: add it to the report's
    deps."""
    dvc = read_dvc_yaml(ROOT)
    scripts = {f"stages/{p.name}" for p in (ROOT / "stages").glob("*.py")} - {"stages/report.py"}
    assert set(pipeline_inputs(dvc)) - set(stage_inputs(dvc)) == scripts | {"dvc.yaml"}
    assert {"golden", "paper", "params.yaml", "stages/report.py"} <= set(stage_inputs(dvc))


def test_a_clean_checkout_names_the_last_commit_of_the_report_s_inputs(pipeline: Path):
    git(pipeline, "init", "-q")
    c1 = commit_all(pipeline, "code")
    write(pipeline, OUTPUTS)
    expected = digest(pipeline, lock())  # writes dvc.lock
    commit_all(pipeline, "outputs")  # touches no input
    p = collect(pipeline, {"profile": "default"})
    assert (p.git, p.commit, p.dirty, p.profile, p.inputs_sha256) == (True, c1, False, "default", expected)
    assert p.sentence() == f"Profile **default**, inputs at commit `{c1}` (clean), dvc.lock inputs sha256 `{expected}`"
    assert p.to_dict() == {"commit": c1, "dirty": False, "profile": "default", "inputs_sha256": expected}
    # a commit to another stage's script only: the report would not rerun, so the commit it names stays
    write(pipeline, {"stages/other.py": "o2"})
    commit_all(pipeline, "other stage's echo")
    assert (collect(pipeline, {}).commit, collect(pipeline, {}).dirty) == (c1, False)
    # a commit to a report input moves it
    write(pipeline, {"params.yaml": "a: 2\n"})
    c4 = commit_all(pipeline, "params")
    assert (collect(pipeline, {}).commit, collect(pipeline, {}).dirty) == (c4, False)


@pytest.mark.parametrize(
    "edit",
    [
        {"src/lib.py": "lib2"},  # a report input
        {"paper/new.csv": "x\n"},  # an untracked file in an input folder
        {"stages/other.py": "o2"},  # another stage's script: any pipeline input
        {"raw/a.txt": "raw2"},
        {"dvc.yaml": "stages: {}\n"},
    ],
)
def test_an_uncommitted_input_makes_it_dirty(pipeline: Path, edit):
    git(pipeline, "init", "-q")
    c1 = commit_all(pipeline, "code")
    if "dvc.yaml" in edit:  # the inputs are still read from the committed pipeline definition
        dvc_yaml = read_dvc_yaml(pipeline)
        write(pipeline, edit)
        assert git_state(pipeline, stage_inputs(dvc_yaml), pipeline_inputs(dvc_yaml)) == (True, c1, True)
        return
    write(pipeline, edit)
    p = collect(pipeline, {"profile": "smollm2"})
    assert (p.commit, p.dirty) == (c1, True)
    assert p.sentence() == (
        f"Profile **smollm2**, inputs at commit `{c1}` **with uncommitted changes** (dirty: "
        "commit them, then `dvc repro --force report`, before publishing), no dvc.lock"
    )


def test_an_edited_output_never_makes_it_dirty(pipeline: Path):
    git(pipeline, "init", "-q")
    write(pipeline, OUTPUTS)
    digest(pipeline, lock())
    c1 = commit_all(pipeline, "code and outputs")
    write(pipeline, {k: v + "changed" for k, v in OUTPUTS.items()})
    digest(pipeline, lock({("make", "outs", 0, "md5"): "o9"}))
    write(pipeline, {"plots/new.csv": "x\n", "metrics/new.json": "{}", "timings/report.json": "{}"})
    assert git(pipeline, "status", "--porcelain")  # the tree does differ
    p = collect(pipeline, {})
    assert (p.commit, p.dirty) == (c1, False)


def test_a_repository_without_a_commit_has_none_and_is_dirty(pipeline: Path):
    git(pipeline, "init", "-q")
    p = collect(pipeline, {"profile": "default"})
    assert (p.git, p.commit, p.dirty) == (True, None, True)
    assert p.sentence().startswith("Profile **default**, inputs not committed yet (**dirty**")


def test_outside_git_or_without_git_it_says_not_a_git_checkout(pipeline: Path, monkeypatch):
    p = collect(pipeline, {"profile": "default"})
    assert p == Provenance(commit=None, dirty=None, profile="default", inputs_sha256=None, git=False)
    assert p.sentence() == "Profile **default**, not a git checkout (no commit to name), no dvc.lock"
    assert p.to_dict() == {"commit": None, "dirty": None, "profile": "default", "inputs_sha256": None}
    git(pipeline, "init", "-q")
    commit_all(pipeline, "code")
    monkeypatch.setenv("PATH", str(pipeline / "no-such-bin"))  # git cannot be found
    assert collect(pipeline, {}).git is False


# --------------------------------------------------------------------------- the dvc.lock digest


def lock(changes: dict | None = None) -> dict:
    def dep(path, md5):
        return {"path": path, "hash": "md5", "md5": md5, "size": 1}

    stages = {
        "make": {
            "cmd": "python stages/make.py",
            "deps": [dep("raw", "r0"), dep("src/lib.py", "l0"), dep("stages/make.py", "m0")],
            "params": {"params.yaml": {"a": 1}},
            "outs": [dep("data/out.txt", "o0")],
        },
        "per@x": {
            "cmd": "python stages/per.py x",
            "deps": [dep("data/out.txt", "o0"), dep("stages/per.py", "p0")],
            "outs": [dep("data/per/x.txt", "x0")],
        },
        "other": {
            "cmd": "python stages/other.py",
            "deps": [dep("data/per", "d0"), dep("stages/other.py", "q0")],
            "outs": [dep("metrics/other.json", "j0")],
        },
        "report": {
            "cmd": "python stages/report.py",
            "deps": [dep("data/per", "d0")],
            "outs": [dep("reports/REPORT.md", "R0")],
        },
    }
    for (stage, key, i, field), value in (changes or {}).items():
        stages[stage][key][i][field] = value
    return {"schema": "2.0", "stages": stages}


def digest(root: Path, doc: dict) -> str:
    (root / "dvc.lock").write_text(yaml.safe_dump(doc))
    return lock_inputs_sha256(root, DVC_YAML)


def test_upstream_stages_follow_outputs_to_deps():
    assert upstream_stages(lock()["stages"], ["data/per", "paper"]) == ["make", "per@x"]
    assert upstream_stages(lock()["stages"], ["paper"]) == []


def test_the_lock_digest_covers_what_the_report_reruns_on(tmp_path: Path):
    assert lock_inputs_sha256(tmp_path, DVC_YAML) is None  # no dvc.lock yet
    base = digest(tmp_path, lock())
    assert len(base) == 64 and int(base, 16) >= 0
    same = {  # not upstream of the report, the report's own entry, and deps the report does not depend on
        "other": lock({("other", "deps", 0, "md5"): "d1"}),
        "report": lock({("report", "outs", 0, "md5"): "R1"}),
        "make's script": lock({("make", "deps", 2, "md5"): "m1"}),
        "make's raw folder": lock({("make", "deps", 0, "md5"): "r1"}),
    }
    assert {k: digest(tmp_path, v) for k, v in same.items()} == {k: base for k in same}
    changed = {
        "the library": lock({("make", "deps", 1, "md5"): "l1"}),
        "an upstream output": lock({("per@x", "deps", 0, "md5"): "o1"}),
    }
    assert all(digest(tmp_path, v) != base for v in changed.values())
    params = lock()
    params["stages"]["make"]["params"]["params.yaml"]["a"] = 2
    assert digest(tmp_path, params) != base
    shuffled = lock()
    shuffled["stages"]["make"]["deps"].reverse()
    shuffled["stages"] = dict(reversed(list(shuffled["stages"].items())))
    assert digest(tmp_path, shuffled) == base  # order-free


def test_the_real_lock_s_stages_upstream_of_the_report_are_all_but_golden_and_the_statistics():
    stages = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    report = read_dvc_yaml(ROOT)["stages"]["report"]
    up = upstream_stages(stages, report["deps"])
    assert set(up) == {n for n in stages if n.split("@")[0] not in ("golden", "explanation_stats", "report")}


def test_git_state_raises_naming_the_command_when_git_fails(pipeline: Path):
    git(pipeline, "init", "-q")
    commit_all(pipeline, "code")
    outside = pipeline.parent / "elsewhere"
    outside.mkdir()
    with pytest.raises(RuntimeError, match=r"`git status --porcelain -- <inputs>` failed in .*outside repository"):
        git_state(pipeline, ["params.yaml"], ["../elsewhere"])
    shutil.rmtree(outside)
