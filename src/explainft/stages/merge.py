"""DVC stage ``merge`` (one per dataset): ``data/annotated/<dataset>.jsonl`` -> ``data/merged/<dataset>.jsonl``
(one Item per conversation × dimension: the ensemble's score and explanation) and ``metrics/merge/<dataset>.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import annotate_config, data_config, merge_config
from ..fsutil import write_json
from ..merge import merge_items
from ..records import Rating, read_jsonl, write_jsonl


def run(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    data_config(params).source(dataset)
    acfg = annotate_config(params)
    mcfg = merge_config(params, acfg)
    ratings = list(read_jsonl(root / "data" / "annotated" / f"{dataset}.jsonl", Rating))
    items, stats = merge_items(ratings, acfg, mcfg)
    write_jsonl(root / "data" / "merged" / f"{dataset}.jsonl", items)
    metrics = {"dataset": dataset, **stats}
    write_json(root / "metrics" / "merge" / f"{dataset}.json", metrics)
    return metrics
