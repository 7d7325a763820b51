"""Settings chosen on validation data: ``explainft select``, a grid search whose only evidence is the
validation split.

A *selection* trains the profile's fine-tune cells (by default the main grid; ``--set``/``--dimension``/
``--variant`` narrow it) once per candidate of a grid of param overrides (``train.score_target=hard,soft``,
``train.epochs=4,8`` …), with the pipeline's own fine-tune (:func:`explainft.stages.finetune.run`; the command itself is :mod:`explainft.stages.select`),
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
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .errors import ConfigError
from .fsutil import sha256_file

SELECTION_DIR = "selection"
METRIC = "validation_mse"
DECIMALS = 6


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
                raise ConfigError(key, f"the profile has no section {'.'.join(path[: i + 1])!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(
                key,
                f"the profile has no key {leaf!r} in {'.'.join(path) or 'the top level'}; "
                f"known: {', '.join(sorted(node))}",
            )
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
            raise ConfigError(
                "selection",
                f"{p.relative_to(root).as_posix()} is missing: run `dvc repro variants "
                "student` first (a selection trains on the pipeline's data and student)",
            )
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode("utf-8"))
    return {"sha256": h.hexdigest(), "files": len(files)}


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
            raise ConfigError(
                str(path), f"not a selection record: no {', '.join(missing)} (written by `explainft select`)"
            )
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
