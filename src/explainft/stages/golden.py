"""DVC stage ``golden``: annotate and merge the golden set (``golden.path``), then compare each teacher prompt and
merge method with its human ratings (the paper's Table 2): ``metrics/golden.json`` and ``reports/golden.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..annotate.ensemble import annotate_conversations
from ..config import annotate_config, golden_path, merge_config
from ..fsutil import atomic_open, write_json
from ..golden import evaluate_golden, load_golden, write_golden
from .merge import merge_items


def run(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    metrics_path, md_path = root / "metrics" / "golden.json", root / "reports" / "golden.md"
    path = golden_path(params)
    if path is None:
        result = {"configured": False}
        write_json(metrics_path, result)
        with atomic_open(md_path) as fh:
            fh.write(
                "# Teacher prompts and merge methods against the golden set\n\n"
                "No golden set is configured (`golden.path: null` in the profile). See README, "
                "'Golden set', for the format and public human-rated sets to convert.\n"
            )
        return result
    acfg = annotate_config(params)
    mcfg = merge_config(params, acfg)
    convs, truth = load_golden(root / path)
    ratings, _ = annotate_conversations(convs, acfg, "golden")
    methods = ["average", "most_frequent"] + (["llm"] if mcfg.judge else [])
    # Table 2 compares scores only: explanations are merged extractively here, whatever merge.explanation says
    items = {m: merge_items(ratings, acfg, mcfg, score_method=m, explanation_method="extractive")[0] for m in methods}
    result = evaluate_golden(ratings, items, truth)
    write_golden(result, metrics_path, md_path)
    return result
