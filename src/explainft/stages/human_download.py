"""DVC stage ``human_download`` (one per human-rated set): the set's files, as published, into
``data/raw/human/<name>`` (``human.sets.<name>.fetch``: any fetch kind, a URL pinned by sha256 included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import human_config
from ..datasets.fetch import fetch


def run(params: dict[str, Any], name: str, root: Path = Path(".")) -> dict[str, Any]:
    """Fetch set ``name``; returns the manifest (``SOURCE.json``)."""
    s = human_config(params).set(name)
    return fetch(name, s.fetch, root / "data" / "raw" / "human" / name, base=s.key("fetch"))
