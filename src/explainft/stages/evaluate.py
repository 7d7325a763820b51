"""DVC stage ``evaluate`` (a matrix over the main and the ablation grid): the model of one fine-tune cell
(``<set>/<dimension>/<variant>/seed_<k>``) rates the test split of every set on its dimension (cross-dataset, the
paper's Tables 3 and 7-11), and the golden set when one is configured.

Predictions go to ``data/predictions/finetuned/<cell>/<test set>.jsonl`` (Prediction records: the five
probabilities, the expected score, the argmax, the target) and the metrics of each test set to
``metrics/evaluate/finetuned/<cell>.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import evaluate_config, finetune_config, golden_path, split_sets
from ..evaluation import load_test_sets, score_all
from ..fsutil import write_json
from ..layout import cell_path
from ..scoring import load_rater
from ..students import resolve_student, student_revision


def run(
    params: dict[str, Any], train_set: str, dimension: str, variant: str, seed: int, root: Path = Path(".")
) -> dict[str, Any]:
    fc = finetune_config(params)
    ec = evaluate_config(params)
    fc.check_cell(train_set, dimension, variant, seed)
    cell = cell_path(train_set, dimension, variant, seed)
    model_dir = root / "models" / "finetuned" / cell / "model"
    sets = load_test_sets(split_sets(params), golden_path(params), dimension, root)
    # an adapter's base: the student it was trained on (models/student, or the folder / Hub id it names)
    # (and loaded as the fine-tune loaded it: the model folder's LOADING.json, the student's pinned revision)
    model, tok = load_rater(
        model_dir, base=resolve_student(fc.student, root), device=fc.device, revision=student_revision(root)
    )
    result = score_all(
        model,
        tok,
        sets,
        name=cell,
        max_length=fc.train.max_length,
        batch_size=ec.batch_size,
        out_dir=root / "data" / "predictions" / "finetuned" / cell,
        position=fc.train.explanation_position,  # the layout it was trained on
    )
    metrics = {
        "model": cell,
        "set": train_set,
        "dimension": dimension,
        "variant": variant,
        "seed": seed,
        "test": result,
    }
    write_json(root / "metrics" / "evaluate" / "finetuned" / f"{cell}.json", metrics)
    return metrics
