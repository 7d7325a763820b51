"""Shared test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# ../shared beside the checkout holds real excerpts of the source datasets (not part of the project)
SHARED_SAMPLES = ROOT.parent / "shared" / "samples"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def shared_samples() -> Path:
    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"real dataset excerpts not found at {SHARED_SAMPLES}")
    return SHARED_SAMPLES


def load(name: str, raw_dir: Path, options: dict | None = None, on_error: str = "raise"):
    """Run dataset ``name``'s loader over ``raw_dir``; returns (conversations, context)."""
    from explainft.datasets.prepare import iter_conversations

    it, ctx, _ = iter_conversations(name, raw_dir, options, on_error)
    return list(it), ctx
