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
    from .students import STUDENT_DIR, STUDENT_MARKER, _atomic_dir, build_tiny, convert_smollm2, pretrain, \
        resolve_student

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
            metrics["pretrain"] = pretrain(Path(tmp) / "built", texts, out, **sb.pretrain)
        metrics["texts"] = len(texts)
        metrics["build"] = sb.tiny
    elif fc.student == "smollm2":
        convert_smollm2(out)
    else:
        where = resolve_student(fc.student, root)  # a folder, or a Hub id the fine-tune loads (and caches) itself
        with _atomic_dir(out) as tmp:
            (tmp / STUDENT_MARKER).write_text(json.dumps({"student": fc.student, "source": where}) + "\n")
        metrics["source"] = where
        return _student_metrics(root, metrics)
    (out / STUDENT_MARKER).write_text(json.dumps({"student": fc.student}) + "\n")
    return _student_metrics(root, metrics)


def _student_metrics(root: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    write_json(root / "metrics" / "student.json", metrics)
    return metrics


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
    checkpoints/), plots/train/<cell>/ (curves) and metrics/train/<cell>.json, <cell> = :func:`cell_path`."""
    import dataclasses

    from .config import finetune_config
    from .encode import EncodeError
    from .errors import ConfigError
    from .fsutil import sha256_file
    from .records import Example
    from .students import load_student
    from .train import finetune

    fc = finetune_config(params)
    fc.check_cell(train_set, dimension, variant, seed)
    train_path = root / "data" / "variants" / train_set / dimension / f"{variant}.jsonl"
    test_path = root / "data" / "splits" / train_set / dimension / "test.jsonl"
    train = list(read_jsonl(train_path, Example))
    test = list(read_jsonl(test_path, Example))
    source = student_source(params, root)

    import torch

    tc = dataclasses.replace(fc.train, seed=seed)
    torch.manual_seed(seed)  # LoRA's initial A matrices
    model, tok = load_student(source, quantization=fc.quantization, method=fc.method, lora=fc.lora,
                              gradient_checkpointing=fc.gradient_checkpointing, device=fc.device)
    fingerprint = {"config": dataclasses.asdict(tc), "student": fc.student, "method": fc.method,
                   "quantization": fc.quantization, "lora": fc.lora, "train": sha256_file(train_path),
                   "test": sha256_file(test_path)}
    cell = cell_path(train_set, dimension, variant, seed)
    out = root / "models" / "finetuned" / cell
    try:
        m = finetune(model, tok, train, {"test": test}, out, tc, fingerprint=fingerprint,
                     keep_checkpoints=False, callbacks=callbacks, live_dir=root / "plots" / "train" / cell)
    except EncodeError as e:
        raise ConfigError("train.max_length", f"{e} (cell {cell}); "
                                              f"raise train.max_length or use shorter explanations") from None
    ev = m["eval"]["test"]
    losses = [p["loss"] for p in ev["per_epoch"]]
    summary = {
        "student": fc.student, "method": fc.method, "set": train_set, "dimension": dimension, "variant": variant,
        "seed": seed,
        "n_train": len(train), "n_test": len(test), "steps": m["steps"], "epochs": m["epochs"],
        "train_loss": _r(m["train_loss"]), "test_loss_initial": _r(ev["initial"]), "test_loss_final": _r(ev["final"]),
        "test_loss_best": _r(min(losses)) if losses else None,
        "best_epoch": (losses.index(min(losses)) + 1) if losses else None,
        "train_seconds": round(m["train_seconds"], 1),
        "supervised_tokens_per_second": round(m["supervised_tokens_per_second"] or 0.0, 1),
        "padding_share": _r(m["padding_share"]), "truncated": m["encode"]["train"]["truncated"],
        "resumed_from": m["resumed_from"],
    }
    write_json(root / "metrics" / "train" / f"{cell}.json", summary)
    return summary


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
