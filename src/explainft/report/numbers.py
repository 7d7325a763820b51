"""The report's numbers, read from what the evaluate, baselines, finetune and variants stages wrote.

* :class:`Grid`: the trained cells (training sets, dimensions, variants, seeds, test sets, the ablation grid);
  :func:`row_label` names a model's row ("(E)": trained with explanations, "[variant]": any other variant);
* :func:`collect`: every test MSE and MAE (metrics/evaluate), the mean over seeds;
* :func:`with_vs_without`: MSE(E) - MSE(score only) on each training set's own test split, with a paired
  bootstrap interval over items and seeds (:func:`explainft.metrics.seed_bootstrap`), from data/predictions;
* :func:`baseline_check`: every fine-tuned model against the untuned student and the label prior, with the
  model's mean offset split out of its MSE;
* :func:`ablation_rows`: own-test-set error of every variant (main and ablation grids), with the explanations'
  mean length (metrics/variants.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..metrics import seed_bootstrap
from ..records import Prediction, read_jsonl
from ..variants import EXPLAINED, SCORE_ONLY, parse_variant


@dataclass(frozen=True)
class Grid:
    sets: tuple[str, ...]
    dimensions: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    test_sets: dict[str, tuple[str, ...]]  # per dimension
    ablation: tuple[tuple[str, str, str], ...] = ()  # (set, dimension, variant) cells of the ablation grid

    def variants_of(self, train_set: str, dimension: str) -> tuple[str, ...]:
        """Every variant trained on this set x dimension: the main grid's, then the ablation grid's."""
        return self.variants + tuple(v for s, d, v in self.ablation if (s, d) == (train_set, dimension))


def row_label(train_set: str, variant: str) -> str:
    """A model's row: the training set, "<set> (E)" with explanations, "<set> [<variant>]" for any other variant."""
    if variant == SCORE_ONLY:
        return train_set
    if variant == EXPLAINED:
        return f"{train_set} (E)"
    return f"{train_set} [{variant}]"


def load_json(path: Path) -> dict[str, Any]:
    """A stage's JSON output; a missing one says to run the pipeline."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: run `dvc repro` (the report reads every stage's output)") from None


def _errors(root: Path, cell: str, test_set: str) -> dict[str, float]:
    """{item id: squared error of the expected score} of one model on one test set."""
    path = root / "data" / "predictions" / cell / f"{test_set}.jsonl"
    return {p.id: (p.expected - p.target) ** 2 for p in read_jsonl(path, Prediction)}


def collect(root: Path, grid: Grid) -> dict[str, Any]:
    """Every number the report shows: {dimension: {"rows": {label: {test_set: {metric: mean over seeds}}}}}."""
    out: dict[str, Any] = {}
    for dim in grid.dimensions:
        base = load_json(root / "metrics" / "evaluate" / "baselines" / f"{dim}.json")
        rows: dict[str, dict[str, dict[str, float]]] = {"Untuned": base["untuned"], "Prior": base["prior"]}
        for s in grid.sets:
            for v in grid.variants_of(s, dim):
                evaluated = root / "metrics" / "evaluate" / "finetuned" / s / dim / v
                per_seed = [load_json(evaluated / f"seed_{k}.json")["test"] for k in grid.seeds]
                rows[row_label(s, v)] = {
                    t: {m: float(np.mean([r[t][m] for r in per_seed])) for m in ("mse", "mae")}
                    for t in grid.test_sets[dim]
                }
        out[dim] = {"rows": rows, "prior_value": base["prior_value"]}
    return out


def with_vs_without(root: Path, grid: Grid, *, n_boot: int, ci: float, seed: int) -> list[dict[str, Any]]:
    """For each training set x dimension: MSE(E) - MSE(score only) on the set's own test split, with an interval."""
    if SCORE_ONLY not in grid.variants or EXPLAINED not in grid.variants:
        return []
    rows = []
    for dim in grid.dimensions:
        for s in grid.sets:
            if s not in grid.test_sets[dim]:
                continue
            errs = {}
            for v in (EXPLAINED, SCORE_ONLY):
                per_seed = [_errors(root, f"finetuned/{s}/{dim}/{v}/seed_{k}", s) for k in grid.seeds]
                ids = sorted(per_seed[0])
                errs[v] = np.array([[e[i] for i in ids] for e in per_seed])
            b = seed_bootstrap(errs[EXPLAINED], errs[SCORE_ONLY], n_boot=n_boot, seed=seed, ci=ci)
            rows.append(
                {
                    "set": s,
                    "dimension": dim,
                    "mse_explained": float(errs[EXPLAINED].mean()),
                    "mse_score_only": float(errs[SCORE_ONLY].mean()),
                    "diff": b["diff"],
                    "low": b["low"],
                    "high": b["high"],
                    "explanations_win": b["diff"] < 0,
                    "significant": b["high"] < 0 or b["low"] > 0,
                }
            )
    return rows


def _offset(root: Path, grid: Grid, s: str, dim: str, v: str) -> dict[str, float]:
    """Mean offset of one model on its own test set, from its predictions (means over seeds): ``bias`` (mean
    prediction minus mean label), ``centred`` (MSE minus bias squared: the error left once the offset is
    removed) and ``label_var`` (the labels' variance: about what the prior scores, as it sits near their mean)."""
    per_seed = []
    for k in grid.seeds:
        path = root / "data" / "predictions" / "finetuned" / s / dim / v / f"seed_{k}" / f"{s}.jsonl"
        preds = list(read_jsonl(path, Prediction))
        err = np.array([p.expected - p.target for p in preds])
        target = np.array([p.target for p in preds])
        per_seed.append((float(err.mean()), float(err.var()), float(target.var())))
    bias, centred, label_var = (float(np.mean(col)) for col in zip(*per_seed))
    return {"bias": bias, "centred": centred, "label_var": label_var}


def baseline_check(numbers: Mapping[str, Any], grid: Grid, root: Path) -> list[dict[str, Any]]:
    """Does every fine-tuned model beat the untuned student and the label prior on its own test set (MSE)?
    Each row also splits the model's MSE into its mean offset and the rest (``_offset``)."""
    out = []
    for dim in grid.dimensions:
        rows = numbers[dim]["rows"]
        for s in grid.sets:
            if s not in grid.test_sets[dim]:
                continue
            for v in grid.variants_of(s, dim):
                mse = rows[row_label(s, v)][s]["mse"]
                out.append(
                    {
                        "set": s,
                        "dimension": dim,
                        "variant": v,
                        "mse": mse,
                        "untuned": rows["Untuned"][s]["mse"],
                        "prior": rows["Prior"][s]["mse"],
                        "beats_untuned": mse < rows["Untuned"][s]["mse"],
                        "beats_prior": mse < rows["Prior"][s]["mse"],
                        **_offset(root, grid, s, dim, v),
                    }
                )
    return out


def matrix_rows(numbers: Mapping[str, Any], dim: str, grid: Grid, metric: str) -> list[list[Any]]:
    """One dimension's cross-dataset matrix of ``metric``: [row label, value per test set] per model."""
    rows = numbers[dim]["rows"]
    return [[label] + [rows[label][t][metric] for t in grid.test_sets[dim]] for label in rows]


def variant_kind(v: str) -> str:
    """The variant's kind (:func:`explainft.variants.parse_variant`): type, length or random."""
    return parse_variant(v).kind


def _mean_words(root: Path) -> dict[str, float]:
    """{"<set>/<dim>/<variant>": mean explanation length in words} of the training variants (metrics/variants.json,
    written by the variants stage and a declared dependency of the report); empty when it is absent."""
    path = root / "metrics" / "variants.json"
    if not path.is_file():
        return {}
    return {cell: float(v["mean_words"]) for cell, v in json.loads(path.read_text()).get("cells", {}).items()}


def ablation_rows(root: Path, numbers: Mapping[str, Any], grid: Grid) -> list[dict[str, Any]]:
    """Own-test-set error of every variant trained on each set x dimension (main and ablation grids)."""
    mean_words = _mean_words(root)
    out = []
    for dim in grid.dimensions:
        for s in grid.sets:
            if s not in grid.test_sets[dim]:
                continue
            cells = numbers[dim]["rows"]
            for v in grid.variants_of(s, dim):
                kind = variant_kind(v)
                words = (
                    0.0
                    if v == SCORE_ONLY
                    else (float(v.split("_", 1)[1]) if kind == "length" else mean_words.get(f"{s}/{dim}/{v}"))
                )
                out.append(
                    {
                        "set": s,
                        "dimension": dim,
                        "variant": v,
                        "kind": kind,
                        "words": words,
                        "mse": cells[row_label(s, v)][s]["mse"],
                        "mae": cells[row_label(s, v)][s]["mae"],
                    }
                )
    return out
