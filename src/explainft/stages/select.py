"""``explainft select``: choose training settings on validation data (see :mod:`explainft.selection` for the
record it writes and how the report reads it). Each candidate fine-tunes the chosen cells in a scratch project
whose data and student are links to the real ones; only the numbers are kept."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..config import finetune_config
from ..errors import ConfigError
from ..fsutil import write_json
from ..layout import cell_path
from ..selection import DECIMALS, METRIC, SELECTION_DIR, candidates, inputs_digest, override, slug, value_at
from . import finetune as finetune_stage


def _cells(
    fc: Any, sets: Sequence[str] | None, dimensions: Sequence[str] | None, variants: Sequence[str] | None
) -> list[tuple[str, str, str, int]]:
    for given, allowed, key in (
        (sets, fc.sets, "--set"),
        (dimensions, fc.dimensions, "--dimension"),
        (variants, fc.variants, "--variant"),
    ):
        bad = [g for g in (given or ()) if g not in allowed]
        if bad:
            raise ConfigError(key, f"{bad[0]!r} is not in the profile's main grid ({', '.join(map(str, allowed))})")
    return [
        (s, d, v, k)
        for s in fc.sets
        for d in fc.dimensions
        for v in fc.variants
        for k in fc.seeds
        if (not sets or s in sets) and (not dimensions or d in dimensions) and (not variants or v in variants)
    ]


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
    blob = json.dumps(
        {"train": params.get("train"), "student": params.get("student"), "cell": list(cell), "inputs": digest},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), DECIMALS)


def select(
    params: Mapping[str, Any],
    name: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    root: Path = Path("."),
    work: Path | None = None,
    sets: Sequence[str] | None = None,
    dimensions: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    out: Path | None = None,
    on_cell: Callable[[str, str, dict[str, Any], bool], None] | None = None,
) -> dict[str, Any]:
    """Run the selection and write ``selection/<name>.json`` (see the module docstring); returns the record.

    ``on_cell(candidate slug, cell, result, reused)`` is called after each cell (progress).
    """
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
                m = finetune_stage.run(p, *cell, root=scratch)
                write_json(record, {"key": key, "metrics": m})
                shutil.rmtree(scratch / "models" / "finetuned" / cp, ignore_errors=True)  # only the numbers are kept
            per_cell[cp] = {k: m.get(k) for k in (METRIC, "validation_prior_mse", "validation_loss_final")}
            if on_cell is not None:
                on_cell(slug(cand), cp, per_cell[cp], reused)
        values = [c[METRIC] for c in per_cell.values()]
        priors = [c["validation_prior_mse"] for c in per_cell.values()]
        results.append(
            {
                "params": cand,
                "mean_validation_mse": _r(sum(values) / len(values)),
                "mean_validation_prior_mse": _r(sum(priors) / len(priors)),
                "beats_prior": sum(1 for c in per_cell.values() if c[METRIC] < c["validation_prior_mse"]),
                "cells": per_cell,
            }
        )
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
