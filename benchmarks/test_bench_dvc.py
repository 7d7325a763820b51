"""DVC bookkeeping as the grid grows (targets: a no-op ``dvc repro`` under 5 s, paper ``dvc status`` under 30 s).

dvc_noop_repro: ``dvc repro`` on the default graph with nothing changed, in the real
working tree (the project root, or ``EXPLAINFT_BENCH_DVC_REPO``), where every output
exists: it decides that every stage is up to date and runs nothing. Against
``dvc status`` (the same up-to-date check, no reproduction machinery) in the same run;
dvc_noop_repro_startup: the same against ``dvc --version`` (process start-up and imports).
Skipped, with the reason, unless ``dvc status`` there is clean first (a repro would
otherwise run stages), and skipped if another DVC command holds the repository lock.
The workspace must come out unchanged: ``git status --porcelain`` and the dvc.lock bytes
are compared before and after. A clean copy of the committed state, when the working tree is
mid-edit (every output, the fine-tunes' checkpoints included, comes from a copy of the DVC cache)::

    git clone -q . /tmp/ws && cp -r .dvc/cache /tmp/ws/.dvc/ && ln -s "$PWD/.venv" /tmp/ws/.venv
    (cd /tmp/ws && dvc checkout -q && dvc status)   # must say "Data and pipelines are up to date."

dvc_status_paper: ``dvc status`` on the paper profile's full graph (configs/paper.yaml as
params.yaml: 6 datasets, 7 sets x 3 dimensions x 4 variants of finetune and evaluate plus the
ablation grid) in a fresh throwaway repository (``git init``, ``dvc init``, the working
tree's dvc.yaml, the sources the stages depend on, no outputs, no dvc.lock): every stage is
reported as new. Against the same on the default profile's graph in the same run. The stage
counts (``dvc stage list``) are printed and written to ``.benchmarks/dvc.json``;
dvc_stage_list_paper times ``dvc stage list`` alone (reading dvc.yaml and params.yaml and
expanding foreach/matrix, no hashing), against the default profile.

Every command is a fresh ``dvc`` process of this virtual environment, analytics off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import RESULTS, record  # noqa: E402

ROOT = HERE.parent
DVC = Path(sys.executable).with_name("dvc")
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore"}
# what the stages depend on besides outputs of other stages (copied into the throwaway repositories)
SOURCES = ("stages", "src", "golden", "human", "paper")
FIGURES: dict[str, object] = {}

pytestmark = pytest.mark.skipif(not DVC.is_file(), reason=f"no dvc next to {sys.executable}")


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(DVC), *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} in {cwd} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


# --------------------------------------------------------------------------- no-op repro, real workspace


def _git_state(repo: Path) -> tuple[str, bytes]:
    porcelain = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    lock = repo / "dvc.lock"
    return porcelain, lock.read_bytes() if lock.is_file() else b""


@pytest.fixture(scope="module")
def workspace() -> Path:
    repo = Path(os.environ.get("EXPLAINFT_BENCH_DVC_REPO", ROOT)).resolve()
    if not (repo / "dvc.yaml").is_file() or not (repo / ".dvc").is_dir():
        pytest.skip(f"{repo} is not a DVC repository")
    proc = dvc("status", "--json", cwd=repo, check=False)
    if proc.returncode != 0:
        why = "another DVC command holds the lock" if "lock" in (proc.stdout + proc.stderr).lower() else "failed"
        pytest.skip(f"dvc status in {repo} {why}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    try:
        status = json.loads(proc.stdout or "{}")
    except ValueError:
        pytest.skip(f"dvc status --json in {repo} printed no JSON: {proc.stdout[:200]!r}")
    if status:
        pytest.skip(
            f"dvc status in {repo} is not clean ({len(status)} stages or files changed, e.g. "
            f"{sorted(status)[:3]}): a repro would run stages; run `dvc repro` first, or set "
            "EXPLAINFT_BENCH_DVC_REPO to a clean copy (module docstring)"
        )
    return repo


def test_dvc_noop_repro_baseline_status(benchmark, workspace):
    benchmark.pedantic(lambda: dvc("status", cwd=workspace), rounds=3, iterations=1)
    record(benchmark, "dvc_noop_repro", "baseline")


def test_dvc_noop_repro_baseline_startup(benchmark, workspace):
    benchmark.pedantic(lambda: dvc("--version", cwd=workspace), rounds=3, iterations=1)
    record(benchmark, "dvc_noop_repro_startup", "baseline")


def test_dvc_noop_repro_project(benchmark, workspace):
    before = _git_state(workspace)
    outputs: list[str] = []

    def repro():
        proc = dvc("repro", cwd=workspace)
        outputs.append(proc.stdout)

    try:
        benchmark.pedantic(repro, rounds=3, iterations=1)
    finally:
        after = _git_state(workspace)
    assert after == before, "dvc repro changed the workspace (git status or dvc.lock differ)"
    ran = [line for out in outputs for line in out.splitlines() if line.startswith("Running stage")]
    assert not ran, f"a no-op repro ran stages: {ran[:3]}"
    assert json.loads(dvc("status", "--json", cwd=workspace).stdout or "{}") == {}
    record(benchmark, "dvc_noop_repro", "project")
    record(benchmark, "dvc_noop_repro_startup", "project")
    n = len(dvc("stage", "list", cwd=workspace).stdout.splitlines())
    FIGURES["noop_repro"] = {
        "repo": str(workspace),
        "stages": n,
        "seconds": benchmark.stats.stats.mean,
        "target_s": 5.0,
        "met": benchmark.stats.stats.mean < 5.0,
    }
    print(f"\nno-op dvc repro: {n} stages, mean {benchmark.stats.stats.mean:.2f} s (target < 5 s)")


# --------------------------------------------------------------------------- paper graph, outputs absent


def _throwaway(base: Path, profile: str) -> Path:
    repo = base / profile
    repo.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy2(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy2(ROOT / "configs" / f"{profile}.yaml", repo / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc("init", "-q", cwd=repo)
    dvc("config", "core.analytics", "false", cwd=repo)
    return repo


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("dvcgraphs")
    out = {p: _throwaway(base, p) for p in ("default", "paper")}
    for profile, repo in out.items():
        FIGURES.setdefault("stages", {})[profile] = len(dvc("stage", "list", cwd=repo).stdout.splitlines())
    return out


def _status(repo: Path) -> dict:
    status = json.loads(dvc("status", "--json", cwd=repo).stdout or "{}")
    assert status, "outputs are absent: every stage should be reported"
    return status


@pytest.mark.parametrize("role,profile", [("baseline", "default"), ("project", "paper")])
def test_dvc_status_paper(benchmark, graphs, role, profile):
    status = benchmark.pedantic(_status, args=(graphs[profile],), rounds=3, iterations=1)
    n = FIGURES["stages"][profile]
    assert len(status) >= n  # every stage (and no more than the stages' own entries)
    record(benchmark, "dvc_status_paper", role)
    FIGURES.setdefault("status", {})[profile] = {
        "stages": n,
        "reported": len(status),
        "seconds": benchmark.stats.stats.mean,
    }
    print(
        f"\ndvc status, {profile} graph, outputs absent: {n} stages, mean {benchmark.stats.stats.mean:.2f} s"
        + (" (target < 30 s)" if profile == "paper" else "")
    )


@pytest.mark.parametrize("role,profile", [("baseline", "default"), ("project", "paper")])
def test_dvc_stage_list_paper(benchmark, graphs, role, profile):
    benchmark.pedantic(lambda: dvc("stage", "list", cwd=graphs[profile]), rounds=3, iterations=1)
    record(benchmark, "dvc_stage_list_paper", role)
    FIGURES.setdefault("stage_list", {})[profile] = benchmark.stats.stats.mean


def teardown_module(module):
    if FIGURES:
        FIGURES["ratios"] = {
            g: {**r, "ratio": r["project"] / r["baseline"]}
            for g, r in RESULTS.items()
            if g.startswith("dvc_") and {"project", "baseline"} <= set(r)
        }
        Path(".benchmarks").mkdir(exist_ok=True)
        Path(".benchmarks/dvc.json").write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
