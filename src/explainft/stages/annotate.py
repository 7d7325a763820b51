"""DVC stage ``annotate`` (one per dataset): ``data/prepared/<dataset>.jsonl`` -> ``data/annotated/<dataset>.jsonl``
(one Rating per conversation × dimension × teacher × prompt) and ``metrics/annotate/<dataset>.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..annotate.ensemble import annotate_conversations
from ..config import annotate_config, data_config
from ..fsutil import write_json
from ..records import Conversation, read_jsonl, write_jsonl
from ..timings import write_timings


def run(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    data_config(params).source(dataset)  # the dataset must be in the profile
    acfg = annotate_config(params)
    convs = list(read_jsonl(root / "data" / "prepared" / f"{dataset}.jsonl", Conversation))
    ratings, stats = annotate_conversations(convs, acfg, f"annotate@{dataset}")
    timed = stats.pop("timings", None)
    write_jsonl(root / "data" / "annotated" / f"{dataset}.jsonl", ratings)
    metrics = {"dataset": dataset, **stats}
    write_json(root / "metrics" / "annotate" / f"{dataset}.json", metrics)
    if timed:
        write_timings(root, f"annotate/{dataset}", {"backends": timed})
    return metrics
