"""Settings chosen on validation data: ``explainft select``, a grid search whose only evidence is the
validation split.

A *selection* trains the profile's fine-tune cells (by default the main grid; ``--set``/``--dimension``/
``--variant`` narrow it) once per candidate of a grid of param overrides (``train.score_target=hard,soft``,
``train.epochs=4,8`` …), with the pipeline's own fine-tune (:func:`explainft.training_stages.run_finetune`),
and compares the candidates by the mean over cells of ``validation_mse``: the trained model's expected score
against the merged score on the cell's validation split. The test split is never read. The candidate with the
lowest mean wins (a tie goes to the first in grid order).

The runs happen in a scratch folder (``--work``, default ``tmp/select/<name>``: outside DVC's outputs and
git-ignored), whose ``data`` and ``models/student`` are links to the project's, so the stages that build them
(``dvc repro variants student``) must have run. Each finished cell's result is kept there under a key of its
settings and inputs, so a killed selection resumes and a rerun with a larger grid trains only the new
candidates.

The record, ``selection/<name>.json``, is small, deterministic (no timings, dates or paths outside the
project) and committed: the report reads it and states which settings were chosen on validation, whether the
profile uses them, and whether the validation and training files are still the ones the selection read
(``inputs``: a digest over every file it read and the student's files), so a choice can never silently
outlive its data.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from .errors import ConfigError
from .fsutil import sha256_file, write_json

SELECTION_DIR = "selection"
METRIC = "validation_mse"
_DECIMALS = 6


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``["train.score_target=hard,soft", "train.epochs=4,8"]`` -> ``{key: [values]}`` (values read as YAML)."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError("--grid", f"{spec!r}: expected KEY=VALUE[,VALUE...], e.g. train.epochs=4,8")
        if key in grid:
            raise ConfigError("--grid", f"{key} is given twice")
        parsed = [yaml.safe_load(v.strip()) for v in values.split(",")]
        if len({json.dumps(v, sort_keys=True) for v in parsed}) != len(parsed):
            raise ConfigError("--grid", f"{key} lists a value twice")
        grid[key] = parsed
    if not grid:
        raise ConfigError("--grid", "give at least one KEY=VALUE[,VALUE...]")
    return grid


def candidates(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def override(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``params`` with dotted keys set; a key whose section or name the profile lacks is an error
    (a typo would otherwise train the profile's own value under another name)."""
    out = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node: Any = out
        for i, part in enumerate(path):
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
                raise ConfigError(key, f"the profile has no section {'.'.join(path[:i + 1])!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(key, f"the profile has no key {leaf!r} in {'.'.join(path) or 'the top level'}; "
                                   f"known: {', '.join(sorted(node))}")
        node[leaf] = value
    return out


def value_at(params: Mapping[str, Any], key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def slug(overrides: Mapping[str, Any]) -> str:
    """A folder name for a candidate: ``score_target-soft_score_weight-5``."""
    parts = [f"{k.rsplit('.', 1)[-1]}-{json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items()]
    return "_".join(parts).replace("/", "-").replace(" ", "")


def _cells(fc: Any, sets: Sequence[str] | None, dimensions: Sequence[str] | None,
           variants: Sequence[str] | None) -> list[tuple[str, str, str, int]]:
    for given, allowed, key in ((sets, fc.sets, "--set"), (dimensions, fc.dimensions, "--dimension"),
                                (variants, fc.variants, "--variant")):
        bad = [g for g in (given or ()) if g not in allowed]
        if bad:
            raise ConfigError(key, f"{bad[0]!r} is not in the profile's main grid ({', '.join(map(str, allowed))})")
    return [(s, d, v, k) for s in fc.sets for d in fc.dimensions for v in fc.variants for k in fc.seeds
            if (not sets or s in sets) and (not dimensions or d in dimensions) and (not variants or v in variants)]


def input_files(root: Path, cells: Sequence[tuple[str, str, str, int]]) -> list[Path]:
    """What a selection reads: each cell's training file and validation split, and the student's files."""
    files: set[Path] = set()
    for s, d, v, _k in cells:
        files.add(root / "data" / "variants" / s / d / f"{v}.jsonl")
        files.add(root / "data" / "splits" / s / d / "validation.jsonl")
    student = root / "models" / "student"
    files.update(p for p in student.rglob("*") if p.is_file())
    return sorted(files)


def inputs_digest(root: Path, cells: Sequence[tuple[str, str, str, int]]) -> dict[str, Any]:
    """``{"sha256", "files"}`` over the files :func:`input_files` names (paths relative to ``root``)."""
    h = hashlib.sha256()
    files = input_files(root, cells)
    for p in files:
        if not p.is_file():
            raise ConfigError("selection", f"{p.relative_to(root).as_posix()} is missing: run `dvc repro variants "
                                           "student` first (a selection trains on the pipeline's data and student)")
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode("utf-8"))
    return {"sha256": h.hexdigest(), "files": len(files)}


def _scratch(root: Path, work: Path) -> Path:
    """A project root whose data/ and models/student are links to ``root``'s; fine-tunes write under it."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(exist_ok=True)
    for link, target in ((work / "data", root / "data"), (work / "models" / "student", root / "models" / "student")):
        if link.is_symlink() and Path(os.readlink(link)) == target.resolve():
            continue
        if link.is_symlink() or link.exists():
            link.unlink() if link.is_symlink() else shutil.rmtree(link)
        link.symlink_to(target.resolve(), target_is_directory=True)
    return work


def _key(params: Mapping[str, Any], cell: tuple[str, str, str, int], digest: str) -> str:
    blob = json.dumps({"train": params.get("train"), "student": params.get("student"), "cell": list(cell),
                       "inputs": digest}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), _DECIMALS)


def select(params: Mapping[str, Any], name: str, grid: Mapping[str, Sequence[Any]], *, root: Path = Path("."),
           work: Path | None = None, sets: Sequence[str] | None = None, dimensions: Sequence[str] | None = None,
           variants: Sequence[str] | None = None, out: Path | None = None,
           on_cell: Callable[[str, str, dict[str, Any], bool], None] | None = None) -> dict[str, Any]:
    """Run the selection and write ``selection/<name>.json`` (see the module docstring); returns the record.

    ``on_cell(candidate slug, cell, result, reused)`` is called after each cell (progress).
    """
    from .config import finetune_config
    from .training_stages import cell_path, run_finetune

    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError("name", f"{name!r}: use letters, digits, '-' and '_' (it names selection/<name>.json)")
    root = Path(root)
    fc = finetune_config(dict(params))
    cells = _cells(fc, sets, dimensions, variants)
    cands = candidates(grid)
    for cand in cands:  # every candidate is a valid profile before anything trains
        finetune_config(override(params, cand))
    digest = inputs_digest(root, cells)
    work = Path(work) if work is not None else root / "tmp" / "select" / name
    results: list[dict[str, Any]] = []
    for cand in cands:
        p = override(params, cand)
        scratch = _scratch(root, work / slug(cand))
        per_cell: dict[str, dict[str, Any]] = {}
        for cell in cells:
            cp = cell_path(*cell)
            record = scratch / "results" / f"{cp}.json"
            key = _key(p, cell, digest["sha256"])
            reused = record.is_file() and json.loads(record.read_text()).get("key") == key
            if reused:
                m = json.loads(record.read_text())["metrics"]
            else:
                m = run_finetune(p, *cell, root=scratch)
                write_json(record, {"key": key, "metrics": m})
                shutil.rmtree(scratch / "models" / "finetuned" / cp, ignore_errors=True)  # only the numbers are kept
            per_cell[cp] = {k: m.get(k) for k in (METRIC, "validation_prior_mse", "validation_loss_final")}
            if on_cell is not None:
                on_cell(slug(cand), cp, per_cell[cp], reused)
        values = [c[METRIC] for c in per_cell.values()]
        priors = [c["validation_prior_mse"] for c in per_cell.values()]
        results.append({"params": cand, "mean_validation_mse": _r(sum(values) / len(values)),
                        "mean_validation_prior_mse": _r(sum(priors) / len(priors)),
                        "beats_prior": sum(1 for c in per_cell.values() if c[METRIC] < c["validation_prior_mse"]),
                        "cells": per_cell})
    best = min(range(len(results)), key=lambda i: (results[i]["mean_validation_mse"], i))
    fixed = {k: value_at(params, k) for k in grid}
    record = {
        "name": name,
        "profile": params.get("profile"),
        "metric": f"mean {METRIC} over cells (lower is better); the test split is not read",
        "grid": {k: list(v) for k, v in grid.items()},
        "cells": [cell_path(*c) for c in cells],
        "inputs": digest,
        "candidates": results,
        "chosen": results[best]["params"],
        "profile_values_when_run": fixed,
    }
    out = out or root / SELECTION_DIR / f"{name}.json"
    write_json(out, record)
    return record


# --------------------------------------------------------------------------- reading a record (the report)


def load_selections(root: Path) -> list[dict[str, Any]]:
    """Every ``selection/*.json`` under ``root``, by name; a file that is not a selection record is an error."""
    out = []
    folder = root / SELECTION_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(str(path), f"not valid JSON: {e.msg} at line {e.lineno}") from None
        missing = [k for k in ("name", "grid", "cells", "inputs", "candidates", "chosen") if k not in rec]
        if missing:
            raise ConfigError(str(path), f"not a selection record: no {', '.join(missing)} (written by "
                                         "`explainft select`)")
        out.append(rec)
    return out


def status(record: Mapping[str, Any], params: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """``{"in_profile": bool, "differs": {key: (profile value, chosen)}, "current": bool}`` for one record:
    whether the profile uses the chosen values, and whether its inputs are still the files it read."""
    differs = {k: (value_at(params, k), v) for k, v in record["chosen"].items() if value_at(params, k) != v}
    cells = []
    for cp in record["cells"]:
        s, d, v, seed = cp.split("/")
        cells.append((s, d, v, int(seed.removeprefix("seed_"))))
    try:
        current = inputs_digest(root, cells)["sha256"] == record["inputs"]["sha256"]
    except ConfigError:
        current = False
    return {"in_profile": not differs, "differs": differs, "current": current}
