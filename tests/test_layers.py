"""The package's shape: imports run downward only (pyproject.toml's import contracts), with no cycle, no
function-local import of a project module and no private name imported across modules."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "explainft"
LINT = Path(sys.executable).with_name("lint-imports")


def modules() -> dict[str, Path]:
    """{dotted name: file} for every module of the package."""
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = p.relative_to(SRC.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in ``module`` (file ``path``) names."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def project_imports(module: str, path: Path) -> list[tuple[ast.AST, str, list[str], bool]]:
    """(node, imported module, names, inside a function) for each import of an explainft module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, path, node)
            if target.split(".")[0] == "explainft":
                out.append((node, target, [a.name for a in node.names], id(node) in local))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "explainft":
                    out.append((node, a.name, [], id(node) in local))
    return out


def lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_import_contracts_hold():
    run = lint_imports(ROOT, ROOT / "src")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    "where, imports",
    [
        ("config/scratch.py", "from ..train import finetune"),  # config above the library it configures
        ("layout.py", "from .stages import split"),  # the bottom layer reaching for a stage body
        ("datasets/scratch.py", "from ..annotate.base import Backend"),  # data below annotate
        ("analysis/scratch.py", "from ..report import build_report"),  # a library layer above its own
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path: Path, where: str, imports: str):
    """A copy of the package with one module importing upward (a new scratch module, or a line added to an
    existing one) fails `lint-imports`, naming the importer."""
    shutil.copytree(SRC, tmp_path / "src" / "explainft", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "explainft" / where
    before = target.read_text() if target.exists() else '"""Scratch."""\n'
    target.write_text(f"{before}\n{imports}  # noqa: E402, F401\n")
    run = lint_imports(tmp_path, tmp_path / "src")
    importer = "explainft." + where.removesuffix(".py").replace("/", ".")
    assert run.returncode == 1, run.stdout
    assert "1 broken" in run.stdout and f"{importer} ->" in run.stdout, run.stdout


def test_every_module_is_in_a_layer():
    """A module outside every layer would escape the contract: each top-level module and package is named."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    named = {w.strip('",') for w in text.split() if w.strip('",').startswith("explainft.")}
    top = {".".join(m.split(".")[:2]) for m in modules() if m != "explainft"}
    assert top - named == set(), f"add to a layer in pyproject.toml: {sorted(top - named)}"


def test_no_import_cycle():
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for _node, target, names, _local in project_imports(m, p):
            # `from package import submodule` imports the submodule; otherwise the named module
            subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in mods}
            graph[m] |= subs or ({target} if target in mods else set())
            graph[m].discard(m)
    # a package's __init__ importing its own submodules is how a package exposes them, not a cycle, when the
    # submodules do not import the package back; every other edge counts
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_function_local_import_of_a_project_module():
    """Lazy imports are for heavy third-party libraries (torch, transformers, matplotlib); a project module
    imported inside a function would hide a cycle or an upward import from the contracts' reader."""
    found = [
        f"{p.relative_to(ROOT)}:{node.lineno} imports {target}"
        for m, p in modules().items()
        for node, target, _names, local in project_imports(m, p)
        if local
    ]
    assert not found, "\n".join(found)


def test_no_private_name_imported_across_modules():
    found = []
    files = {**modules(), **{f"stages.{p.stem}": p for p in (ROOT / "stages").glob("*.py")}}
    for m, p in files.items():
        for node, target, names, _local in project_imports(m, p):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno} imports {', '.join(private)} from {target}")
    assert not found, "\n".join(found)


def test_stage_scripts_are_thin_entry_points():
    """Each stages/<stage>.py calls explainft.stages.<stage>.run; the work lives in the package."""
    for script in sorted((ROOT / "stages").glob("*.py")):
        text = script.read_text(encoding="utf-8")
        assert f"from explainft.stages import {script.stem}" in text, script.name
        assert (SRC / "stages" / f"{script.stem}.py").is_file(), script.name
        assert len(text.splitlines()) < 80, f"{script.name} holds more than argument parsing"


def test_a_module_over_500_lines_says_it_is_one_idea():
    """Rooms stay small: a module past 500 lines states, at the top of its docstring, the one idea it holds."""
    found = []
    for _m, p in modules().items():
        text = p.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "One idea, over 500 lines:" not in doc:
                found.append(f"{p.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    assert not found, "split by idea, or say which one idea it is: " + ", ".join(found)
