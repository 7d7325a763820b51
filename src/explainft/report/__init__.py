"""The report: cross-dataset tables, validation-loss curves, with-vs-without explanations, paper beside reproduction.

:func:`build_report` reads what the evaluate, baselines and finetune stages
wrote (metrics/evaluate, data/predictions, metrics/train, plots/train) and the
paper's tables (paper/*.csv), and writes

* ``reports/REPORT.md``: its provenance (:mod:`explainft.provenance`: the
  profile, the commit of the pipeline's inputs and whether the work tree
  differs from it, a digest of dvc.lock's inputs), the per-dimension matrices
  of test MSE and MAE (rows: untuned student, label prior, each training set
  score-only and with explanations "(E)", other variants "[variant]";
  columns: the test sets), the with-vs-without summary with paired bootstrap
  intervals, the baseline check, the validation-loss curves (the fine-tunes
  read only the validation split; the test split only evaluation) and the
  paper's numbers beside ours;
* ``reports/tables/<dimension>_{mse,mae}.csv`` (the matrices) and
  ``reports/tables/with_vs_without.csv``;
* ``reports/figures/validation_loss_<dimension>.png`` and
  ``reports/figures/with_vs_without.png``;
* ``metrics/report.json``: the with-vs-without differences, the win count
  and the baseline check, small and stable for ``dvc metrics diff``, and the
  provenance (``commit``, ``dirty``, ``profile``, ``inputs_sha256``).

Several seeds (``train.seeds``): a cell's value is the mean over seeds, and
the interval of a difference comes from :func:`explainft.metrics.seed_bootstrap`
(items and seeds resampled), so it covers seed variance.

Everything is a function of its inputs: the same inputs give byte-identical
files (no dates, no timings; figures are written with fixed metadata), so a
fresh clone's ``dvc repro`` reproduces the committed report.

The modules: :mod:`.numbers` (reading the stage outputs: :class:`Grid`, :func:`collect`,
:func:`with_vs_without`, :func:`baseline_check`), :mod:`.paper` (the paper's tables), :mod:`.figures`
(matplotlib), :mod:`.markdown` (number formatting, tables, CSV), :mod:`.sections` (the prose, one function per
section of REPORT.md) and :mod:`.build` (:func:`build_report`: the sections in order).
"""

from __future__ import annotations

from ..variants import EXPLAINED, SCORE_ONLY
from .build import build_report
from .figures import loss_curves_figure, with_vs_without_figure
from .markdown import DIMENSION_TITLES
from .numbers import Grid, ablation_rows, baseline_check, collect, row_label, with_vs_without
from .paper import PAPER_NAMES, PAPER_RANDOM_ROWS, PAPER_TABLES, paper_table, paper_wins

__all__ = [
    "DIMENSION_TITLES",
    "EXPLAINED",
    "PAPER_NAMES",
    "PAPER_RANDOM_ROWS",
    "PAPER_TABLES",
    "SCORE_ONLY",
    "Grid",
    "ablation_rows",
    "baseline_check",
    "build_report",
    "collect",
    "loss_curves_figure",
    "paper_table",
    "paper_wins",
    "row_label",
    "with_vs_without",
    "with_vs_without_figure",
]
