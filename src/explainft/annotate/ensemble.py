"""Rate conversations with a profile's whole teacher ensemble: every teacher × prompt × dimension, through the
response cache, with progress, the failed-share check and the run's statistics."""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict

from ..config import AnnotateConfig
from ..progress import progress
from ..records import Conversation, Rating
from .cache import ResponseCache
from .engine import check_failed_share, make_annotator


def annotate_conversations(convs: list[Conversation], cfg: AnnotateConfig, desc: str) -> tuple[list[Rating], dict]:
    """Rate ``convs`` with every teacher × prompt × dimension of ``cfg``; returns (ratings, stats).

    Raises FailedShareError when a teacher × prompt × dimension has more ``failed``
    ratings than ``annotate.max_failed_share`` allows, after every reply that arrived
    is in the response cache and before the caller writes anything (a rerun resends
    only the failed requests). A teacher's PreflightError (credentials, endpoint,
    model) stops the run before that teacher's first request.
    """
    total = len(convs) * len(cfg.dimensions) * len(cfg.prompts) * len(cfg.teachers)
    # a bar in a terminal, plain lines in a log (explainft.progress)
    with ResponseCache(cfg.cache) as cache, progress(total, desc, "ratings") as bar:
        annotator = make_annotator(cfg, cache, progress=bar)

        async def go() -> list[Rating]:
            try:
                return await annotator.arun(convs, cfg.dimensions, cfg.prompts)
            finally:
                await annotator.aclose()

        ratings = asyncio.run(go())
    # the cache is closed: every reply that arrived is committed (ResponseCache.put commits before returning)
    check_failed_share(
        ratings,
        cfg.max_failed_share,
        note=f"every reply that arrived is kept in the response cache (annotate.cache: {cfg.cache}), "
        "so only the failed requests are sent again",
    )
    stats = annotator.stats.to_dict()
    stats["max_failed_share"] = cfg.max_failed_share
    stats["score_mean_normalised"] = score_means(ratings)
    # backends that keep their own counters (local models: batches, tokens, too-long prompts)
    extra = {name: b.stats for name, b in annotator.backends.items() if isinstance(getattr(b, "stats", None), dict)}
    if extra:
        stats["backend_stats"] = extra
    # and their wall-clock figures (a local model's load and generation seconds): under "timings", which the
    # annotate stage writes to timings/annotate/<dataset>.json and never to the metrics (explainft.timings)
    timed = {name: b.timings for name, b in annotator.backends.items() if isinstance(getattr(b, "timings", None), dict)}
    if timed:
        stats["timings"] = timed
    return ratings, stats


def score_means(ratings: list[Rating]) -> dict[str, float]:
    """The mean ``ok`` score per dimension, normalised to [0, 1]."""
    by_dim: dict[str, list[float]] = defaultdict(list)
    for r in ratings:
        if r.status == "ok":
            by_dim[r.dimension].append((r.raw_score - 1) / (r.scale - 1))
    return {d: round(statistics.fmean(v), 6) for d, v in sorted(by_dim.items())}
