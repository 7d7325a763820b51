"""DVC stage ``download`` (one per dataset): the raw files, as published, into ``data/raw/<dataset>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import data_config
from ..datasets.fetch import fetch


def run(params: dict[str, Any], dataset: str, out_dir: Path | None = None, root: Path = Path(".")) -> dict[str, Any]:
    """Fetch ``dataset`` as ``sources.<dataset>.fetch`` says; returns the manifest (``SOURCE.json``)."""
    source = data_config(params).source(dataset)
    return fetch(dataset, source["fetch"], out_dir or root / "data" / "raw" / dataset)
