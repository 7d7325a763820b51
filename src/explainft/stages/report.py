"""DVC stage ``report``: ``reports/REPORT.md``, its tables and figures, and ``metrics/report.json``, from what the
evaluate, baselines, finetune and analyse stages wrote (:mod:`explainft.report` renders them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import FinetuneConfig, evaluate_config, finetune_config, golden_path, human_config, split_sets
from ..evaluation import GOLDEN
from ..provenance import Provenance
from ..report import Grid, build_report
from ..report.numbers import load_json


def grid_of(fc: FinetuneConfig, test_sets: tuple[str, ...]) -> Grid:
    """The report's grid: the fine-tune grid of ``fc`` (main and ablation), each dimension read on ``test_sets``."""
    ab = fc.ablation
    cells = tuple((s, d, v) for s in ab.sets for d in ab.dimensions for v in ab.variants) if ab else ()
    return Grid(
        sets=fc.sets,
        dimensions=fc.dimensions,
        variants=fc.variants,
        seeds=fc.seeds,
        test_sets={d: test_sets for d in fc.dimensions},
        ablation=cells,
    )


def run(params: dict[str, Any], root: Path = Path("."), *, provenance: Provenance | None = None) -> dict[str, Any]:
    ec = evaluate_config(params)
    golden = golden_path(params) if "golden" in params else None
    tests = tuple(split_sets(params)) + ((GOLDEN,) if golden else ())
    grid = grid_of(finetune_config(params), tests)
    # a golden set without a dimension has no column for it: use the columns the baselines actually scored
    for dim in grid.dimensions:
        scored = load_json(root / "metrics" / "evaluate" / "baselines" / f"{dim}.json")["untuned"]
        grid.test_sets[dim] = tuple(t for t in grid.test_sets[dim] if t in scored)
    return build_report(
        root,
        params,
        grid,
        n_boot=ec.bootstrap,
        ci=ec.ci,
        seed=ec.seed,
        provenance=provenance,
        human=human_config(params).sets,
    )
