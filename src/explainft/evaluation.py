"""Stage bodies of the evaluation: score every fine-tuned model and the two baselines on every test set.

``evaluate`` (a DVC matrix over the fine-tune grid): the model of one cell
(``<set>/<dimension>/<variant>/seed_<k>``) rates the test split of every set
on its dimension (cross-dataset, the paper's Tables 3 and 7-11), and the
golden set when one is configured. Predictions go to
``data/predictions/finetuned/<cell>/<test set>.jsonl`` (Prediction records:
the five probabilities, the expected score, the argmax, the target) and the
metrics of each test set to ``metrics/evaluate/finetuned/<cell>.json``.

``baselines`` (one per dimension): the same scoring for the **untuned**
student (the same model and prompt, no fine-tuning) and the **label prior**
(every item gets the mean training score of the test set's own dataset: the
constant with the lowest training MSE, a floor any trained rater must clear),
written to ``data/predictions/baselines/<dimension>/{untuned,prior}/`` and
``metrics/evaluate/baselines/<dimension>.json``.

Scoring reads the score-token distribution in one forward pass
(:mod:`explainft.scoring`) with the training ``max_length``, so a test
conversation is truncated exactly as in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import _int, golden_path
from .errors import ConfigError
from .fsutil import write_json
from .pipeline import split_sets
from .records import Example, read_jsonl, write_jsonl

GOLDEN = "golden"
EVALUATE_KEYS = {"batch_size", "bootstrap", "ci", "seed"}


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 32
    bootstrap: int = 2000  # resamples for the paired bootstrap intervals (report)
    ci: float = 0.95
    seed: int = 0


def evaluate_config(params: dict[str, Any]) -> EvaluateConfig:
    sec = params.get("evaluate") or {}
    if not isinstance(sec, dict):
        raise ConfigError("evaluate", "must be a mapping (batch_size, bootstrap, ci, seed)")
    unknown = sorted(set(sec) - EVALUATE_KEYS)
    if unknown:
        raise ConfigError(f"evaluate.{unknown[0]}", f"unknown key; known: {', '.join(sorted(EVALUATE_KEYS))}")
    d = EvaluateConfig()
    ci = sec.get("ci", d.ci)
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0.5 <= ci < 1:
        raise ConfigError("evaluate.ci", f"must be a coverage in [0.5, 1), e.g. 0.95, got {ci!r}")
    boot = _int(sec.get("bootstrap", d.bootstrap), "evaluate.bootstrap", positive=True)
    if boot < 100:
        raise ConfigError("evaluate.bootstrap", f"use at least 100 resamples (2000 is usual), got {boot}")
    return EvaluateConfig(batch_size=_int(sec.get("batch_size", d.batch_size), "evaluate.batch_size", positive=True),
                          bootstrap=boot, ci=float(ci), seed=_int(sec.get("seed", d.seed), "evaluate.seed"))


def load_test_sets(params: dict[str, Any], dimension: str, root: Path = Path(".")) -> dict[str, list[Example]]:
    """{test set name: examples} for ``dimension``: every split set's test split, then the golden set if configured.

    An empty test split, or one whose items are on another dimension, is an error naming the file.
    """
    out: dict[str, list[Example]] = {}
    for s in split_sets(params):
        path = root / "data" / "splits" / s / dimension / "test.jsonl"
        exs = list(read_jsonl(path, Example))
        if not exs:
            raise ConfigError("split.test", f"{path} is empty: there is nothing to evaluate on")
        wrong = next((e for e in exs if e.dimension != dimension), None)
        if wrong is not None:
            raise ConfigError("annotate.dimensions", f"{path}: item {wrong.id!r} is rated on {wrong.dimension!r}, "
                                                     f"not {dimension!r}")
        out[s] = exs
    gp = golden_path(params)
    if gp is not None:
        import dataclasses

        from .golden import load_golden
        from .merge import to_label
        from .scoring import example_for

        convs, truth = load_golden(root / gp)
        golden = []
        for c in convs:
            if (c.id, dimension) in truth:
                score = truth[(c.id, dimension)]
                golden.append(dataclasses.replace(example_for(c, dimension), score=score, label=to_label(score)))
        if golden:  # a golden set without this dimension is simply not a column of its table
            out[GOLDEN] = golden
    return out


def _score_all(model: Any, tok: Any, sets: dict[str, list[Example]], *, name: str, max_length: int,
               batch_size: int, out_dir: Path) -> dict[str, Any]:
    from .metrics import summary
    from .scoring import predictions, score_examples

    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    result: dict[str, Any] = {}
    for test_set, exs in sets.items():
        scored = score_examples(model, tok, exs, max_length=max_length, batch_size=batch_size, test_set=test_set,
                                progress=True)
        preds = predictions(exs, scored, name, test_set)
        write_jsonl(out_dir / f"{test_set}.jsonl", preds)
        result[test_set] = {**summary(preds), "mass": round(sum(s.mass for s in scored) / len(scored), 6),
                            "truncated": sum(s.truncated for s in scored)}
    return result


def run_evaluate(params: dict[str, Any], train_set: str, dimension: str, variant: str, seed: int,
                 root: Path = Path(".")) -> dict[str, Any]:
    """Score the model of one fine-tune cell on every test set of its dimension (see the module docstring)."""
    from .config import finetune_config
    from .scoring import load_rater
    from .training_stages import cell_path

    fc = finetune_config(params)
    ec = evaluate_config(params)
    fc.check_cell(train_set, dimension, variant, seed)
    cell = cell_path(train_set, dimension, variant, seed)
    model_dir = root / "models" / "finetuned" / cell / "model"
    sets = load_test_sets(params, dimension, root)
    model, tok = load_rater(model_dir, base=_base_for(params, root), device=fc.device)
    result = _score_all(model, tok, sets, name=cell, max_length=fc.train.max_length, batch_size=ec.batch_size,
                        out_dir=root / "data" / "predictions" / "finetuned" / cell)
    metrics = {"model": cell, "set": train_set, "dimension": dimension, "variant": variant, "seed": seed,
               "test": result}
    write_json(root / "metrics" / "evaluate" / "finetuned" / f"{cell}.json", metrics)
    return metrics


def _base_for(params: dict[str, Any], root: Path) -> str:
    """The student an adapter was trained on (models/student, or the folder / Hub id it names)."""
    from .training_stages import student_source

    return student_source(params, root)


def run_baselines(params: dict[str, Any], dimension: str, root: Path = Path(".")) -> dict[str, Any]:
    """The untuned student and the label prior on every test set of ``dimension``."""
    from .config import finetune_config
    from .metrics import label_prior, prior_predictions, summary
    from .scoring import load_rater

    fc = finetune_config(params)
    ec = evaluate_config(params)
    if dimension not in fc.dimensions:
        raise ConfigError("train.dimensions", f"{dimension!r} is not listed ({', '.join(fc.dimensions)})")
    sets = load_test_sets(params, dimension, root)
    out = root / "data" / "predictions" / "baselines" / dimension
    model, tok = load_rater(_base_for(params, root), device=fc.device)
    untuned = _score_all(model, tok, sets, name="untuned", max_length=fc.train.max_length,
                         batch_size=ec.batch_size, out_dir=out / "untuned")
    prior_out = out / "prior"
    if prior_out.exists():
        import shutil

        shutil.rmtree(prior_out)
    priors: dict[str, float] = {}
    prior: dict[str, Any] = {}
    for test_set, exs in sets.items():
        # the test set's own training mean; the golden set has no training split: the mean over all training sets
        train_sets = [test_set] if test_set != GOLDEN else list(split_sets(params))
        scores = [e.score for s in train_sets
                  for e in read_jsonl(root / "data" / "splits" / s / dimension / "train.jsonl", Example)]
        priors[test_set] = round(label_prior(scores), 6)
        preds = prior_predictions(exs, priors[test_set], test_set=test_set)
        write_jsonl(prior_out / f"{test_set}.jsonl", preds)
        prior[test_set] = summary(preds)
    metrics = {"dimension": dimension, "untuned": untuned, "prior": prior, "prior_value": priors}
    write_json(root / "metrics" / "evaluate" / "baselines" / f"{dimension}.json", metrics)
    return metrics
