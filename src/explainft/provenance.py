"""Where the report's numbers come from: the commit of the pipeline's inputs, whether the work tree differs from
it, the profile, and a digest of the inputs dvc.lock recorded.

The report is itself a DVC output, and a fresh clone's ``dvc repro`` must reproduce it byte for byte. DVC reruns
the report stage only when one of its own deps or params changes, so everything the header states must be a
function of those, or a commit that changes something else would leave the committed report different from
what a clone produces. Hence:

* **commit** is the last commit that touched a git-tracked input *of the report stage*
  (``git log -1 --format=%H -- <inputs>``; :func:`stage_inputs`): its deps that no stage writes and its params
  files. Its code deps, which ``explainft deps`` keeps equal to every library module any stage runs
  (:mod:`explainft.codedeps` gives the report stage that union, not only the modules it imports); with
  ``stages/report.py``, ``params.yaml`` (all of it), ``paper/`` and ``golden/``.
  Committing the outputs (dvc.lock, metrics/, plots/, reports/) does not move it, and a clone finds the same
  commit. Left out: the other stage scripts (thin glue over the library) and dvc.yaml, which DVC cannot make
  a dependency; a commit that changes only them moves no commit named here.
* **dirty** is true when any input of the whole pipeline (:func:`pipeline_inputs`: every stage's deps that no
  stage writes, the params files, dvc.yaml; the stage scripts included) differs from HEAD in the work tree,
  untracked files included (``git status --porcelain -- <inputs>``). An output never makes it dirty. A
  repository whose report inputs were never committed has no commit and is dirty.
* **profile** is params ``profile``.
* **inputs_sha256** is a sha256 over what dvc.lock recorded for every stage upstream of the report
  (:func:`lock_inputs_sha256`): their params, and their deps (path and hash) except those the report stage
  does not itself depend on (the other stage scripts), for the reason above. ``dvc repro`` writes a stage's
  lock entry as soon as the stage finishes (checked with DVC 3.67), so when the report runs, the entries of
  every stage upstream of it are final. Stages that are not upstream of it (golden, explanation_stats) may
  run after it, so they are left out.

Outside a git repository, or without git, commit and dirty are ``None`` and the report says "not a git
checkout". The workflow that gives a publishable report: commit the code, ``dvc repro``, commit the outputs.
A report made with uncommitted inputs says so (dirty); after committing them, ``dvc repro --force report``
(DVC sees no input change, since the run already used them).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

REPORT_STAGE = "report"
DEFAULT_PARAMS = "params.yaml"


@dataclass(frozen=True)
class Provenance:
    commit: str | None  # full sha; None: not a git checkout, or the inputs were never committed
    dirty: bool | None  # None: not a git checkout
    profile: str
    inputs_sha256: str | None  # None: no dvc.lock (a report built outside `dvc repro`)
    git: bool = True  # False: not a git checkout (or git is missing)

    def to_dict(self) -> dict[str, Any]:
        """The metrics/report.json form (``git`` is implied by commit and dirty being null)."""
        d = asdict(self)
        del d["git"]
        return d

    def sentence(self) -> str:
        """The report header's words for it (Markdown)."""
        if not self.git:
            code = "not a git checkout (no commit to name)"
        elif self.commit is None:
            code = "inputs not committed yet (**dirty**: commit them, then `dvc repro`)"
        elif self.dirty:
            code = (
                f"inputs at commit `{self.commit}` **with uncommitted changes** (dirty: commit them, then "
                "`dvc repro --force report`, before publishing)"
            )
        else:
            code = f"inputs at commit `{self.commit}` (clean)"
        lock = f"dvc.lock inputs sha256 `{self.inputs_sha256}`" if self.inputs_sha256 else "no dvc.lock"
        return f"Profile **{self.profile}**, {code}, {lock}"


# --------------------------------------------------------------------------- the inputs, from dvc.yaml


def _static(path: str) -> str:
    """``path`` up to its first ``${...}`` interpolation, cut back to whole folders ("" if nothing is left)."""
    path = path.strip().rstrip("/")
    if "${" not in path:
        return path
    head = path[: path.index("${")]
    return head.rsplit("/", 1)[0] if "/" in head else ""


def _entries(items: Any) -> list[str]:
    """The paths of a deps/outs/metrics/plots list: plain strings, or one-key mappings ``{path: options}``."""
    out = []
    for it in items or []:
        if isinstance(it, str):
            out.append(it)
        elif isinstance(it, Mapping):
            out.extend(str(k) for k in it)
    return out


def _stage_bodies(dvc_yaml: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Stage name -> body (the ``do`` of a foreach, the body of a matrix stage, templates unresolved)."""
    stages = dvc_yaml.get("stages") or {}
    return {
        name: (body.get("do") if isinstance(body.get("do"), Mapping) else body)
        for name, body in stages.items()
        if isinstance(body, Mapping)
    }


def _params_files(body: Mapping[str, Any]) -> set[str]:
    files = set()
    for p in body.get("params") or []:
        if isinstance(p, Mapping):
            files.update(str(k) for k in p)
        else:
            files.add(DEFAULT_PARAMS)
    return files


def _overlap(a: str, b: str) -> bool:
    """Whether one path is the other or lies inside it ("" overlaps nothing: an unresolvable template)."""
    if not a or not b:
        return False
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _within(path: str, tops: Iterable[str]) -> bool:
    return any(path == t or path.startswith(t + "/") for t in tops if t)


def read_dvc_yaml(root: Path) -> dict[str, Any]:
    path = Path(root) / "dvc.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _outputs(dvc_yaml: Mapping[str, Any]) -> set[str]:
    return {
        _static(p)
        for body in _stage_bodies(dvc_yaml).values()
        for key in ("outs", "metrics", "plots")
        for p in _entries(body.get(key))
    }


def _source_deps(body: Mapping[str, Any], outputs: set[str]) -> set[str]:
    """A stage's deps that no stage writes (a dep equal to, inside or around an output is an output)."""
    deps = (_static(x) for x in _entries(body.get("deps")))
    return {d for d in deps if d and not any(_overlap(d, o) for o in outputs)}


def stage_inputs(dvc_yaml: Mapping[str, Any], stage: str = REPORT_STAGE) -> list[str]:
    """The git-tracked inputs of ``stage``, relative to the project root, sorted: its deps that no stage writes
    and its params files (templated paths count by their fixed leading folders)."""
    body = _stage_bodies(dvc_yaml).get(stage) or {}
    return sorted(_source_deps(body, _outputs(dvc_yaml)) | _params_files(body))


def pipeline_inputs(dvc_yaml: Mapping[str, Any]) -> list[str]:
    """The git-tracked inputs of the whole pipeline, sorted: every stage's deps that no stage writes
    (``data/``, ``models/``, ``metrics/evaluate``, ``plots/train`` are outputs), every params file, the top-level
    ``vars`` files, and ``dvc.yaml``."""
    outputs = _outputs(dvc_yaml)
    inputs = {"dvc.yaml"}
    for body in _stage_bodies(dvc_yaml).values():
        inputs |= _source_deps(body, outputs) | _params_files(body)
    inputs.update(str(v) for v in dvc_yaml.get("vars") or [] if isinstance(v, str))
    return sorted(inputs)


# --------------------------------------------------------------------------- git


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def _checked(p: subprocess.CompletedProcess, what: str, root: Path) -> str:
    if p.returncode != 0:
        raise RuntimeError(
            f"`git {what}` failed in {root}: {p.stderr.strip()}; fix the repository (or build the "
            "report outside it) and rerun the report stage"
        )
    return p.stdout


def git_state(
    root: Path, commit_paths: Iterable[str], dirty_paths: Iterable[str]
) -> tuple[bool, str | None, bool | None]:
    """``(a git checkout, last commit touching commit_paths, whether dirty_paths differ from HEAD)``; paths are
    relative to ``root``, and no paths means the whole work tree."""
    try:
        inside = _git(root, "rev-parse", "--is-inside-work-tree")
    except OSError:  # no git executable
        return False, None, None
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return False, None, None
    status = _checked(
        _git(root, "status", "--porcelain", "--untracked-files=all", "--", *dirty_paths),
        "status --porcelain -- <inputs>",
        root,
    )
    dirty = bool(status.strip())
    if _git(root, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        return True, None, True  # no commit yet
    commit = (
        _checked(_git(root, "log", "-1", "--format=%H", "--", *commit_paths), "log -1 -- <inputs>", root).strip()
        or None
    )
    return True, commit, dirty if commit is not None else True


# --------------------------------------------------------------------------- dvc.lock


def upstream_stages(lock_stages: Mapping[str, Any], deps: Iterable[str]) -> list[str]:
    """The dvc.lock stages whose outputs ``deps`` read, directly or through other such stages, sorted."""
    needed = {d for d in (_static(x) for x in deps) if d}
    found: set[str] = set()
    grew = True
    while grew:
        grew = False
        for name, entry in lock_stages.items():
            if name in found or not isinstance(entry, Mapping):
                continue
            outs = [o.get("path", "") for o in entry.get("outs") or [] if isinstance(o, Mapping)]
            if any(_overlap(o, d) for o in outs for d in needed):
                found.add(name)
                needed |= {d.get("path", "") for d in entry.get("deps") or [] if isinstance(d, Mapping)}
                grew = True
    return sorted(found)


def lock_inputs_sha256(root: Path, dvc_yaml: Mapping[str, Any], stage: str = REPORT_STAGE) -> str | None:
    """sha256 over the dvc.lock entries of every stage upstream of ``stage``: their params and their deps (each
    as recorded: path, hash, size), less the deps that are neither an output of a stage nor an input of ``stage``
    (:func:`stage_inputs`), in a canonical JSON form; None without a dvc.lock."""
    path = Path(root) / "dvc.lock"
    if not path.is_file():
        return None
    lock = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    body = _stage_bodies(dvc_yaml).get(stage) or {}
    outputs, own = _outputs(dvc_yaml), stage_inputs(dvc_yaml, stage)

    def tracked(dep: Mapping[str, Any]) -> bool:
        p = str(dep.get("path", ""))
        return any(_overlap(p, o) for o in outputs) or _within(p, own)

    digest = {
        n: {
            "deps": sorted((dict(d) for d in lock[n].get("deps") or [] if tracked(d)), key=lambda d: d.get("path", "")),
            "params": lock[n].get("params") or {},
        }
        for n in upstream_stages(lock, _entries(body.get("deps")))
        if n != stage
    }
    blob = json.dumps(digest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def collect(root: Path, params: Mapping[str, Any]) -> Provenance:
    """The provenance of a report built now in ``root`` (the project root) with ``params``."""
    root = Path(root)
    dvc_yaml = read_dvc_yaml(root)
    # without a dvc.yaml (a report built by hand) there is no list of inputs: the whole work tree counts
    commit_paths = stage_inputs(dvc_yaml) if dvc_yaml else []
    dirty_paths = pipeline_inputs(dvc_yaml) if dvc_yaml else []
    git, commit, dirty = git_state(root, commit_paths, dirty_paths)
    return Provenance(
        commit=commit,
        dirty=dirty,
        profile=str(params.get("profile", "unknown")),
        inputs_sha256=lock_inputs_sha256(root, dvc_yaml) if dvc_yaml else None,
        git=git,
    )
