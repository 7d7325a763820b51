"""DVC stage ``variants``: train splits -> ``data/variants/<set>/<dimension>/<variant>.jsonl`` (the training
targets of every variant: score only, explanation types, lengths, random words) and ``metrics/variants.json``.
Validation and test splits are never touched."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..config import annotate_config, split_sets, variants_config
from ..fsutil import write_json
from ..records import Example, read_jsonl, write_jsonl
from ..variants import build_variants_with_stats, validate_variants


def run(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    names, seed = variants_config(params)
    validate_variants(list(names))
    acfg = annotate_config(params)
    built: dict[tuple[str, str], tuple[dict[str, list[Example]], dict]] = {}
    for s in split_sets(params):  # build everything (and fail on any bad pool) before writing
        for dim in acfg.dimensions:
            train = list(read_jsonl(root / "data" / "splits" / s / dim / "train.jsonl", Example))
            built[(s, dim)] = build_variants_with_stats(train, list(names), seed=seed)
    out = root / "data" / "variants"
    if out.exists():
        shutil.rmtree(out)
    summary: dict[str, Any] = {}
    for (s, dim), (per_variant, stats) in built.items():
        for variant, exs in per_variant.items():
            write_jsonl(out / s / dim / f"{variant}.jsonl", exs)
            summary[f"{s}/{dim}/{variant}"] = stats[variant].to_dict()
    metrics = {"variants": list(names), "seed": seed, "cells": summary}
    write_json(root / "metrics" / "variants.json", metrics)
    return metrics
