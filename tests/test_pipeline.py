"""The DVC pipeline end to end, in a throwaway copy of the project: repro, skip, partial rerun."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(cwd / "src"),
               DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0")
    p = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def skipped(out: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' didn't change, skipping", out))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("src", "stages", "golden"):
        shutil.copytree(ROOT / name, proj / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(FIXTURES / "cornell", proj / "inputs" / "cornell")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["datasets"] = ["chatterbot", "chatterbot_perturbed", "cornell_movie_dialogs"]
    params["data"]["per_dataset"] = 40
    params["sources"]["cornell_movie_dialogs"] = {
        "fetch": {"from": "local", "path": "inputs/cornell"},
        "options": {},
    }
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], proj)
    run(["dvc", "init", "-q"], proj)
    run(["dvc", "config", "core.analytics", "false"], proj)
    return proj


def set_param(proj: Path, path: list[str], value) -> None:
    params = yaml.safe_load((proj / "params.yaml").read_text())
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


DATASETS = ("chatterbot", "chatterbot_perturbed", "cornell_movie_dialogs")
PER_DATASET = ("download", "prepare", "annotate", "merge")
ALL = {f"{s}@{d}" for s in PER_DATASET for d in DATASETS} | {"golden"}


def downstream(*datasets: str, start: str = "prepare") -> set[str]:
    """The per-dataset stages from ``start`` on, for ``datasets``."""
    stages = PER_DATASET[PER_DATASET.index(start):]
    return {f"{s}@{d}" for s in stages for d in datasets}


def test_repro_skip_and_partial_rerun(project: Path):
    first = run(["dvc", "repro"], project)
    assert ran(first.stdout) == ALL

    clean = [json.loads(x) for x in (project / "data/prepared/chatterbot.jsonl").read_text().splitlines()]
    twin = [json.loads(x) for x in (project / "data/prepared/chatterbot_perturbed.jsonl").read_text().splitlines()]
    assert len(clean) == 40 and len(twin) == 40
    assert all(c["dataset"] == "chatterbot" and c["turns"][-1]["role"] == "assistant" for c in clean)
    assert all("perturbations" in c["meta"] for c in twin)
    m = json.loads((project / "metrics/prepare/chatterbot.json").read_text())
    assert (m["sampled"], m["conversations"], m["source_records"]) == (40, 2025, 2026)
    assert m["skipped"] == {"wrong_type": 1}
    manifest = json.loads((project / "data/raw/chatterbot/SOURCE.json").read_text())
    assert manifest["from"] == "package"
    assert len(manifest["files"]) == 21
    corn = json.loads((project / "metrics/prepare/cornell_movie_dialogs.json").read_text())
    assert corn["sampled"] > 0
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["prepare@chatterbot"]["params"]["params.yaml"]["data.per_dataset"] == 40

    second = run(["dvc", "repro"], project)
    assert ran(second.stdout) == set()
    assert skipped(second.stdout) == ALL

    ratings = [json.loads(x) for x in (project / "data/annotated/chatterbot.jsonl").read_text().splitlines()]
    assert len(ratings) == 40 * 3 * 4 * 3 and all(r["status"] == "ok" for r in ratings)
    items = [json.loads(x) for x in (project / "data/merged/chatterbot.jsonl").read_text().splitlines()]
    assert len(items) == 40 * 3 and all(1 <= i["label"] <= 5 and i["n_valid"] == 12 for i in items)
    assert json.loads((project / "metrics/golden.json").read_text()) == {"configured": False}

    # one dataset's option: only that dataset's stages rerun
    set_param(project, ["sources", "chatterbot_perturbed", "options", "keep_share"], 0.5)
    third = run(["dvc", "repro"], project)
    assert ran(third.stdout) == downstream("chatterbot_perturbed")
    twin2 = [json.loads(x) for x in (project / "data/prepared/chatterbot_perturbed.jsonl").read_text().splitlines()]
    kept = sum(1 for c in twin2 if not c["meta"]["perturbations"])
    assert kept > sum(1 for c in twin if not c["meta"]["perturbations"])

    # one dataset's fetch spec: only that dataset's download (and then its prepare, if the raw files changed)
    set_param(project, ["sources", "chatterbot", "fetch", "files"], ["data/english/*.yml", "data/english/ai.yml"])
    fourth = run(["dvc", "repro"], project)
    assert "download@chatterbot" in ran(fourth.stdout)
    assert ran(fourth.stdout) <= downstream("chatterbot", start="download")

    # the shared sample size reruns every prepare and no download
    set_param(project, ["data", "per_dataset"], 30)
    fifth = run(["dvc", "repro"], project)
    # cornell's fixture has fewer than 30 conversations: its prepared file is unchanged, so nothing after it reruns
    assert ran(fifth.stdout) == downstream("chatterbot", "chatterbot_perturbed") | {"prepare@cornell_movie_dialogs"}
    assert len((project / "data/prepared/chatterbot.jsonl").read_text().splitlines()) == 30

    # the merge method: only the merges rerun, not the annotation
    set_param(project, ["merge", "score"], "most_frequent")
    sixth = run(["dvc", "repro"], project)
    assert ran(sixth.stdout) == downstream(*DATASETS, start="merge") | {"golden"}


def test_a_bad_profile_fails_before_any_stage_writes(project: Path):
    set_param(project, ["data", "on_error"], "ignore")
    p = run(["dvc", "repro"], project, check=False)
    assert p.returncode != 0
    assert "data.on_error" in p.stderr + p.stdout
    assert not (project / "data" / "prepared").exists()
