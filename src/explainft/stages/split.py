"""DVC stage ``split``: ``data/prepared`` + ``data/merged`` -> ``data/splits/<set>/<dimension>/{train,validation,
test}.jsonl`` and ``metrics/split.json`` (sizes, labels, group counts and the cross-set group overlap, which must be
zero: related conversations never straddle a split, :mod:`explainft.split`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..config import MIXED, annotate_config, data_config, split_config
from ..fsutil import write_json
from ..records import Conversation, Item, read_jsonl
from ..split import mixed_split, split_datasets, split_summary, write_splits


def run(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    data = data_config(params)
    acfg = annotate_config(params)
    scfg = split_config(params)
    inputs = {
        name: (
            list(read_jsonl(root / "data" / "prepared" / f"{name}.jsonl", Conversation)),
            list(read_jsonl(root / "data" / "merged" / f"{name}.jsonl", Item)),
        )
        for name in data.datasets
    }
    # every dataset at once (a group is on one side across all of them), checked before anything is written
    splits, groups = split_datasets(inputs, acfg.dimensions, sizes=scfg.sizes(), seed=scfg.seed)
    if scfg.mixed:
        splits[MIXED] = mixed_split(
            splits, acfg.dimensions, sizes=scfg.sizes(), seed=scfg.seed, max_words=scfg.mixed_max_words
        )
    summary = split_summary(splits)
    out = root / "data" / "splits"
    if out.exists():
        shutil.rmtree(out)
    write_splits(splits, out)
    metrics = {"train": scfg.train, "validation": scfg.validation, "test": scfg.test, "groups": groups, **summary}
    write_json(root / "metrics" / "split.json", metrics)
    return metrics
