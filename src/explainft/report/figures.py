"""The report's figures (matplotlib, imported only when a figure is drawn), written as PNG with fixed metadata.

* ``reports/figures/validation_loss_<dimension>.png``: :func:`loss_curves_figure` (plots/train);
* ``reports/figures/with_vs_without.png``: :func:`with_vs_without_figure`;
* ``reports/figures/ablation_*.png``: :func:`bars_figure` (explanation type, random words) and
  :func:`length_figure` (explanation length).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..variants import EXPLAINED
from .markdown import DIMENSION_TITLES
from .numbers import Grid, row_label


def _figure_context() -> Any:
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` atomically, without the Software metadata: the bytes are a function of the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    tmp.replace(path)


def _curve(root: Path, cell: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, validation loss) of one fine-tune (plots/train/<cell>); None when it wrote none."""
    path = root / "plots" / "train" / cell / "plots" / "metrics" / "eval" / "validation" / "loss.tsv"
    if not path.is_file():
        return None
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line]
    return np.array([int(r[0]) for r in rows]), np.array([float(r[1]) for r in rows])


def loss_curves_figure(root: Path, grid: Grid, dim: str, out: Path) -> bool:
    """Score-only validation loss against optimizer step, per training set: every variant (mean over seeds)."""
    plt = _figure_context()
    sets = list(grid.sets)
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.2), squeeze=False)
    drew = False
    for ax, s in zip(axes[0], sets):
        for v in grid.variants:
            curves = [c for c in (_curve(root, f"{s}/{dim}/{v}/seed_{k}") for k in grid.seeds) if c is not None]
            if not curves:
                continue
            n = min(len(c[0]) for c in curves)
            steps = curves[0][0][:n]
            loss = np.mean([c[1][:n] for c in curves], axis=0)
            ax.plot(steps, loss, marker="o", ms=3, label=row_label("", v).strip() or "score only")
            drew = True
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation loss (score token)")
    if drew:
        axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"{DIMENSION_TITLES.get(dim, dim)}: validation loss with and without explanations", fontsize=10)
    if drew:
        _save(fig, out)
    plt.close(fig)
    return drew


def with_vs_without_figure(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    """Each cell's MSE difference, (E) minus score only, with its interval (:func:`.numbers.with_vs_without`)."""
    plt = _figure_context()
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(rows) + 1.2))
    labels = [f"{r['set']} / {r['dimension']}" for r in rows]
    y = np.arange(len(rows))
    diffs = np.array([r["diff"] for r in rows])
    err = np.clip(np.array([[r["diff"] - r["low"] for r in rows], [r["high"] - r["diff"] for r in rows]]), 0, None)
    ax.errorbar(diffs, y, xerr=err, fmt="o", color="tab:blue", capsize=3)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test MSE (E) − test MSE (score only); < 0: explanations help")
    _save(fig, out)
    plt.close(fig)


def bars_figure(labels: Sequence[str], values: Sequence[float], xlabel: str, title: str, out: Path) -> None:
    """Horizontal bars, one per label, top to bottom in the given order."""
    plt = _figure_context()
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(labels) + 1.2))
    y = np.arange(len(labels))
    ax.barh(y, values, color="tab:blue")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    _save(fig, out)
    plt.close(fig)


def length_figure(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    """Test MSE and MAE against explanation length, one line per cell; the untruncated assessment as a star."""
    plt = _figure_context()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["set"], r["dimension"]), []).append(r)
    for (s, dim), pts in cells.items():
        trunc = [r for r in pts if r["variant"] != EXPLAINED]
        full = [r for r in pts if r["variant"] == EXPLAINED and r["words"] is not None]
        for ax, metric in zip(axes, ("mse", "mae")):
            line = ax.plot(
                [r["words"] for r in trunc], [r[metric] for r in trunc], marker="o", ms=3, label=f"{s} / {dim}"
            )[0]
            for r in full:
                ax.plot(
                    [r["words"]],
                    [r[metric]],
                    marker="*",
                    ms=9,
                    color=line.get_color(),
                    ls="none",
                    label=f"{s} / {dim}: assessment (untruncated)",
                )
    for ax, metric in zip(axes, ("MSE", "MAE")):
        ax.set_xlabel("explanation length (words)")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    _save(fig, out)
    plt.close(fig)
