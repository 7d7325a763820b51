"""The code each DVC stage runs, from the import graph (explainft.codedeps), and dvc.yaml/dvc.lock kept to it."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT

from explainft.cli import main
from explainft.codedeps import CodeDepsError, ImportGraph, compare, deps_owners, prune_lock, render, stage_code, write

PKG = "src/explainft"


def make(root: Path, files: dict[str, str]) -> Path:
    """A synthetic project: ``src/explainft/__init__.py`` plus ``files`` (root-relative path -> source)."""
    files = {f"{PKG}/__init__.py": "", **files}
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def runs(root: Path, script: str = "stages/run.py") -> set[str]:
    return set(ImportGraph(root).files_of(script))


def pkg(*names: str) -> set[str]:
    return {f"{PKG}/{n}" for n in names}


# --------------------------------------------------------------------------- the graph


def test_a_function_local_import_counts_and_third_party_and_stdlib_do_not(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": """
            import click
            import os.path

            def main():
                from explainft import a
            """,
            f"{PKG}/a.py": "import json\nimport yaml\n",
            f"{PKG}/unused.py": "",
        },
    )
    assert runs(tmp_path) == pkg("__init__.py", "a.py") | {"stages/run.py"}


def test_from_dot_import_a_submodule(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "import explainft.p\n",
            f"{PKG}/p/__init__.py": "from . import x\n",
            f"{PKG}/p/x.py": "",
            f"{PKG}/p/y.py": "",
        },
    )
    assert runs(tmp_path) == pkg("__init__.py", "p/__init__.py", "p/x.py") | {"stages/run.py"}


def test_from_parent_package_import_a_module_and_a_plain_name(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "from explainft.sub.deep import go\n",
            f"{PKG}/sub/__init__.py": "",
            f"{PKG}/sub/deep.py": "from ..pkg import mod, NAME\nfrom ..records import Conversation\n\ndef go(): pass\n",
            f"{PKG}/pkg/__init__.py": "NAME = 1\n",
            f"{PKG}/pkg/mod.py": "",
            f"{PKG}/pkg/other.py": "",
            f"{PKG}/records.py": "class Conversation: pass\n",
        },
    )
    # mod is a submodule (it runs), NAME and Conversation are names (pkg/other.py does not run)
    assert runs(tmp_path) == pkg(
        "__init__.py", "sub/__init__.py", "sub/deep.py", "pkg/__init__.py", "pkg/mod.py", "records.py"
    ) | {"stages/run.py"}


def test_an_import_cycle_ends(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "from explainft.a import A\n",
            f"{PKG}/a.py": "A = 1\n\ndef f():\n    from .b import B\n",
            f"{PKG}/b.py": "from .a import A\nB = 2\n",
        },
    )
    assert runs(tmp_path) == pkg("__init__.py", "a.py", "b.py") | {"stages/run.py"}


def test_importing_a_deep_module_runs_every_parent_package_init(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "import explainft.p.q.r as r\n",
            f"{PKG}/p/__init__.py": "",
            f"{PKG}/p/q/__init__.py": "",
            f"{PKG}/p/q/r.py": "",
            f"{PKG}/p/q/s.py": "",
            f"{PKG}/p/t.py": "",
        },
    )
    assert runs(tmp_path) == pkg("__init__.py", "p/__init__.py", "p/q/__init__.py", "p/q/r.py") | {"stages/run.py"}


def test_a_registry_f_string_import_depends_on_every_module_of_its_package(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "from explainft.reg import load\nfrom explainft.other import loader\n",
            f"{PKG}/reg/__init__.py": """
            import importlib
            import importlib.util

            def load(name):
                if importlib.util.find_spec("thirdparty") is None:
                    return None
                return importlib.import_module(f"{__name__}.{name}")
            """,
            f"{PKG}/reg/one.py": "",
            f"{PKG}/reg/nested/__init__.py": "",
            f"{PKG}/reg/nested/two.py": "",
            f"{PKG}/other/__init__.py": "",
            f"{PKG}/other/loader.py": """
            from importlib import import_module

            def get(name):
                return import_module(f"{__package__}.{name}")
            """,
            f"{PKG}/other/plugin.py": "",
            f"{PKG}/elsewhere.py": "",
        },
    )
    assert runs(tmp_path) == pkg(
        "__init__.py",
        "reg/__init__.py",
        "reg/one.py",
        "reg/nested/__init__.py",
        "reg/nested/two.py",
        "other/__init__.py",
        "other/loader.py",
        "other/plugin.py",
    ) | {"stages/run.py"}


def test_a_literal_dynamic_import_resolves_like_an_import(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "import explainft.p\n",
            f"{PKG}/p/__init__.py": """
            import importlib

            json = importlib.import_module("json")
            lit = importlib.import_module("explainft.lit")
            rel = importlib.import_module(".rel", package=__name__)
            """,
            f"{PKG}/p/rel.py": "",
            f"{PKG}/lit.py": "",
            f"{PKG}/never.py": "",
        },
    )
    assert runs(tmp_path) == pkg("__init__.py", "p/__init__.py", "p/rel.py", "lit.py") | {"stages/run.py"}


@pytest.mark.parametrize(
    "call",
    [
        "importlib.import_module(name)",
        "__import__(name)",
        'importlib.import_module(f"explainft.{name}")',
        'importlib.import_module("explainft." + name)',
    ],
)
def test_a_computed_dynamic_import_is_an_error_naming_file_and_line(tmp_path: Path, call: str):
    make(
        tmp_path,
        {
            "stages/run.py": "import explainft.dyn\n",
            f"{PKG}/dyn.py": f"import importlib\n\ndef load(name):\n    return {call}\n",
        },
    )
    with pytest.raises(
        CodeDepsError,
        match=r"^src/explainft/dyn\.py:4: dynamic import with a computed module "
        r"name",
    ):
        runs(tmp_path)


def test_an_import_of_a_missing_project_module_is_an_error_naming_file_and_line(tmp_path: Path):
    make(tmp_path, {"stages/run.py": "import click\n\nfrom explainft.gone import x\n"})
    with pytest.raises(CodeDepsError, match=r"^stages/run\.py:3: imports explainft\.gone, which is no module"):
        runs(tmp_path)


def test_a_script_imports_a_sibling_stage_module_but_the_package_does_not(tmp_path: Path):
    make(
        tmp_path,
        {
            "stages/run.py": "import common\nimport explainft.a\n",
            "stages/common.py": "",
            "stages/other.py": "",
            f"{PKG}/a.py": "import other\n",  # a third-party name for the package: stages/ is not its folder
        },
    )
    assert runs(tmp_path) == pkg("__init__.py", "a.py") | {"stages/run.py", "stages/common.py"}


# --------------------------------------------------------------------------- dvc.yaml's stages


SYNTH_DVC = """\
stages:
  fetch:
    foreach: ${names}
    do:
      cmd: python stages/fetch.py ${item}
      deps:
        - stages/fetch.py
        - src/explainft/a.py
        - data/${item}
      outs:
        - out/${item}
  # a matrix stage
  fit:
    matrix:
      name: ${names}
      k: [1, 2]
    cmd: python stages/fit.py ${item.name} ${item.k}
    deps:
      - src/explainft          # the whole package
      - stages/fit.py
      - models/base
    outs:
      - fits/${item.name}-${item.k}
  sum:
    cmd: python stages/sum.py
    deps:
      - fits
      - stages/sum.py     # the script
      - src/explainft/a.py
      - src/explainft/b.py
      - src/explainft/py.typed
    outs:
      - total.json
"""


def synth(root: Path) -> Path:
    make(
        root,
        {
            "stages/fetch.py": "from explainft import a\n",
            "stages/fit.py": "import explainft.a, explainft.b\n",
            "stages/sum.py": "from explainft.b import B\n",
            f"{PKG}/a.py": "",
            f"{PKG}/b.py": "B = 1\n",
            f"{PKG}/py.typed": "",
            "dvc.yaml": SYNTH_DVC,
            "params.yaml": "names: [x, y]\n",
        },
    )
    return root / "dvc.yaml"


def test_stage_code_reads_foreach_and_matrix_templates(tmp_path: Path):
    code = stage_code(synth(tmp_path))
    assert code == {
        "fetch": ["src/explainft/__init__.py", "src/explainft/a.py", "stages/fetch.py"],
        "fit": ["src/explainft/__init__.py", "src/explainft/a.py", "src/explainft/b.py", "stages/fit.py"],
        "sum": ["src/explainft/__init__.py", "src/explainft/b.py", "stages/sum.py"],
    }
    assert yaml.safe_load(render(code)) == code
    assert stage_code(tmp_path / "dvc.yaml", ["sum"]) == {"sum": code["sum"]}
    with pytest.raises(CodeDepsError, match=r"no stage nope; its stages: fetch, fit, sum"):
        stage_code(tmp_path / "dvc.yaml", ["nope"])


def test_a_cmd_that_is_not_a_python_stage_script_is_an_error_naming_the_stage(tmp_path: Path):
    dvc = synth(tmp_path)
    dvc.write_text(SYNTH_DVC.replace("cmd: python stages/sum.py", "cmd: bash sum.sh"))
    with pytest.raises(CodeDepsError, match=r"stage sum: cmd 'bash sum\.sh' is not `python stages/<name>\.py"):
        stage_code(dvc)


def test_compare_folders_count_only_when_every_module_in_them_is_run(tmp_path: Path):
    drifts = {d.stage: d for d in compare(synth(tmp_path))}
    # fetch: declares a.py and its script, misses the package __init__; data/${item} is not code
    assert (drifts["fetch"].missing, drifts["fetch"].extra) == (("src/explainft/__init__.py",), ())
    # fit: the folder holds exactly the modules fit.py runs: complete
    assert drifts["fit"].ok and drifts["fit"].declared == ("src/explainft", "stages/fit.py")
    # sum does not import a.py; py.typed is not a code dep
    assert (drifts["sum"].missing, drifts["sum"].extra) == (("src/explainft/__init__.py",), ("src/explainft/a.py",))
    # a module fit does not run makes the folder too wide: a change to it would rerun fit
    (tmp_path / PKG / "c.py").write_text("")
    fit = compare(tmp_path / "dvc.yaml", ["fit"])[0]
    assert (fit.missing, fit.extra) == (
        ("src/explainft/__init__.py", "src/explainft/a.py", "src/explainft/b.py"),
        ("src/explainft",),
    )
    assert fit.describe() == (
        "fit: missing src/explainft/__init__.py, src/explainft/a.py, src/explainft/b.py; extra src/explainft"
    )


def test_write_replaces_only_the_code_deps_keeping_comments_and_order(tmp_path: Path):
    dvc = synth(tmp_path)
    assert write(dvc) == ["fetch", "fit", "sum"]
    assert dvc.read_text() == SYNTH_DVC.replace(
        "        - stages/fetch.py\n        - src/explainft/a.py\n",
        "        - src/explainft/__init__.py\n        - src/explainft/a.py\n        - stages/fetch.py\n",
    ).replace(
        "      - src/explainft          # the whole package\n      - stages/fit.py\n",
        "      # the whole package\n      - src/explainft/__init__.py\n      - src/explainft/a.py\n"
        "      - src/explainft/b.py\n      - stages/fit.py\n",
    ).replace(
        "      - stages/sum.py     # the script\n      - src/explainft/a.py\n      - src/explainft/b.py\n",
        "      - src/explainft/__init__.py\n      - src/explainft/b.py\n      - stages/sum.py     # the script\n",
    )
    assert all(d.ok for d in compare(dvc))
    before = dvc.read_text()
    assert write(dvc) == [] and dvc.read_text() == before  # idempotent


SHARED_DVC = """\
stages:
  fit: &fit
    matrix: &grid
      name: ${names}
    cmd: python stages/fit.py ${item.name}
    deps:
      - stages/fit.py
      - src/explainft/a.py    # the model
      - models/base
    outs:
      - fits/${item.name}
  # the same stage over another grid: every key but the matrix comes from fit
  fit_more:
    <<: *fit
    matrix:
      name: ${more}
  check:
    matrix: *grid
    cmd: python stages/check.py ${item.name}
    deps: &check_deps
      - stages/check.py
  check_again:
    cmd: python stages/check.py again
    deps: *check_deps
"""


def shared_project(root: Path) -> Path:
    make(
        root,
        {
            "stages/fit.py": "import explainft.a, explainft.b\n",
            "stages/check.py": "from explainft import b\n",
            f"{PKG}/a.py": "",
            f"{PKG}/b.py": "",
            "dvc.yaml": SHARED_DVC,
            "params.yaml": "names: [x]\nmore: [y]\n",
        },
    )
    return root / "dvc.yaml"


def test_stages_sharing_a_definition_are_each_checked_and_their_list_written_once(tmp_path: Path):
    dvc = shared_project(tmp_path)
    assert deps_owners(dvc) == {"fit": "fit", "fit_more": "fit", "check": "check", "check_again": "check"}
    drifts = {d.stage: d for d in compare(dvc)}
    assert list(drifts) == ["fit", "fit_more", "check", "check_again"]  # --check covers every stage, both grids
    assert drifts["fit_more"].missing == drifts["fit"].missing == ("src/explainft/__init__.py", "src/explainft/b.py")
    assert drifts["check_again"].missing == ("src/explainft/__init__.py", "src/explainft/b.py")
    assert write(dvc, ["fit_more"]) == ["fit", "fit_more"]  # the list fit_more shares is fit's: both change
    assert dvc.read_text() == SHARED_DVC.replace(
        "      - stages/fit.py\n      - src/explainft/a.py    # the model\n",
        "      - src/explainft/__init__.py\n      - src/explainft/a.py    # the model\n      - src/explainft/b.py\n"
        "      - stages/fit.py\n",
    )
    assert write(dvc) == ["check", "check_again"]
    text = dvc.read_text()
    assert text.count("deps:") == 3 and text.count("- stages/check.py") == 1 and "<<: *fit" in text
    assert "    deps: &check_deps\n      - src/explainft/__init__.py\n      - src/explainft/b.py\n" in text
    assert all(d.ok for d in compare(dvc)) and write(dvc) == [] and dvc.read_text() == text
    doc = yaml.safe_load(text)["stages"]
    assert doc["fit_more"]["deps"] == doc["fit"]["deps"] and doc["fit_more"]["matrix"] == {"name": "${more}"}
    assert doc["check_again"]["deps"] == doc["check"]["deps"]


def test_a_shared_definition_without_deps_gets_them_beside_its_cmd(tmp_path: Path):
    dvc = shared_project(tmp_path)
    dvc.write_text(
        SHARED_DVC.replace(
            "    deps:\n      - stages/fit.py\n      - src/explainft/a.py    # the model\n      - models/base\n", ""
        )
    )
    assert deps_owners(dvc)["fit_more"] == "fit"
    assert write(dvc, ["fit_more"]) == ["fit", "fit_more"]
    assert (
        "    cmd: python stages/fit.py ${item.name}\n    deps:\n      - src/explainft/__init__.py\n" in dvc.read_text()
    )
    assert dvc.read_text().count("    deps:\n") == 1 and all(d.ok for d in compare(dvc, ["fit", "fit_more"]))


def test_stages_sharing_a_deps_list_but_running_different_code_cannot_be_written(tmp_path: Path):
    dvc = shared_project(tmp_path)
    dvc.write_text(SHARED_DVC.replace("    <<: *fit\n", "    <<: *fit\n    cmd: python stages/check.py ${item.name}\n"))
    with pytest.raises(
        CodeDepsError,
        match=r"stages fit, fit_more share the deps list written in stage fit, but "
        r"their commands run different code",
    ):
        write(dvc, ["fit"])
    assert dvc.read_text().count("src/explainft/a.py    # the model") == 1  # left as it was


# --------------------------------------------------------------------------- the real project


REAL_STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


@pytest.fixture(scope="module")
def real_graph() -> ImportGraph:
    return ImportGraph(ROOT)


@pytest.mark.parametrize("stage", REAL_STAGES)
def test_every_stage_declares_exactly_the_code_it_runs(stage: str, real_graph: ImportGraph):
    (d,) = compare(ROOT / "dvc.yaml", [stage], real_graph)
    assert d.ok, f"dvc.yaml {d.describe()} (run `explainft deps --write`)"
    assert f"stages/{stage.removesuffix('_ablation')}.py" in d.computed


def test_the_ablation_stages_are_the_main_stages_over_another_grid():
    """finetune_ablation and evaluate_ablation share ONE definition with finetune and evaluate (YAML merge keys):
    each resolves to the same body but for its matrix, and the cmd, deps and params are written once."""
    text = (ROOT / "dvc.yaml").read_text()
    stages = yaml.safe_load(text)["stages"]
    for main_stage, ablation in (("finetune", "finetune_ablation"), ("evaluate", "evaluate_ablation")):
        body, other = stages[main_stage], stages[ablation]
        assert {k: v for k, v in other.items() if k != "matrix"} == {k: v for k, v in body.items() if k != "matrix"}
        assert set(body) == set(other) and {"cmd", "deps", "params", "outs", "metrics"} <= set(body)
        assert body["matrix"]["set"] == "${train.sets}" and other["matrix"]["set"] == "${ablation.sets}"
        assert other["matrix"]["seed"] == body["matrix"]["seed"] == "${train.seeds}"
        assert text.count(f"cmd: python stages/{main_stage}.py ") == 1
        assert deps_owners(ROOT / "dvc.yaml")[ablation] == main_stage
    assert text.count("      - train.accelerate_config\n") == 1  # the fine-tune's params list is written once


def test_the_registries_make_their_loaders_code_deps_of_the_stages_that_use_them(real_graph: ImportGraph):
    code = stage_code(ROOT / "dvc.yaml", ["prepare", "annotate"], real_graph)
    loaders = {p.relative_to(ROOT).as_posix() for p in (ROOT / PKG / "datasets").glob("*.py")}
    backends = {p.relative_to(ROOT).as_posix() for p in (ROOT / PKG / "annotate" / "backends").glob("*.py")}
    assert loaders <= set(code["prepare"]) and backends <= set(code["annotate"])


@pytest.fixture
def real_copy(tmp_path: Path) -> Path:
    for name in ("src", "stages"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    return tmp_path / "dvc.yaml"


def test_deps_check_names_the_stage_and_file_and_write_restores_it(real_copy: Path):
    runner = CliRunner()
    ok = runner.invoke(main, ["deps", "--write", "--dvc-yaml", str(real_copy)])
    assert ok.exit_code == 0, ok.output
    complete = real_copy.read_text()
    lines = complete.splitlines(keepends=True)
    split_at = lines.index("  split:\n")
    drop = next(i for i in range(split_at, len(lines)) if lines[i] == "      - src/explainft/stages/split.py\n")
    keep = next(i for i in range(split_at, len(lines)) if lines[i] == "      - src/explainft/split.py\n")
    lines[keep] = "      - src/explainft/split.py   # the split itself\n"
    commented = "".join(lines)
    del lines[drop]
    real_copy.write_text("".join(lines))

    check = runner.invoke(main, ["deps", "--check", "--dvc-yaml", str(real_copy)])
    assert check.exit_code == 1
    assert "the code deps of 1 of 18 stages differ from the import graph" in check.output
    assert "\nsplit: missing src/explainft/stages/split.py\n" in check.output

    fixed = runner.invoke(main, ["deps", "--write", "--dvc-yaml", str(real_copy)])
    assert fixed.exit_code == 0 and fixed.output.endswith("code deps written; changed: split\n"), fixed.output
    assert real_copy.read_text() == commented  # the inline comment stays on its line
    comments = [x for x in complete.splitlines() if x.lstrip().startswith("#")]
    assert comments and comments == [x for x in real_copy.read_text().splitlines() if x.lstrip().startswith("#")]
    again = runner.invoke(main, ["deps", "--check", "--dvc-yaml", str(real_copy)])
    assert again.exit_code == 0 and "the code deps of all 18 stages are complete" in again.output


def test_deps_prints_yaml_per_stage(real_copy: Path):
    out = CliRunner().invoke(main, ["deps", "split", "report", "--dvc-yaml", str(real_copy)])
    assert out.exit_code == 0, out.output
    printed = yaml.safe_load(out.output)
    assert list(printed) == ["split", "report"]
    assert printed == stage_code(real_copy, ["split", "report"])
    assert "stages/split.py" in printed["split"] and "src/explainft/stages/split.py" in printed["split"]


# --------------------------------------------------------------------------- dvc.lock


LOCK_HEAD = "schema: '2.0'\nstages:\n"
LOCK_ENTRIES = {
    "gen@a": "  gen@a:\n    cmd: python stages/gen.py a\n    outs:\n    - path: out/a\n      hash: md5\n"
    "      md5: 0cc175b9c0f1b6a831c399e269772661\n      size: 1\n",
    "gen@old": "  gen@old:\n    cmd: python stages/gen.py old\n    outs:\n    - path: out/old\n      hash: md5\n"
    "      md5: 149603e6c03516362a8da23f624db945\n      size: 3\n",
    "gen@b": "  gen@b:\n    cmd: python stages/gen.py b\n    outs:\n    - path: out/b\n      hash: md5\n"
    "      md5: 92eb5ffee6ae2fec3ad71c777531578f\n      size: 1\n",
    "fit@a-1": "  fit@a-1:\n    cmd: python stages/fit.py a 1\n",
    "fit@a": "  fit@a:\n    cmd: python stages/fit.py a\n",
}


def test_prune_lock_drops_only_the_entries_of_stages_no_longer_defined(tmp_path: Path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "params.yaml").write_text("names: [a, b]\nks: [1]\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  gen:\n    foreach: ${names}\n    do:\n      cmd: python stages/gen.py ${item}\n      outs:\n"
        "        - out/${item}\n"
        "  fit:\n    matrix:\n      name: ${names}\n      k: ${ks}\n    cmd: python stages/fit.py ${item.name} "
        "${item.k}\n"
    )
    lock = tmp_path / "dvc.lock"
    lock.write_text(LOCK_HEAD + "".join(LOCK_ENTRIES.values()))
    out = CliRunner().invoke(main, ["prune-lock", "--root", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert out.output == "dvc.lock: removed 2 orphan entries: fit@a, gen@old\n"
    assert lock.read_text() == LOCK_HEAD + "".join(v for k, v in LOCK_ENTRIES.items() if k not in ("gen@old", "fit@a"))
    assert prune_lock(tmp_path) == []


def test_the_real_lock_has_no_orphan_entries(tmp_path: Path):
    from dvc.repo import Repo

    Repo.init(str(tmp_path), no_scm=True).close()
    for name in ("dvc.yaml", "params.yaml", "dvc.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert prune_lock(tmp_path) == []
    assert (tmp_path / "dvc.lock").read_bytes() == (ROOT / "dvc.lock").read_bytes()


def test_the_report_depends_on_every_library_module_any_stage_runs(real_copy: Path):
    """Other stages depend on the modules they import; the report, whose provenance names the commit of its
    inputs, on the library code of every stage (not on their argument-parsing scripts)."""
    code = stage_code(real_copy)
    library = {f for files in code.values() for f in files if f.startswith("src/explainft/")}
    assert set(code["report"]) == library | {"stages/report.py"}
    assert "src/explainft/train.py" in code["report"] and "src/explainft/train.py" in code["finetune"]
    assert "src/explainft/train.py" not in code["evaluate"]  # a stage below the report: only what it imports
    assert not any(f.startswith("stages/") and f != "stages/report.py" for f in code["report"])
    # asked for the report alone, it is the same union
    assert stage_code(real_copy, ["report"]) == {"report": code["report"]}
