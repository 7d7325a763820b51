"""DVC stage ``human_eval`` (one per human-rated set, ``human.sets``): every rater against people's judgements.

Reads the set from ``data/raw/human/<name>`` in its published format (``human.sets.<name>.format``), leaves out
its design part (``design_share``) and every item asking what a training or validation example asked
(:func:`trained_prompts`, :func:`explainft.human_eval.prepare`), keeps ``max_items`` of the rest, and rates the rest with every teacher × prompt, the merged ensemble (each
merge method), the untuned student, every fine-tuned student of both grids and the three one-feature baselines
(:mod:`explainft.human_eval`). Writes:

* ``metrics/human/<name>.json``: the point values per rater × dimension and the differences "with explanations
  minus without" (``dvc metrics diff`` shows them), the set's counts and the loader's skips;
* ``reports/human/<name>.json``: the same with every bootstrap interval, n, missing predictions and the truth's
  summary (the report's "Agreement with people" section reads it);
* ``data/human/<name>/scores.jsonl``: every rater's score of every response (``{"rater", "id", "dimension",
  "score"}``), so any number can be recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..annotate.ensemble import annotate_conversations
from ..config import (
    AnnotateConfig,
    FinetuneConfig,
    MergeConfig,
    annotate_config,
    evaluate_config,
    finetune_config,
    human_config,
    merge_config,
)
from ..datasets.base import prompt_group
from ..fsutil import write_json
from ..human import load_human_set
from ..human_eval import (
    Preds,
    agreement,
    check_map,
    feature_scores,
    item_predictions,
    prepare,
    teacher_predictions,
)
from ..layout import cell_path
from ..records import Conversation, Example, read_jsonl, write_jsonl
from ..scoring import example_for, load_rater, score_examples, score_prefixes
from ..students import resolve_student, student_revision
from ..variants import SCORE_ONLY
from .merge import merge_items

METRICS = ("spearman", "kendall", "pearson", "qwk", "mae", "accuracy", "rater_tie_share", "tie_agreement")


def _values(per_dim: dict[str, Any]) -> dict[str, Any]:
    """The point values (and n) of one rater's metrics: what ``dvc metrics diff`` compares."""
    out = {}
    for dim, m in per_dim.items():
        out[dim] = {k: m[k]["value"] for k in METRICS if k in m} | {"n": m["n"]}
    return out


def trained_prompts(root: Path) -> frozenset[str]:
    """The :func:`~explainft.datasets.base.prompt_group` of every training and validation example of this run's
    splits (``data/splits/<set>/<dimension>/{train,validation}.jsonl``): what the students learnt from and what
    their settings were chosen on."""
    out = set()
    for part in ("train", "validation"):
        for path in sorted((root / "data" / "splits").glob(f"*/*/{part}.jsonl")):
            out.update(prompt_group(ex.turns) for ex in read_jsonl(path, Example))
    return frozenset(out)


def teacher_raters(
    convs: Sequence[Conversation], acfg: AnnotateConfig, mcfg: MergeConfig, dims: tuple[str, ...], desc: str
) -> dict[str, Preds]:
    """Every teacher × prompt, each teacher, and the merged ensemble (each merge method) on ``dims``."""
    ratings, _ = annotate_conversations(list(convs), dataclasses.replace(acfg, dimensions=dims), desc)
    raters = teacher_predictions(ratings)
    for m in ["average", "most_frequent"] + (["llm"] if mcfg.judge else []):
        items, _ = merge_items(ratings, acfg, mcfg, score_method=m, explanation_method="extractive")
        raters[f"ensemble/{m}"] = item_predictions(items)
    return raters


class PrefixCache:
    """Score prefixes (:func:`explainft.scoring.score_prefixes`) per tokenizer and dimension, computed once.

    Every fine-tune of a grid carries a copy of its student's tokenizer, and encoding a long conversation to fit
    ``max_length`` costs more than scoring it; raters whose tokenizers agree (same class, vocabulary, special
    tokens, chat template and pipeline: :func:`tokenizer_key`) share one encoding. Layout "after" only: in layout "before"
    the prefix holds the rater's own generated rationale.
    """

    def __init__(self, convs: Sequence[Conversation], max_length: int, position: str):
        self.convs, self.max_length, self.position = list(convs), max_length, position
        self._by: dict[tuple[str, str], Any] = {}

    def get(self, tok: Any, dim: str) -> Any:
        if self.position != "after":
            return None
        key = (tokenizer_key(tok), dim)
        if key not in self._by:
            exs = [example_for(c, dim) for c in self.convs]
            self._by[key] = score_prefixes(None, tok, exs, max_length=self.max_length, position="after")
        return self._by[key]


def tokenizer_key(tok: Any) -> str:
    """A digest of what encoding reads from a tokenizer: its class, vocabulary, special tokens, chat template and,
    for a fast tokenizer, its pipeline (normaliser, pre-tokeniser, merges, post-processor: the BOS it adds), less
    the truncation and padding that a call leaves set on it."""
    backend = getattr(tok, "backend_tokenizer", None)
    pipeline = json.loads(backend.to_str()) if backend is not None else None
    if pipeline is not None:
        pipeline.pop("truncation", None)
        pipeline.pop("padding", None)
    blob = json.dumps(
        [
            type(tok).__name__,
            sorted(tok.get_vocab().items()),
            {k: str(v) for k, v in sorted(tok.special_tokens_map.items())},
            getattr(tok, "chat_template", None),
            pipeline,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def model_scores(
    model_dir: str | Path,
    convs: Sequence[Conversation],
    dims: Iterable[str],
    *,
    max_length: int,
    batch_size: int,
    position: str,
    desc: str,
    cache: PrefixCache | None = None,
    **loading: Any,
) -> Preds:
    """One rater folder's expected scores of ``convs`` on each of ``dims`` (``loading``: :func:`load_rater`'s)."""
    model, tok = load_rater(model_dir, **loading)
    out: Preds = {}
    for dim in dims:
        scored = score_examples(
            model,
            tok,
            [example_for(c, dim) for c in convs],
            max_length=max_length,
            batch_size=batch_size,
            position=position,
            test_set=desc,
            prefixes=cache.get(tok, dim) if cache is not None else None,
        )
        out.update({(s.id, dim): s.expected for s in scored})
    return out


def student_raters(
    convs: Sequence[Conversation], fc: FinetuneConfig, dims: tuple[str, ...], root: Path, batch_size: int, desc: str
) -> tuple[dict[str, Preds], list[tuple[str, str, str]]]:
    """The untuned student (loaded as its fine-tunes load it) and every fine-tune of both grids whose dimension is
    in ``dims``; with the pairs (label, with explanations, without) of the same set, dimension and seed."""
    base = resolve_student(fc.student, root)
    revision = student_revision(root)
    position = fc.train.explanation_position
    cache = PrefixCache(convs, fc.train.max_length, position)
    kw = {"max_length": fc.train.max_length, "batch_size": batch_size, "position": position, "cache": cache}
    raters = {
        "untuned": model_scores(
            base,
            convs,
            dims,
            desc=desc,
            device=fc.device,
            quantization=fc.quantization,
            method=fc.method,
            revision=revision,
            **kw,
        )
    }
    pairs = []
    cells = fc.cells()
    for cell in cells:
        train_set, dim, variant, seed = cell
        if dim not in dims:
            continue
        model_dir = root / "models" / "finetuned" / cell_path(*cell) / "model"
        raters[f"student/{cell_path(*cell)}"] = model_scores(
            model_dir, convs, [dim], desc=desc, base=base, device=fc.device, revision=revision, **kw
        )
        if variant != SCORE_ONLY and (train_set, dim, SCORE_ONLY, seed) in cells:
            without = cell_path(train_set, dim, SCORE_ONLY, seed)
            pairs.append((f"{cell_path(*cell)} - {SCORE_ONLY}", f"student/{cell_path(*cell)}", f"student/{without}"))
    return raters, pairs


def run(params: dict[str, Any], name: str, root: Path = Path(".")) -> dict[str, Any]:
    acfg = annotate_config(params)
    hc = human_config(params, acfg.dimensions)
    hs_cfg = hc.set(name)
    mcfg = merge_config(params, acfg)
    fc = finetune_config(params)
    ec = evaluate_config(params)

    hs = load_human_set(hs_cfg.format, root / "data" / "raw" / "human" / name, name, hs_cfg.options, hs_cfg.on_error)
    check_map(hs, hs_cfg.map)
    prep = prepare(hs, hs_cfg.design_share, trained=trained_prompts(root), max_items=hs_cfg.max_items)
    dims = tuple(hs_cfg.map)
    convs = prep.conversations
    desc = f"human/{name}"

    raters = teacher_raters(convs, acfg, mcfg, dims, desc)
    students, pairs = student_raters(convs, fc, dims, root, ec.batch_size, desc)
    raters.update(students)
    raters.update(feature_scores(convs, dims))

    result = agreement(prep, raters, hs_cfg.map, bootstrap=hc.bootstrap, ci=hc.ci, seed=hc.seed, pairs=pairs)
    counts = {
        "set": name,
        "format": hs.format,
        "kind": hs.kind,
        "items": len(prep.units),
        "design_items": prep.design_units,
        "left_out": prep.left_out,
        "responses": len(convs),
        "load": hs.load,
        "map": dict(hs_cfg.map),
        "bootstrap": hc.bootstrap,
        "ci": hc.ci,
    }
    full = counts | result
    write_json(root / "reports" / "human" / f"{name}.json", full)
    metrics = counts | {
        "raters": {r: _values(per_dim) for r, per_dim in result["raters"].items()},
        "differences": {
            label: {dim: {k: v["value"] for k, v in m.items() if isinstance(v, dict)} for dim, m in per_dim.items()}
            for label, per_dim in result["differences"].items()
        },
    }
    write_json(root / "metrics" / "human" / f"{name}.json", metrics)
    write_jsonl(
        root / "data" / "human" / name / "scores.jsonl",
        (
            {"rater": r, "id": cid, "dimension": dim, "score": round(v, 6)}
            for r, preds in sorted(raters.items())
            for (cid, dim), v in sorted(preds.items())
        ),
    )
    return full
