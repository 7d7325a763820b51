"""DVC stage ``prepare`` (one per dataset): raw files -> ``data/prepared/<dataset>.jsonl`` (Conversation records)
and ``metrics/prepare/<dataset>.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import data_config
from ..datasets.prepare import prepare


def run(params: dict[str, Any], dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    cfg = data_config(params)
    return prepare(
        dataset,
        root / "data" / "raw" / dataset,
        root / "data" / "prepared" / f"{dataset}.jsonl",
        root / "metrics" / "prepare" / f"{dataset}.json",
        per_dataset=cfg.per_dataset,
        seed=cfg.seed,
        options=cfg.source(dataset)["options"],
        on_error=cfg.on_error,
    )
