"""DVC stage ``baselines`` (one per dimension): the **untuned** student (the same model and prompt, no
fine-tuning) and the **label prior** (every item gets the mean training score of the test set's own dataset: the
constant with the lowest training MSE, a floor any trained rater must clear) on every test set, written to
``data/predictions/baselines/<dimension>/{untuned,prior}/`` and ``metrics/evaluate/baselines/<dimension>.json``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..config import evaluate_config, finetune_config, golden_path, split_sets
from ..errors import ConfigError
from ..evaluation import GOLDEN, load_test_sets, score_all
from ..fsutil import write_json
from ..metrics import label_prior, prior_predictions, summary
from ..records import Example, read_jsonl, write_jsonl
from ..scoring import load_rater
from ..students import resolve_student, student_revision


def run(params: dict[str, Any], dimension: str, root: Path = Path(".")) -> dict[str, Any]:
    fc = finetune_config(params)
    ec = evaluate_config(params)
    if dimension not in fc.dimensions:
        raise ConfigError("train.dimensions", f"{dimension!r} is not listed ({', '.join(fc.dimensions)})")
    sets_names = split_sets(params)
    sets = load_test_sets(sets_names, golden_path(params), dimension, root)
    out = root / "data" / "predictions" / "baselines" / dimension
    # the student loaded as its fine-tunes load it (train.quantization and train.method resolved alike: an NF4
    # base for QLoRA), at its pinned revision
    model, tok = load_rater(
        resolve_student(fc.student, root),
        device=fc.device,
        quantization=fc.quantization,
        method=fc.method,
        revision=student_revision(root),
    )
    untuned = score_all(
        model,
        tok,
        sets,
        name="untuned",
        max_length=fc.train.max_length,
        batch_size=ec.batch_size,
        out_dir=out / "untuned",
        position=fc.train.explanation_position,  # asked as the fine-tunes are
    )
    prior_out = out / "prior"
    if prior_out.exists():
        shutil.rmtree(prior_out)
    priors: dict[str, float] = {}
    prior: dict[str, Any] = {}
    for test_set, exs in sets.items():
        # the test set's own training mean; the golden set has no training split: the mean over all training sets
        train_sets = [test_set] if test_set != GOLDEN else list(sets_names)
        scores = [
            e.score
            for s in train_sets
            for e in read_jsonl(root / "data" / "splits" / s / dimension / "train.jsonl", Example)
        ]
        priors[test_set] = round(label_prior(scores), 6)
        preds = prior_predictions(exs, priors[test_set], test_set=test_set)
        write_jsonl(prior_out / f"{test_set}.jsonl", preds)
        prior[test_set] = summary(preds)
    metrics = {"dimension": dimension, "untuned": untuned, "prior": prior, "prior_value": priors}
    write_json(root / "metrics" / "evaluate" / "baselines" / f"{dimension}.json", metrics)
    return metrics
