"""The prepare step: raw files in their published format -> a seeded sample of Conversations.

Sampling is by hash, not by position: each conversation's key is
``sha256(f"{seed}:{group}")`` then its id, and the ``per_dataset`` smallest
keys are kept (``heapq.nsmallest``, streaming, O(per_dataset) memory). Keyed
by group, a group's conversations are kept together (but at the boundary),
and twins in two datasets (the same group) are sampled together. The result
depends only on the seed and the set of ids and groups, not on file order or
on how many records a loader yields, so it is deterministic and stable when a
source grows.
"""

from __future__ import annotations

import hashlib
import heapq
import statistics
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ConfigError, RecordError
from ..fsutil import write_json
from ..records import Conversation, write_jsonl
from . import get
from .base import LoadContext, check_options


def resolve_options(name: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Validate user options for ``name`` against its loader's schema and add the name's fixed options."""
    spec = get(name)
    mod = spec.loader()
    for key in spec.fixed:
        if options and key in options:
            raise ConfigError(
                f"sources.{name}.options.{key}",
                f"is fixed to {spec.fixed[key]!r} by the dataset name and cannot be set",
            )
    opts = check_options(name, options or {}, mod.OPTIONS)
    opts.update(spec.fixed)
    return opts


def iter_conversations(
    name: str, raw_dir: Path, options: dict[str, Any] | None = None, on_error: str = "raise"
) -> tuple[Iterator[Conversation], LoadContext, dict[str, Any]]:
    """Load every conversation of dataset ``name`` from ``raw_dir``; returns (iterator, context, options)."""
    spec = get(name)
    opts = resolve_options(name, options)
    ctx = LoadContext(dataset=name, on_error=on_error)
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise RecordError(
            "missing_file", f"raw folder for dataset {name!r} does not exist (run its download stage)", file=raw_dir
        )
    return spec.loader().load(raw_dir, opts, ctx), ctx, opts


def sample_key(seed: int, group: str) -> bytes:
    return hashlib.sha256(f"{seed}:{group}".encode("utf-8")).digest()


def sample(convs: Iterable[Conversation], k: int | None, seed: int, ctx: LoadContext) -> tuple[list[Conversation], int]:
    """Keep the ``k`` conversations with the smallest hash keys (all if ``k`` is None).

    Returns (sample in key order, number of valid conversations seen). A repeated id
    is a record error (raised or counted as ``skipped.duplicate_id``).
    """
    seen: set[str] = set()
    total = 0

    def keyed() -> Iterator[tuple[bytes, str, Conversation]]:
        # ids are unique past the check below, so tuple comparison never reaches the Conversation
        nonlocal total
        for c in convs:
            if c.id in seen:
                src = c.meta.get("source", {}) if isinstance(c.meta, dict) else {}
                where = src.get("line", src.get("row"))
                ctx.error(
                    RecordError(
                        "duplicate_id", "conversation id occurs twice", record=c.id, file=src.get("file"), line=where
                    )
                )
                continue
            seen.add(c.id)
            total += 1
            yield sample_key(seed, c.group), c.id, c

    picked = sorted(keyed()) if k is None else heapq.nsmallest(k, keyed())
    return [c for _, _, c in picked], total


def prepare(
    name: str,
    raw_dir: Path,
    out_path: Path,
    metrics_path: Path,
    *,
    per_dataset: int | None,
    seed: int,
    options: dict[str, Any] | None = None,
    on_error: str = "raise",
) -> dict[str, Any]:
    """Load, validate and sample one dataset; write the JSONL and its metrics. Returns the metrics."""
    if per_dataset is not None and (
        isinstance(per_dataset, bool) or not isinstance(per_dataset, int) or per_dataset < 1
    ):
        raise ConfigError("data.per_dataset", f"must be a positive integer or null (all), got {per_dataset!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("data.seed", f"must be an integer, got {seed!r}")
    convs, ctx, opts = iter_conversations(name, raw_dir, options, on_error)
    picked, total = sample(convs, per_dataset, seed, ctx)
    if not picked:
        raise RecordError(
            "empty_dataset",
            f"dataset {name!r} produced no valid conversation "
            f"({sum(ctx.skipped.values())} skipped, "
            f"{sum(ctx.dropped.values())} dropped)",
            file=raw_dir,
        )
    write_jsonl(out_path, picked)
    metrics = {
        "dataset": name,
        "seed": seed,
        "per_dataset": per_dataset,
        "conversations": total,
        "sampled": len(picked),
        "options": {k: opts[k] for k in sorted(opts)},
        "n_files": len(set(ctx.files)),
        **ctx.summary(),
        "sample_stats": _stats(picked),
    }
    write_json(metrics_path, metrics)
    return metrics


def _stats(convs: list[Conversation]) -> dict[str, Any]:
    turns = [len(c.turns) for c in convs]
    words = [len(c.response.text.split()) for c in convs]
    return {
        "turns_mean": round(statistics.fmean(turns), 3),
        "turns_max": max(turns),
        "response_words_mean": round(statistics.fmean(words), 3),
        "response_words_median": statistics.median(words),
        "with_context": sum(1 for c in convs if c.context),
    }
