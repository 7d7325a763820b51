"""Stage bodies of the training half of the pipeline: the student and the fine-tune grid (DVC stages
``student`` and ``finetune``). Kept apart from :mod:`explainft.pipeline` so that editing them does not
invalidate the data stages that depend on that module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import annotate_config
from .fsutil import write_json
from .pipeline import split_sets
from .records import read_jsonl


# --------------------------------------------------------------------------- student, fine-tune

def student_texts(params: dict[str, Any], root: Path = Path(".")) -> list[str]:
    """The tiny student's corpus: every training conversation once, as the student sees it, and each dimension's
    rubric (the prompt up to the conversation) 50 times, so that the tokenizer and the brief pretraining know the
    words of the prompt. Only train splits are read: a test conversation is never seen before evaluation."""
    from .annotate.prompts import render_conversation
    from .records import Example
    from .targets import student_prompt

    acfg = annotate_config(params, deep=False)
    texts: list[str] = []
    seen: set[str] = set()
    headers: dict[str, str] = {}
    for s in split_sets(params):
        for dim in acfg.dimensions:
            for ex in read_jsonl(root / "data" / "splits" / s / dim / "train.jsonl", Example):
                if dim not in headers:
                    headers[dim] = student_prompt(ex).split("<<<CONVERSATION", 1)[0]
                if ex.id not in seen:
                    seen.add(ex.id)
                    texts.append(render_conversation(ex.conversation()))
    return texts + [headers[d] for d in acfg.dimensions if d in headers] * 50


def run_student(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    """models/student: the tiny student built and pretrained, SmolLM2 converted, or a marker naming any other."""
    import json

    from .config import finetune_config, student_build_config
    from .students import PRETRAIN_TIMING_KEYS, STUDENT_DIR, STUDENT_MARKER, _atomic_dir, build_tiny, \
        convert_smollm2, pretrain, resolve_student
    from .timings import split_timings, write_timings

    fc = finetune_config(params)
    out = root / STUDENT_DIR
    metrics: dict[str, Any] = {"student": fc.student}
    if fc.student == "tiny":
        sb = student_build_config(params)
        if "steps" not in sb.pretrain:
            from .errors import ConfigError

            raise ConfigError("student.pretrain.steps", "is required for the tiny student (e.g. 150)")
        texts = student_texts(params, root)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="tiny-", dir=root / "models" if (root / "models").is_dir() else None) as tmp:
            build_tiny(texts, Path(tmp) / "built", **sb.tiny)
            pre = pretrain(Path(tmp) / "built", texts, out, **sb.pretrain)
        metrics["pretrain"], timings = split_timings(pre, PRETRAIN_TIMING_KEYS)
        write_timings(root, "student", {"pretrain": timings})  # never a DVC output (explainft.timings)
        metrics["texts"] = len(texts)
        metrics["build"] = sb.tiny
    elif fc.student == "smollm2":
        convert_smollm2(out)
    else:
        # a folder, or a Hub id the fine-tune loads (and caches) itself
        where = _portable(resolve_student(fc.student, root), fc.student, root)
        with _atomic_dir(out) as tmp:
            (tmp / STUDENT_MARKER).write_text(json.dumps({"student": fc.student, "source": where}) + "\n")
        metrics["source"] = where
        return _student_metrics(root, metrics)
    (out / STUDENT_MARKER).write_text(json.dumps({"student": fc.student}) + "\n")
    return _student_metrics(root, metrics)


def _student_metrics(root: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    write_json(root / "metrics" / "student.json", metrics)
    return metrics


def _portable(where: str, spec: str, root: Path) -> str:
    """The student's folder as the outputs record it: relative to ``root`` when it lies inside, else as written in
    params (``spec``), so that no host's absolute path lands in a DVC output; a Hub id as it is."""
    path = Path(where)
    if not path.is_dir():
        return where
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return spec


def student_source(params: dict[str, Any], root: Path = Path(".")) -> str:
    """Where the fine-tune loads the student from: models/student (tiny, smollm2) or the folder / Hub id named."""
    from .config import finetune_config
    from .students import resolve_student

    return resolve_student(finetune_config(params).student, root)


def cell_path(train_set: str, dimension: str, variant: str, seed: int) -> str:
    """``<set>/<dimension>/<variant>/seed_<k>``: where one fine-tune's files live under models/, metrics/, plots/."""
    return f"{train_set}/{dimension}/{variant}/seed_{seed}"


def finetune_dir(root: Path, train_set: str, dimension: str, variant: str, seed: int) -> Path:
    return root / "models" / "finetuned" / cell_path(train_set, dimension, variant, seed)


def run_finetune(params: dict[str, Any], train_set: str, dimension: str, variant: str, seed: int,
                 root: Path = Path("."), *, callbacks: tuple = ()) -> dict[str, Any]:
    """One cell of the grid: data/variants/<set>/<dim>/<variant>.jsonl -> models/finetuned/<cell>/ (model/,
    checkpoints/), plots/train/<cell>/ (curves) and metrics/train/<cell>.json, <cell> = :func:`cell_path`.

    The held-out data here is the cell's **validation** split (data/splits/<set>/<dim>/validation.jsonl): its
    score-token loss before training and after every epoch (the curves), and, once trained, the model's expected
    score on it (``validation_mse``, ``validation_mae``; ``validation_prior_mse`` is the training mean's), which is
    what settings are chosen on (``explainft select``). The test split is never read here."""
    import dataclasses

    from .config import finetune_config
    from .encode import EncodeError
    from .errors import ConfigError
    from .fsutil import sha256_file
    from .records import Example
    from .students import load_student
    from .timings import write_timings
    from .train import TIMING_KEYS, finetune

    fc = finetune_config(params)
    fc.check_cell(train_set, dimension, variant, seed)
    train_path = root / "data" / "variants" / train_set / dimension / f"{variant}.jsonl"
    val_path = root / "data" / "splits" / train_set / dimension / "validation.jsonl"
    train = list(read_jsonl(train_path, Example))
    validation = list(read_jsonl(val_path, Example))
    source = student_source(params, root)

    import torch

    tc = dataclasses.replace(fc.train, seed=seed)
    torch.manual_seed(seed)  # LoRA's initial A matrices
    model, tok = load_student(source, quantization=fc.quantization, method=fc.method, lora=fc.lora,
                              gradient_checkpointing=fc.gradient_checkpointing, device=fc.device)
    fingerprint = {"config": dataclasses.asdict(tc), "student": fc.student, "method": fc.method,
                   "quantization": fc.quantization, "lora": fc.lora, "train": sha256_file(train_path),
                   "validation": sha256_file(val_path)}
    cell = cell_path(train_set, dimension, variant, seed)
    out = root / "models" / "finetuned" / cell
    try:
        m = finetune(model, tok, train, {"validation": validation}, out, tc, fingerprint=fingerprint,
                     keep_checkpoints=False, callbacks=callbacks, live_dir=root / "plots" / "train" / cell)
    except EncodeError as e:
        raise ConfigError("train.max_length", f"{e} (cell {cell}); "
                                              f"raise train.max_length or use shorter explanations") from None
    scored = validation_scores(model, tok, train, validation, max_length=tc.max_length,
                               position=tc.explanation_position)
    ev = m["eval"]["validation"]
    losses = [p["loss"] for p in ev["per_epoch"]]
    summary = {
        "student": fc.student, "method": fc.method, "set": train_set, "dimension": dimension, "variant": variant,
        "seed": seed,
        "n_train": len(train), "n_validation": len(validation), "steps": m["steps"], "epochs": m["epochs"],
        "train_loss": _r(m["train_loss"]), "validation_loss_initial": _r(ev["initial"]),
        "validation_loss_final": _r(ev["final"]), "validation_loss_best": _r(min(losses)) if losses else None,
        "best_epoch": (losses.index(min(losses)) + 1) if losses else None,
        "padding_share": _r(m["padding_share"]), "truncated": m["encode"]["train"]["truncated"],
        "resumed_from": m["resumed_from"],
        **scored,
    }
    write_json(root / "metrics" / "train" / f"{cell}.json", summary)
    # the run's wall-clock figures: timings/train/<cell>.json, never a DVC output (explainft.timings)
    write_timings(root, f"train/{cell}", {k: m[k] for k in TIMING_KEYS})
    return summary


def validation_scores(model: Any, tok: Any, train: list[Any], validation: list[Any], *, max_length: int,
                      position: str = "after", batch_size: int = 32) -> dict[str, Any]:
    """The trained model's expected score on the validation split against its merged scores, beside the label
    prior (the training mean) on the same items: ``validation_mse``, ``validation_mae``,
    ``validation_spearman``, ``validation_prior_mse``. Validation examples carry no variant: they are scored
    with the score-only prompt, as evaluation scores the test split."""
    from .metrics import label_prior, mae, mse, spearman
    from .scoring import score_examples

    scored = score_examples(model, tok, validation, max_length=max_length, batch_size=batch_size,
                            position=position, test_set="validation")
    pred = [s.expected for s in scored]
    gold = [e.score for e in validation]
    prior = label_prior([e.score for e in train])
    return {"validation_mse": _r(mse(pred, gold)), "validation_mae": _r(mae(pred, gold)),
            "validation_spearman": _r(spearman(pred, gold)),
            "validation_prior_mse": _r(mse([prior] * len(gold), gold))}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
