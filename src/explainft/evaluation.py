"""Scoring a rater on the test sets: which test sets a dimension has, and one model's predictions and metrics on
each of them. The evaluate and baselines stages (:mod:`explainft.stages.evaluate`,
:mod:`explainft.stages.baselines`) run these for every fine-tuned model and for the two baselines.

Scoring reads the score-token distribution in one forward pass (:mod:`explainft.scoring`) with the training
``max_length`` and the training layout (``train.explanation_position``), so a test conversation is truncated and
laid out exactly as in training; in layout "before" the model writes its rationale first.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError
from .golden import load_golden
from .merge import to_label
from .metrics import summary
from .records import Example, read_jsonl, write_jsonl
from .scoring import example_for, predictions, score_examples

GOLDEN = "golden"  # the golden set's name as a test set


def load_test_sets(
    sets: Sequence[str], golden: str | None, dimension: str, root: Path = Path(".")
) -> dict[str, list[Example]]:
    """{test set name: examples} for ``dimension``: the test split of each of ``sets``, then the golden set (the
    file ``golden``, relative to ``root``) if there is one.

    An empty test split, or one whose items are on another dimension, is an error naming the file.
    """
    out: dict[str, list[Example]] = {}
    for s in sets:
        path = root / "data" / "splits" / s / dimension / "test.jsonl"
        exs = list(read_jsonl(path, Example))
        if not exs:
            raise ConfigError("split.test", f"{path} is empty: there is nothing to evaluate on")
        wrong = next((e for e in exs if e.dimension != dimension), None)
        if wrong is not None:
            raise ConfigError(
                "annotate.dimensions", f"{path}: item {wrong.id!r} is rated on {wrong.dimension!r}, not {dimension!r}"
            )
        out[s] = exs
    if golden is not None:
        convs, truth = load_golden(root / golden)
        examples = []
        for c in convs:
            if (c.id, dimension) in truth:
                score = truth[(c.id, dimension)]
                examples.append(dataclasses.replace(example_for(c, dimension), score=score, label=to_label(score)))
        if examples:  # a golden set without this dimension is simply not a column of its table
            out[GOLDEN] = examples
    return out


def score_all(
    model: Any,
    tok: Any,
    sets: dict[str, list[Example]],
    *,
    name: str,
    max_length: int,
    batch_size: int,
    out_dir: Path,
    position: str = "after",
) -> dict[str, Any]:
    """Score every test set with ``model`` in layout ``position`` (the one it was trained on):
    ``out_dir/<test set>.jsonl`` (Prediction records) and, per test set, the metrics
    (:func:`explainft.metrics.summary`), the mean probability mass on the score tokens and the number of truncated
    conversations; in layout "before" also ``rationales_incomplete``, the number of generated rationales that did
    not reach ``"\\nScore:"`` within the budget (they are scored all the same)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    result: dict[str, Any] = {}
    for test_set, exs in sets.items():
        scored = score_examples(
            model,
            tok,
            exs,
            max_length=max_length,
            batch_size=batch_size,
            position=position,
            test_set=test_set,
            progress=True,
        )
        preds = predictions(exs, scored, name, test_set)
        write_jsonl(out_dir / f"{test_set}.jsonl", preds)
        result[test_set] = {
            **summary(preds),
            "mass": round(sum(s.mass for s in scored) / len(scored), 6),
            "truncated": sum(s.truncated for s in scored),
        }
        if position != "after":
            result[test_set]["rationales_incomplete"] = sum(not s.rationale_complete for s in scored)
    return result
