"""DVC stage ``finetune`` (a matrix over the main and the ablation grid): one fine-tune of the student.

``data/variants/<set>/<dim>/<variant>.jsonl`` -> ``models/finetuned/<cell>/`` (``model/``, ``checkpoints/``),
``plots/train/<cell>/`` (curves) and ``metrics/train/<cell>.json``, with <cell> = :func:`explainft.layout.cell_path`.
The held-out data here is the cell's **validation** split; the test split is never read (only evaluate reads it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import finetune_config
from ..encode import EncodeError
from ..errors import ConfigError
from ..fsutil import sha256_file, write_json
from ..layout import cell_path
from ..metrics import label_prior, mae, mse, spearman
from ..records import Example, read_jsonl
from ..scoring import score_examples
from ..students import load_student, resolve_loading, resolve_student, student_revision
from ..timings import write_timings
from ..train import TIMING_KEYS, finetune


def run(
    params: dict[str, Any],
    train_set: str,
    dimension: str,
    variant: str,
    seed: int,
    root: Path = Path("."),
    *,
    callbacks: tuple = (),
) -> dict[str, Any]:
    """One cell of the grid (see the module docstring).

    The cell's validation split gives its score-token loss before training and after every epoch (the curves),
    and, once trained, the model's expected score on it (``validation_mse``, ``validation_mae``;
    ``validation_prior_mse`` is the training mean's), which is what settings are chosen on (``explainft select``).
    """
    fc = finetune_config(params)
    fc.check_cell(train_set, dimension, variant, seed)
    train_path = root / "data" / "variants" / train_set / dimension / f"{variant}.jsonl"
    val_path = root / "data" / "splits" / train_set / dimension / "validation.jsonl"
    train = list(read_jsonl(train_path, Example))
    validation = list(read_jsonl(val_path, Example))
    source = resolve_student(fc.student, root)
    # how the base is loaded (nf4 or not, the compute dtype, the pinned revision): decided once, loaded as decided,
    # and recorded beside the model (LOADING.json) so that evaluation measures the model that was trained
    loading = resolve_loading(
        quantization=fc.quantization,
        method=fc.method,
        device=fc.device,
        student=fc.student,
        revision=student_revision(root),
    )

    import torch  # heavy: imported when a fine-tune runs, not when the CLI starts

    tc = dataclasses.replace(fc.train, seed=seed)
    torch.manual_seed(seed)  # LoRA's initial A matrices
    model, tok = load_student(
        source,
        quantization=loading.quantization,
        method=loading.method,
        lora=fc.lora,
        gradient_checkpointing=fc.gradient_checkpointing,
        device=loading.device,
        dtype=loading.compute_dtype,
        revision=loading.revision,
    )
    fingerprint = {
        "config": dataclasses.asdict(tc),
        "student": fc.student,
        "method": fc.method,
        "quantization": fc.quantization,
        "lora": fc.lora,
        "train": sha256_file(train_path),
        "validation": sha256_file(val_path),
    }
    cell = cell_path(train_set, dimension, variant, seed)
    out = root / "models" / "finetuned" / cell
    try:
        m = finetune(
            model,
            tok,
            train,
            {"validation": validation},
            out,
            tc,
            fingerprint=fingerprint,
            keep_checkpoints=False,
            callbacks=callbacks,
            live_dir=root / "plots" / "train" / cell,
            loading=loading,
        )
    except EncodeError as e:
        raise ConfigError(
            "train.max_length", f"{e} (cell {cell}); raise train.max_length or use shorter explanations"
        ) from None
    scored = validation_scores(
        model, tok, train, validation, max_length=tc.max_length, position=tc.explanation_position
    )
    ev = m["eval"]["validation"]
    losses = [p["loss"] for p in ev["per_epoch"]]
    summary = {
        "student": fc.student,
        "method": fc.method,
        "quantization": loading.quantization,
        "compute_dtype": loading.compute_dtype,
        "set": train_set,
        "dimension": dimension,
        "variant": variant,
        "seed": seed,
        "n_train": len(train),
        "n_validation": len(validation),
        "steps": m["steps"],
        "epochs": m["epochs"],
        "train_loss": _r(m["train_loss"]),
        "validation_loss_initial": _r(ev["initial"]),
        "validation_loss_final": _r(ev["final"]),
        "validation_loss_best": _r(min(losses)) if losses else None,
        "best_epoch": (losses.index(min(losses)) + 1) if losses else None,
        "padding_share": _r(m["padding_share"]),
        "truncated": m["encode"]["train"]["truncated"],
        "resumed_from": m["resumed_from"],
        **scored,
    }
    write_json(root / "metrics" / "train" / f"{cell}.json", summary)
    # the run's wall-clock figures: timings/train/<cell>.json, never a DVC output (explainft.timings)
    write_timings(root, f"train/{cell}", {k: m[k] for k in TIMING_KEYS})
    return summary


def validation_scores(
    model: Any,
    tok: Any,
    train: list[Any],
    validation: list[Any],
    *,
    max_length: int,
    position: str = "after",
    batch_size: int = 32,
) -> dict[str, Any]:
    """The trained model's expected score on the validation split against its merged scores, beside the label
    prior (the training mean) on the same items: ``validation_mse``, ``validation_mae``,
    ``validation_spearman``, ``validation_prior_mse``. Validation examples carry no variant: they are scored
    as evaluation scores the test split (the score-only prompt; in layout "before", after the model's own
    rationale)."""
    scored = score_examples(
        model, tok, validation, max_length=max_length, batch_size=batch_size, position=position, test_set="validation"
    )
    pred = [s.expected for s in scored]
    gold = [e.score for e in validation]
    prior = label_prior([e.score for e in train])
    return {
        "validation_mse": _r(mse(pred, gold)),
        "validation_mae": _r(mae(pred, gold)),
        "validation_spearman": _r(spearman(pred, gold)),
        "validation_prior_mse": _r(mse([prior] * len(gold), gold)),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
