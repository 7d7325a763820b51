"""DVC stage ``merge`` (one per dataset): ``data/annotated/<dataset>.jsonl`` -> ``data/merged/<dataset>.jsonl``
(one Item per conversation × dimension: the ensemble's score and explanation) and ``metrics/merge/<dataset>.json``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..annotate.backends import make_backend
from ..config import AnnotateConfig, MergeConfig, annotate_config, data_config, merge_config
from ..fsutil import write_json
from ..merge import amerge_ratings
from ..records import Item, Rating, read_jsonl, write_jsonl


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


def merge_items(
    ratings: list[Rating],
    acfg: AnnotateConfig,
    mcfg: MergeConfig,
    *,
    score_method: str | None = None,
    explanation_method: str | None = None,
) -> tuple[list[Item], dict]:
    """Merge ratings into Items with the profile's merge settings (the keyword arguments override them); the llm
    judge and summariser are the teachers ``merge.judge`` and ``merge.summariser`` name."""
    method = score_method or mcfg.score
    expl = explanation_method or mcfg.explanation
    judge = make_backend(acfg.teacher(mcfg.judge, "merge.judge")) if method == "llm" else None
    summariser = make_backend(acfg.teacher(mcfg.summariser, "merge.summariser")) if expl == "llm" else None
    order = [f"{t.name}/{p}" for t in acfg.teachers for p in acfg.prompts]

    async def go() -> tuple[list[Item], dict]:
        try:
            return await amerge_ratings(
                ratings,
                score_method=method,
                explanation_method=expl,
                min_valid=mcfg.min_valid,
                judge=judge,
                summariser=summariser,
                order=order,
            )
        finally:  # close the clients in the loop that opened them
            for b in {id(b): b for b in (judge, summariser) if b is not None}.values():
                await b.aclose()

    return asyncio.run(go())
