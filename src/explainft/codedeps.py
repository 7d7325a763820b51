"""The project code each DVC stage runs, from the static import graph; dvc.yaml's code deps kept equal to it.

One idea, over 500 lines: the import graph of a stage and the dvc.yaml text that must equal it.

A stage's command is ``python stages/<name>.py ...``. What it runs is that script and every project module
it imports, directly or through other modules. :func:`stage_code` computes that set from the source alone
(``ast``; nothing is imported):

* every ``import`` and ``from ... import`` anywhere in a module counts, including those inside functions,
  ``try`` blocks and ``if TYPE_CHECKING:`` (a superset of what one run executes is the safe side);
* importing ``explainft.a.b`` also runs ``explainft/__init__.py`` and ``explainft/a/__init__.py``;
  ``from P import n`` imports the submodule ``P.n`` where there is one, else ``n`` is a name defined in ``P``;
  relative imports resolve against the importing module's package;
* ``importlib.import_module(f"{__name__}.{...}")`` (or ``f"{__package__}.{...}"``) is a registry loading one
  of its package's modules by name: it counts as importing every module of that package, subpackages
  included (a stage that can load any loader depends on all of them). A literal string argument resolves
  like an ``import``. Any other computed argument to ``import_module`` or ``__import__`` is an error naming
  the file and line, so that a new dynamic import cannot escape the analysis;
* only project files count: ``src/explainft/**`` and the stage script, plus any module of ``stages/`` a
  script imports by a top-level name (the script's folder is first on ``sys.path``). The standard library
  and third-party packages are ignored;
* the ``report`` stage is the exception: its code is every library module any stage runs (its own script
  and imports, and every other stage's ``src/explainft`` files; not their scripts, which are argument
  parsing). The report states the commit of its inputs (:mod:`explainft.provenance`), and DVC reruns it
  only when one of them changes, so the commit covers the code behind every number it shows. A code change
  anywhere thus reruns the report, which takes seconds.

dvc.yaml's code deps are the deps that are a ``.py`` file, or a folder, under ``src/explainft`` or
``stages`` (``src`` itself counts as such a folder). :func:`compare` reports per stage the computed files
it does not declare (``missing``) and the declared code deps that are not exactly computed (``extra``).
A declared folder is accepted only when every ``.py`` file in it is in the computed set, and then declares
them all; otherwise it is extra, because a change to a module the stage does not import would rerun the
stage. :func:`write` rewrites the code entries of each stage's ``deps`` at the text level: the code-dep
lines go, the computed files (never folders) go where the first of them was; comments, the order of the
other deps and every other line stay as they are. Other deps (data, models, golden, paper, metrics, a
non-``.py`` file) are neither compared nor touched. ``foreach`` (``do:``) and ``matrix`` stages are read as
templates: their command and code deps do not depend on the item.

Stages may share one definition through YAML anchors and merge keys (``finetune: &finetune`` ...,
``finetune_ablation: {<<: *finetune, matrix: ...}``): each stage is compared with the deps it resolves to, so
``--check`` covers every stage, and :func:`write` rewrites a shared ``deps`` list once, in the block of the
stage where it is written (where the ``cmd`` is, if the shared definition has no ``deps``). The stages that
share a list must run the same code; otherwise writing is an error naming them.

:func:`prune_lock` removes the dvc.lock entries of stages that dvc.yaml and params.yaml no longer define
(a renamed matrix leaves its old entries behind); the defined names come from DVC's own index.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .errors import ExplainftError
from .fsutil import atomic_open
from .provenance import REPORT_STAGE

PACKAGE = "explainft"
PACKAGE_DIR = PurePosixPath("src") / PACKAGE
STAGES_DIR = PurePosixPath("stages")
_CMD = re.compile(r"^python\s+(?P<script>stages/[A-Za-z_][A-Za-z0-9_]*\.py)(?:\s|$)")
_IMPORTERS = {"import_module", "__import__"}


class CodeDepsError(ExplainftError):
    """The import graph could not be computed, or dvc.yaml/dvc.lock could not be checked or rewritten."""


# --------------------------------------------------------------------------- the import graph


@dataclass(frozen=True)
class _Module:
    name: str  # dotted: explainft.annotate.base; a stages/ module by its file stem; a script "__main__"
    path: Path  # absolute
    is_package: bool  # an __init__.py

    @property
    def package(self) -> str:
        """The package its relative imports resolve against ('' for a top-level module)."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


class ImportGraph:
    """The project's modules under ``root`` (src/explainft/** and stages/*.py), each parsed once."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        pkg = self.root / PACKAGE_DIR
        if not (pkg / "__init__.py").is_file():
            raise CodeDepsError(
                f"{pkg}/__init__.py not found: the project root {self.root} must hold the "
                f"{PACKAGE} package in {PACKAGE_DIR}/"
            )
        self.modules: dict[str, _Module] = {}
        for path in sorted(pkg.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            self.modules[".".join(parts)] = _Module(".".join(parts), path, is_package)
        self.stage_modules: dict[str, _Module] = {
            p.stem: _Module(p.stem, p, False) for p in sorted((self.root / STAGES_DIR).glob("*.py"))
        }
        self._imports: dict[Path, set[_Module]] = {}

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def files_of(self, script: str | Path) -> list[str]:
        """The project files ``python <script>`` runs (the script included): root-relative POSIX paths, sorted."""
        path = self.root / PurePosixPath(script)
        if not path.is_file():
            raise CodeDepsError(f"{path}: no such script")
        start = _Module("__main__", path, False)
        seen = {start.path: start}
        todo = [start]
        while todo:
            for dep in self.imports(todo.pop()):
                if dep.path not in seen:
                    seen[dep.path] = dep
                    todo.append(dep)
        return sorted(self.rel(p) for p in seen)

    def package_modules(self, package: str) -> list[_Module]:
        """The package's own __init__ and every module below it, subpackages included."""
        return [m for n, m in self.modules.items() if n == package or n.startswith(package + ".")]

    def imports(self, module: _Module) -> set[_Module]:
        """The project modules ``module`` imports directly (with their parent packages' __init__ files)."""
        if module.path not in self._imports:
            self._imports[module.path] = _ModuleImports(self, module).collect()
        return self._imports[module.path]


class _ModuleImports:
    """One module's direct project imports, from its syntax tree."""

    def __init__(self, graph: ImportGraph, module: _Module):
        self.graph = graph
        self.module = module
        self.where = graph.rel(module.path)
        self.found: set[_Module] = set()
        # a script, or a stages/ module it imports, runs with stages/ first on sys.path
        self.in_stages = module.path.parent == graph.root / STAGES_DIR

    def collect(self) -> set[_Module]:
        try:
            tree = ast.parse(self.module.path.read_text(encoding="utf-8"), filename=str(self.module.path))
        except SyntaxError as e:
            raise CodeDepsError(f"{self.where}:{e.lineno}: cannot parse ({e.msg}); fix the syntax error") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.add_absolute(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                self.add_from(node)
            elif isinstance(node, ast.Call) and _callee(node.func) in _IMPORTERS:
                self.add_dynamic(node)
        return self.found

    # -- resolution

    def lookup(self, name: str) -> _Module | None:
        """The project module ``name`` names, or None for the standard library and third-party packages."""
        top = name.partition(".")[0]
        if top == PACKAGE:
            return self.graph.modules.get(name)
        if self.in_stages and top in self.graph.stage_modules:
            return self.graph.stage_modules[name] if name == top else None
        return None

    def is_project(self, name: str) -> bool:
        top = name.partition(".")[0]
        return top == PACKAGE or (self.in_stages and top in self.graph.stage_modules)

    def add_absolute(self, name: str, line: int) -> None:
        """``import a.b.c``: a, a.b and a.b.c all run."""
        if not self.is_project(name):
            return
        if self.lookup(name) is None:
            raise CodeDepsError(
                f"{self.where}:{line}: imports {name}, which is no module of the project "
                f"(no {name.replace('.', '/')}.py or package); fix the import"
            )
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            if (m := self.lookup(".".join(parts[:i]))) is not None:
                self.found.add(m)

    def relative_base(self, level: int, module: str | None, line: int) -> str:
        package = self.module.package
        if self.module.name == "__main__" or (self.in_stages and not package):
            raise CodeDepsError(
                f"{self.where}:{line}: relative import in a script run as `python stages/...` "
                f"(it has no package); import {PACKAGE}.<module> instead"
            )
        parts = package.split(".")
        if level - 1 >= len(parts):
            raise CodeDepsError(
                f"{self.where}:{line}: relative import goes {level} levels up from {package}, "
                f"beyond the top-level package"
            )
        base = ".".join(parts[: len(parts) - (level - 1)])
        return f"{base}.{module}" if module else base

    def add_from(self, node: ast.ImportFrom) -> None:
        """``from P import n``: P runs, and P.n too where it is a submodule."""
        base = self.relative_base(node.level, node.module, node.lineno) if node.level else node.module or ""
        if not self.is_project(base):
            return
        self.add_absolute(base, node.lineno)
        for alias in node.names:
            if alias.name != "*" and (sub := self.lookup(f"{base}.{alias.name}")) is not None:
                self.found.add(sub)

    def add_dynamic(self, call: ast.Call) -> None:
        """``importlib.import_module(...)`` / ``__import__(...)``: a literal, or a registry of its own package."""
        arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
        line = call.lineno
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            name = arg.value
            if name.startswith("."):
                anchor = (
                    call.args[1]
                    if len(call.args) > 1
                    else next((k.value for k in call.keywords if k.arg == "package"), None)
                )
                if not (isinstance(anchor, ast.Name) and anchor.id in ("__name__", "__package__")):
                    raise CodeDepsError(
                        f"{self.where}:{line}: relative import_module({name!r}) without "
                        f"package=__name__ or __package__; the analysis cannot resolve it"
                    )
                level = len(name) - len(name.lstrip("."))
                start = self.own_package(anchor.id, line)
                parts = start.split(".")
                if level - 1 >= len(parts):
                    raise CodeDepsError(
                        f"{self.where}:{line}: import_module({name!r}) goes beyond the top-level package"
                    )
                rest = name[level:]
                base = ".".join(parts[: len(parts) - (level - 1)])
                name = f"{base}.{rest}" if rest else base
            self.add_absolute(name, line)
            return
        package = self.registry_package(arg)
        if package is None:
            raise CodeDepsError(
                f"{self.where}:{line}: dynamic import with a computed module name: the code-dependency analysis "
                f"cannot tell which module it loads. Use a literal name, or "
                f'import_module(f"{{__name__}}.{{...}}") for a module of this package (which counts as '
                f"importing all of them)"
            )
        for m in self.graph.package_modules(self.own_package(package, line)):
            self.found.add(m)
        self.add_absolute(self.own_package(package, line), line)  # its parents' __init__ files

    def own_package(self, dunder: str, line: int) -> str:
        """The package ``__name__`` or ``__package__`` denotes in this module."""
        if self.module.name == "__main__" or not self.module.name.startswith(PACKAGE):
            raise CodeDepsError(
                f"{self.where}:{line}: {dunder} in a stage script is not a package; import {PACKAGE}.<module> by name"
            )
        if dunder == "__name__" and not self.module.is_package:
            raise CodeDepsError(
                f'{self.where}:{line}: f"{{__name__}}.…" in a module that is not a package '
                f"names no module; use {{__package__}} or move the registry to __init__.py"
            )
        return self.module.package

    @staticmethod
    def registry_package(arg: ast.expr | None) -> str | None:
        """``__name__``/``__package__`` for ``f"{__name__}.{...}"`` (or ``{__package__}.``), else None."""
        if not isinstance(arg, ast.JoinedStr) or len(arg.values) < 2:
            return None
        head, dot = arg.values[0], arg.values[1]
        if (
            isinstance(head, ast.FormattedValue)
            and head.conversion == -1
            and head.format_spec is None
            and isinstance(head.value, ast.Name)
            and head.value.id in ("__name__", "__package__")
            and isinstance(dot, ast.Constant)
            and isinstance(dot.value, str)
            and dot.value.startswith(".")
        ):
            return head.value.id
        return None


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


# --------------------------------------------------------------------------- dvc.yaml's stages


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CodeDepsError(f"{path}: no such file") from None
    except yaml.YAMLError as e:
        raise CodeDepsError(f"{path}: not valid YAML: {e}") from None


def _stages(dvc_yaml: Path, doc: Any = None) -> dict[str, dict]:
    """{stage: its template body (``do:`` for foreach)} from dvc.yaml, read as plain YAML (no interpolation)."""
    doc = _load_yaml(dvc_yaml) if doc is None else doc
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        raise CodeDepsError(f"{dvc_yaml}: no stages: mapping")
    out = {}
    for name, body in stages.items():
        if isinstance(body, dict) and "foreach" in body:
            body = body.get("do")
        if not isinstance(body, dict):
            raise CodeDepsError(f"{dvc_yaml}: stage {name}: not a mapping with cmd and deps")
        out[str(name)] = body
    return out


def _select(stages: dict[str, dict], names: Iterable[str] | None, dvc_yaml: Path) -> list[str]:
    if not names:
        return list(stages)
    names = list(names)
    unknown = [n for n in names if n not in stages]
    if unknown:
        raise CodeDepsError(f"{dvc_yaml}: no stage {', '.join(unknown)}; its stages: {', '.join(stages)}")
    return names


def stage_script(name: str, body: dict, dvc_yaml: Path) -> str:
    """The script of ``python stages/<x>.py ...`` (root-relative), the only command form a stage may have."""
    cmd = body.get("cmd")
    m = _CMD.match(cmd.strip()) if isinstance(cmd, str) else None
    if m is None:
        raise CodeDepsError(
            f"{dvc_yaml}: stage {name}: cmd {cmd!r} is not `python stages/<name>.py ...`; "
            f"the code-dependency analysis knows only that form"
        )
    return m["script"]


def stage_code(
    dvc_yaml: str | Path, names: Iterable[str] | None = None, graph: ImportGraph | None = None
) -> dict[str, list[str]]:
    """{stage: the project files its command runs}, for every stage of dvc.yaml (or those in ``names``)."""
    dvc_yaml = Path(dvc_yaml)
    stages = _stages(dvc_yaml)
    graph = graph or ImportGraph(dvc_yaml.parent)
    code = {n: graph.files_of(stage_script(n, stages[n], dvc_yaml)) for n in _select(stages, names, dvc_yaml)}
    if REPORT_STAGE in code:  # the report names the commit of every library module behind its numbers
        every = set(code[REPORT_STAGE])
        for n in stages:
            files = code[n] if n in code else graph.files_of(stage_script(n, stages[n], dvc_yaml))
            every.update(f for f in files if PurePosixPath(f).is_relative_to(PACKAGE_DIR))
        code[REPORT_STAGE] = sorted(every)
    return code


def _norm(dep: str) -> str:
    return PurePosixPath(dep.strip()).as_posix().removeprefix("./")


def is_code_dep(dep: Any, root: Path) -> bool:
    """A ``.py`` file, or a folder, under src/explainft or stages (``src`` itself too); templated paths are not."""
    if not isinstance(dep, str) or "${" in dep:
        return False
    p = PurePosixPath(_norm(dep))
    inside = any(p == area or area in p.parents for area in (PACKAGE_DIR, STAGES_DIR))
    if p.suffix == ".py":
        return inside
    folder = (root / p).is_dir() or not p.suffix
    return folder and (inside or (str(p) != "." and p in PACKAGE_DIR.parents))


@dataclass(frozen=True)
class Drift:
    """One stage's code deps against the import graph."""

    stage: str
    computed: tuple[str, ...]
    declared: tuple[str, ...]  # its code deps as written
    missing: tuple[str, ...]  # computed, not declared
    extra: tuple[str, ...]  # declared, not exactly computed

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.extra:
            parts.append("extra " + ", ".join(self.extra))
        return f"{self.stage}: " + "; ".join(parts) if parts else f"{self.stage}: complete"


def _deps(body: dict) -> list:
    deps = body.get("deps") or []
    return deps if isinstance(deps, list) else [deps]


def drift(stage: str, computed: list[str], deps: list, root: Path) -> Drift:
    """Compare one stage's declared deps with its computed code files (see the module docstring for folders)."""
    wanted = set(computed)
    declared = [_norm(d) for d in deps if is_code_dep(d, root)]
    covered: set[str] = set()
    extra = []
    for dep in declared:
        if dep.endswith(".py"):
            (covered.add if dep in wanted else extra.append)(dep)
            continue
        folder = root / dep
        files = (
            {p.relative_to(root).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts}
            if folder.is_dir()
            else set()
        )
        if files and files <= wanted:
            covered |= files
        else:
            extra.append(dep)
    return Drift(stage, tuple(computed), tuple(declared), tuple(sorted(wanted - covered)), tuple(sorted(extra)))


def compare(dvc_yaml: str | Path, names: Iterable[str] | None = None, graph: ImportGraph | None = None) -> list[Drift]:
    """Each stage's (or each named stage's) declared code deps against its computed ones, in dvc.yaml order."""
    dvc_yaml = Path(dvc_yaml)
    stages = _stages(dvc_yaml)
    graph = graph or ImportGraph(dvc_yaml.parent)
    code = stage_code(dvc_yaml, names, graph)
    return [drift(n, files, _deps(stages[n]), graph.root) for n, files in code.items()]


def render(code: dict[str, list[str]]) -> str:
    """``stage:`` then its files as a YAML list, per stage: the entries to paste under that stage's ``deps:``."""
    return "".join(f"{stage}:\n" + "".join(f"  - {f}\n" for f in files) for stage, files in code.items())


# --------------------------------------------------------------------------- rewriting dvc.yaml's deps


_TOP_STAGES = re.compile(r"^stages:\s*(#.*)?$")
_HEAD = re.compile(r"^\s*(?P<key>[^\s#][^#]*?)\s*:(?:\s|$)")  # `  name:`, then maybe `&anchor`, a value, a comment
_DEPS_KEY = re.compile(r"^\s+deps:\s*(&\S+\s*)?(#.*)?$")  # `deps:`, maybe anchored, its items below
_ITEM = re.compile(r"^(?P<indent>\s*)- (?P<rest>.*?)\s*$")
_COMMENT = re.compile(r"(\s+#.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_filler(line: str) -> bool:
    """A blank or comment-only line (it belongs to no key)."""
    s = line.strip()
    return not s or s.startswith("#")


def _stage_blocks(lines: list[str], where: Path) -> dict[str, tuple[int, int]]:
    """{stage: (first line, end line)} of the ``stages:`` section, by line index."""
    import yaml

    try:
        start = next(i for i, line in enumerate(lines) if _TOP_STAGES.match(line))
    except StopIteration:
        raise CodeDepsError(f"{where}: no top-level `stages:` line") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in ("", " ", "\n", "#")), len(lines))
    first = next((i for i in range(start + 1, end) if not _is_filler(lines[i])), None)
    if first is None:
        return {}
    width = _indent(lines[first])
    heads = [i for i in range(start + 1, end) if not _is_filler(lines[i]) and _indent(lines[i]) == width]
    blocks = {}
    for k, i in enumerate(heads):
        try:
            key = yaml.safe_load(m["key"]) if (m := _HEAD.match(lines[i])) else None
        except yaml.YAMLError:
            key = None
        if key is None or isinstance(key, (dict, list)):
            raise CodeDepsError(f"{where}:{i + 1}: expected a stage name and a colon, got {lines[i].strip()!r}")
        blocks[str(key)] = (i, heads[k + 1] if k + 1 < len(heads) else end)
    return blocks


def _rewrite_stage(
    lines: list[str], span: tuple[int, int], stage: str, files: list[str], root: Path, where: Path
) -> list[str]:
    """The stage's lines with its code deps replaced by ``files`` (see :func:`write`)."""
    import yaml

    lo, hi = span
    body = lines[lo:hi]
    keys = [i for i, line in enumerate(body) if _DEPS_KEY.match(line)]
    if len(keys) > 1:
        raise CodeDepsError(f"{where}:{lo + keys[1] + 1}: stage {stage} has more than one deps: key")
    if not keys:
        if odd := [i for i, line in enumerate(body) if re.match(r"^\s+deps:", line)]:
            raise CodeDepsError(
                f"{where}:{lo + odd[0] + 1}: stage {stage}: {body[odd[0]].strip()!r} is no `deps:` "
                f"key with its list below it; write the list there"
            )
        cmds = [i for i, line in enumerate(body) if re.match(r"^\s+cmd:\s*\S", line)]
        if len(cmds) != 1:
            raise CodeDepsError(
                f"{where}:{lo + 1}: stage {stage} has no deps: key and no one-line cmd: to put "
                f"one after; add `deps:` to it"
            )
        at = cmds[0] + 1
        pad = " " * _indent(body[cmds[0]])
        return body[:at] + [f"{pad}deps:\n"] + [f"{pad}  - {f}\n" for f in files] + body[at:]
    key = keys[0]
    key_indent = _indent(body[key])
    stop = next(
        (j for j in range(key + 1, len(body)) if not _is_filler(body[j]) and _indent(body[j]) <= key_indent), len(body)
    )
    item_indent = None
    out = body[: key + 1]
    insert_at = None
    comments: dict[str, str] = {}
    j = key + 1
    while j < stop:
        line = body[j]
        m = _ITEM.match(line)
        if m and (item_indent is None or len(m["indent"]) == item_indent):
            item_indent = len(m["indent"])
            # the item's continuation lines (a dep given as a mapping) go with it
            nxt = next(
                (k for k in range(j + 1, stop) if not _is_filler(body[k]) and _indent(body[k]) <= item_indent), stop
            )
            value = yaml.safe_load(m["rest"]) if m["rest"] else None
            if nxt == j + 1 and is_code_dep(value, root):
                if (c := _COMMENT.search(m["rest"])) is not None:
                    if _norm(value) in files:
                        comments[_norm(value)] = c.group(1)
                    else:  # the dep goes, its comment stays where it was
                        out.append(f"{m['indent']}{c.group(1).strip()}\n")
                if insert_at is None:
                    insert_at = len(out)
                j += 1
                continue
            out.extend(body[j:nxt])
            j = nxt
            continue
        out.append(line)
        j += 1
    pad = " " * (item_indent if item_indent is not None else key_indent + 2)
    new = [f"{pad}- {f}{comments.get(f, '')}\n" for f in files]
    if insert_at is None:
        insert_at = key + 1
    return out[:insert_at] + new + out[insert_at:] + body[stop:]


def _entry(mapping: Any, key: str) -> tuple[Any, Any] | None:
    """(key node, value node) of ``key`` in a composed YAML mapping, following merge keys (``<<``) as YAML does:
    the mapping's own keys first, then the merged mappings in order. None if absent (or not a mapping)."""
    import yaml

    if not isinstance(mapping, yaml.MappingNode):
        return None
    merged = []
    for k, v in mapping.value:
        if k.tag == "tag:yaml.org,2002:merge":
            merged.extend(v.value if isinstance(v, yaml.SequenceNode) else [v])
        elif isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return next((found for m in merged if (found := _entry(m, key)) is not None), None)


def _value(mapping: Any, key: str) -> Any:
    found = _entry(mapping, key)
    return found[1] if found else None


def deps_owners(dvc_yaml: str | Path, text: str | None = None) -> dict[str, str]:
    """{stage: the stage in whose block of dvc.yaml its ``deps`` list is written}, for every stage.

    A stage is its own owner unless it takes its ``deps`` from another stage's definition through a YAML anchor
    (``deps: *code``) or a merge key (``<<: *finetune``); then the owner is the stage where the list is written.
    A stage that resolves to no ``deps`` is owned where its ``cmd`` is (:func:`write` puts a new ``deps:`` there).
    """
    import yaml

    dvc_yaml = Path(dvc_yaml)
    text = dvc_yaml.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines(keepends=True)
    blocks = _stage_blocks(lines, dvc_yaml)
    try:
        doc = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise CodeDepsError(f"{dvc_yaml}: not valid YAML: {e}") from None
    stages = _value(doc, "stages")
    if not isinstance(stages, yaml.MappingNode):
        raise CodeDepsError(f"{dvc_yaml}: no stages: mapping")
    owners = {}
    for key, stage in stages.value:
        name = str(key.value)
        body = _value(stage, "do") if _entry(stage, "foreach") is not None else stage
        deps = _entry(body, "deps")
        if deps is None:  # no deps: one goes beside the cmd
            where = _entry(body, "cmd")
        elif isinstance(deps[1], yaml.SequenceNode) and not deps[1].flow_style:
            where = deps[1]  # the list's lines (with an alias, where the anchored list is written)
        elif deps[1].tag == "tag:yaml.org,2002:null":
            where = deps  # an empty `deps:`
        else:
            raise CodeDepsError(
                f"{dvc_yaml}:{deps[1].start_mark.line + 1}: stage {name}: deps is not a block "
                f"list (one `- path` line per dep); write it as one"
            )
        if isinstance(where, tuple):
            where = where[0]
        line = where.start_mark.line if where is not None else blocks.get(name, (-1, -1))[0]
        owner = next((n for n, (lo, hi) in blocks.items() if lo <= line < hi), None)
        if owner is None:
            raise CodeDepsError(
                f"{dvc_yaml}:{line + 1}: stage {name} takes its deps from outside the stages: "
                f"section; define them in a stage (and share that stage's with an anchor)"
            )
        owners[name] = owner
    return owners


def _verify(old: Any, new_text: str, code: dict[str, list[str]], root: Path, where: Path) -> None:
    """The rewritten dvc.yaml parses, differs from the old one only in those stages' code deps, and checks clean."""
    import yaml

    try:
        new = yaml.safe_load(new_text)
    except yaml.YAMLError as e:
        raise CodeDepsError(f"{where}: the rewritten deps do not parse ({e}); the file was left as it was") from None
    old_stages, new_stages = _stages(where, old), _stages(where, new)

    def without_code(doc: Any, stages: dict[str, dict]) -> Any:
        for body in stages.values():
            if kept := [d for d in _deps(body) if not is_code_dep(d, root)]:
                body["deps"] = kept
            else:  # no deps but code: the same as no deps key (write adds one where there was none)
                body.pop("deps", None)
        return doc

    bad = [
        d.describe()
        for n, files in code.items()
        if not (d := drift(n, files, _deps(new_stages[n]), root)).ok or list(d.declared) != files
    ]
    if without_code(old, old_stages) != without_code(new, new_stages) or bad:
        raise CodeDepsError(
            f"{where}: rewriting the code deps would change more than them or leave them "
            f"incomplete ({'; '.join(bad) or 'other keys differ'}); the file was left as it was"
        )


def write(dvc_yaml: str | Path, names: Iterable[str] | None = None, graph: ImportGraph | None = None) -> list[str]:
    """Rewrite the code deps of each stage (or each named stage) in dvc.yaml to the computed files, in place.

    A ``deps`` list that several stages share (a YAML anchor or merge key, see :func:`deps_owners`) is rewritten
    once, where it is written, and counts as the deps of every stage sharing it, named or not; the stages that
    share it must run the same code.

    Text-level: in each stage's ``deps`` list the lines that are code deps are removed and the computed files
    (sorted) are inserted where the first of them was (at the top of the list if there was none); comments,
    other deps and all other lines are kept byte for byte. An inline comment on a kept file stays on its line;
    one on a dep that goes stays as a comment line where that dep was.
    The result is parsed and checked before the file is replaced. Returns the stages whose code deps changed
    (every stage sharing a changed list).
    """
    dvc_yaml = Path(dvc_yaml)
    graph = graph or ImportGraph(dvc_yaml.parent)
    text = dvc_yaml.read_text(encoding="utf-8")
    old = _load_yaml(dvc_yaml)
    stages = _stages(dvc_yaml, old)
    selected = _select(stages, names, dvc_yaml)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    blocks = _stage_blocks(lines, dvc_yaml)
    missing = [n for n in stages if n not in blocks]
    if missing:
        raise CodeDepsError(
            f"{dvc_yaml}: stage {', '.join(missing)} not found as a line `  <name>:` under "
            f"`stages:`; write dvc.yaml's stages one per block"
        )
    # a deps list shared through an anchor or merge key is written once, in its owner's block, for every stage
    # that shares it (selected or not): they must all run the same code
    owners = deps_owners(dvc_yaml, text)
    sharing: dict[str, list[str]] = {}
    for n in stages:
        sharing.setdefault(owners[n], []).append(n)
    wanted = list(dict.fromkeys(owners[n] for n in selected))
    code = stage_code(dvc_yaml, [n for n in stages if owners[n] in wanted], graph)
    files_of: dict[str, list[str]] = {}
    for owner in wanted:
        variants = {tuple(code[n]) for n in sharing[owner]}
        if len(variants) > 1:
            raise CodeDepsError(
                f"{dvc_yaml}: stages {', '.join(sharing[owner])} share the deps list written in "
                f"stage {owner}, but their commands run different code; give each its own deps:"
            )
        files_of[owner] = list(variants.pop())
    changed = [
        n for n, files in code.items() if [_norm(d) for d in _deps(stages[n]) if is_code_dep(d, graph.root)] != files
    ]
    for owner in sorted(files_of, key=lambda n: blocks[n][0], reverse=True):  # bottom up: spans stay valid
        lo, hi = blocks[owner]
        lines[lo:hi] = _rewrite_stage(lines, (lo, hi), owner, files_of[owner], graph.root, dvc_yaml)
    new_text = "".join(lines)
    _verify(old, new_text, code, graph.root, dvc_yaml)
    if new_text != text:
        with atomic_open(dvc_yaml) as fh:
            fh.write(new_text)
    again = [d.describe() for d in compare(dvc_yaml, code, graph) if not d.ok]
    if again:
        raise CodeDepsError(f"{dvc_yaml}: still incomplete after writing: {'; '.join(again)}")
    return changed


# --------------------------------------------------------------------------- dvc.lock


def defined_stages(root: str | Path) -> set[str]:
    """The stage names dvc.yaml + params.yaml define at ``root`` (``finetune@mixed-on_topic-none-0``), from DVC."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = Path(root).resolve()
    try:
        with Repo(str(root)) as repo:
            return {
                s.name
                for s in repo.index.stages
                if getattr(s, "name", None) and Path(s.path).resolve() == root / "dvc.yaml"
            }
    except DvcException as e:
        raise CodeDepsError(f"{root}: DVC could not read the pipeline: {e}") from None


def prune_lock(root: str | Path) -> list[str]:
    """Remove dvc.lock's entries for stages the current dvc.yaml + params.yaml do not define; returns their names.

    Text-level, like :func:`write`: each orphan's block of lines goes, every other byte stays. The result is
    parsed and checked (the same entries, less the orphans) before the file is replaced.
    """
    import yaml

    root = Path(root)
    path = root / "dvc.lock"
    if not path.is_file():
        return []
    old = _load_yaml(path)
    entries = old.get("stages") if isinstance(old, dict) else None
    if not isinstance(entries, dict):
        raise CodeDepsError(f"{path}: no stages: mapping")
    orphans = sorted(set(map(str, entries)) - defined_stages(root))
    if not orphans:
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    blocks = _stage_blocks(lines, path)
    for name in sorted(orphans, key=lambda n: blocks[n][0], reverse=True):
        lo, hi = blocks[name]
        lines[lo:hi] = []
    new_text = "".join(lines)
    expected = dict(old, stages={k: v for k, v in entries.items() if str(k) not in orphans})
    if yaml.safe_load(new_text) != expected:
        raise CodeDepsError(
            f"{path}: removing {', '.join(orphans)} would change other entries; the file was left as it was"
        )
    with atomic_open(path) as fh:
        fh.write(new_text)
    return orphans
