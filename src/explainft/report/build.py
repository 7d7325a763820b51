"""The whole report: reads the numbers once, writes each section in order, then REPORT.md and metrics/report.json."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

from ..fsutil import atomic_open, write_json
from ..provenance import Provenance
from ..provenance import collect as collect_provenance
from .human import human_section
from .numbers import Grid, baseline_check, collect, with_vs_without
from .paper import paper_wins
from .sections import (
    ablations_section,
    analyses_section,
    baselines_section,
    cross_dataset_section,
    header_section,
    loss_curves_section,
    paper_section,
    selection_section,
    with_vs_without_section,
)


def build_report(
    root: Path,
    params: Mapping[str, Any],
    grid: Grid,
    *,
    n_boot: int,
    ci: float,
    seed: int,
    provenance: Provenance | None = None,
    human: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write reports/REPORT.md, reports/tables, reports/figures and metrics/report.json; return the metrics.

    ``provenance``: what the header states (default: :func:`explainft.provenance.collect` for ``root``);
    ``human``: the human-rated sets (``human.sets``) whose agreement section is written."""
    root = Path(root)
    numbers = collect(root, grid)
    wvw = with_vs_without(root, grid, n_boot=n_boot, ci=ci, seed=seed)
    check = baseline_check(numbers, grid, root)
    p_wins, p_total = paper_wins(root, grid.dimensions)
    tables, figures = root / "reports" / "tables", root / "reports" / "figures"
    prov = provenance if provenance is not None else collect_provenance(root, params)

    md = io.StringIO()
    w = md.write
    header_section(w, params, grid, prov)
    selection_metrics = selection_section(w, root, params)
    with_vs_without_section(w, wvw, grid, tables, figures, n_boot=n_boot, ci=ci, paper_score=(p_wins, p_total))
    baseline_metrics = baselines_section(w, check, params["train"].get("score_target", "hard"))
    human_metrics = human_section(w, root, human or {}, tables)
    cross_dataset_section(w, numbers, grid, tables)
    loss_curves_section(w, root, grid, figures)
    ablation_metrics = ablations_section(w, root, numbers, grid, tables, figures)
    analyses_section(w, root)
    paper_section(w, root, numbers, grid)
    with atomic_open(root / "reports" / "REPORT.md") as fh:
        fh.write(md.getvalue())

    metrics = {
        "with_vs_without": {
            f"{r['set']}/{r['dimension']}": {k: round(r[k], 6) for k in ("diff", "low", "high")} for r in wvw
        },
        "explanations_win": sum(r["explanations_win"] for r in wvw),
        "cells": len(wvw),
        **baseline_metrics,
        "paper_explanations_win": p_wins,
        "paper_cells": p_total,
        "ablation": ablation_metrics,
        "human": human_metrics,
        "selection": selection_metrics,
        "provenance": prov.to_dict(),
    }
    write_json(root / "metrics" / "report.json", metrics)
    return metrics
