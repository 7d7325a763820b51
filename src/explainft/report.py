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
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .fsutil import atomic_open, write_json
from .provenance import Provenance
from .provenance import collect as collect_provenance
from .records import Prediction, read_jsonl

SCORE_ONLY = "none"
EXPLAINED = "assessment"  # the paper's "(E)": score + the merged assessment
# our set names -> the paper's column and row names (paper/README.md)
PAPER_NAMES = {"chatbot_arena": "ChatbotAC", "hh_rlhf_chosen": "HH-C", "hh_rlhf_rejected": "HH-R",
               "amazonqa": "AmazonQA", "coqa": "CoQA", "cornell_movie_dialogs": "Movies", "mixed": "Mixed",
               "golden": "Golden"}
PAPER_TABLES = {("naturalness", "mse"): ("table3_naturalness_mse.csv", 3),
                ("naturalness", "mae"): ("table7_naturalness_mae.csv", 7),
                ("comprehensiveness", "mse"): ("table8_comprehensiveness_mse.csv", 8),
                ("comprehensiveness", "mae"): ("table9_comprehensiveness_mae.csv", 9),
                ("on_topic", "mse"): ("table10_on_topic_mse.csv", 10),
                ("on_topic", "mae"): ("table11_on_topic_mae.csv", 11)}
DIMENSION_TITLES = {"naturalness": "Naturalness", "comprehensiveness": "Comprehensiveness", "on_topic": "On-topic"}


@dataclass(frozen=True)
class Grid:
    sets: tuple[str, ...]
    dimensions: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    test_sets: dict[str, tuple[str, ...]]  # per dimension
    ablation: tuple[tuple[str, str, str], ...] = ()  # (set, dimension, variant) cells of the ablation grid

    def variants_of(self, train_set: str, dimension: str) -> tuple[str, ...]:
        """Every variant trained on this set x dimension: the main grid's, then the ablation grid's."""
        return self.variants + tuple(v for s, d, v in self.ablation if (s, d) == (train_set, dimension))


def row_label(train_set: str, variant: str) -> str:
    if variant == SCORE_ONLY:
        return train_set
    if variant == EXPLAINED:
        return f"{train_set} (E)"
    return f"{train_set} [{variant}]"


def _fmt(x: float | None, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for v in r])
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())


# --------------------------------------------------------------------------- reading the stage outputs


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: run `dvc repro` (the report reads every stage's output)") from None


def _errors(root: Path, cell: str, test_set: str) -> dict[str, float]:
    """{item id: squared error of the expected score} of one model on one test set."""
    path = root / "data" / "predictions" / cell / f"{test_set}.jsonl"
    return {p.id: (p.expected - p.target) ** 2 for p in read_jsonl(path, Prediction)}


def collect(root: Path, grid: Grid) -> dict[str, Any]:
    """Every number the report shows: {dimension: {"rows": {label: {test_set: {metric: mean over seeds}}}}}."""
    out: dict[str, Any] = {}
    for dim in grid.dimensions:
        base = _load_json(root / "metrics" / "evaluate" / "baselines" / f"{dim}.json")
        rows: dict[str, dict[str, dict[str, float]]] = {"Untuned": base["untuned"], "Prior": base["prior"]}
        for s in grid.sets:
            for v in grid.variants_of(s, dim):
                per_seed = [_load_json(root / "metrics" / "evaluate" / "finetuned" / s / dim / v / f"seed_{k}.json")["test"]
                            for k in grid.seeds]
                rows[row_label(s, v)] = {t: {m: float(np.mean([r[t][m] for r in per_seed])) for m in ("mse", "mae")}
                                         for t in grid.test_sets[dim]}
        out[dim] = {"rows": rows, "prior_value": base["prior_value"]}
    return out


def with_vs_without(root: Path, grid: Grid, *, n_boot: int, ci: float, seed: int) -> list[dict[str, Any]]:
    """For each training set x dimension: MSE(E) - MSE(score only) on the set's own test split, with an interval."""
    from .metrics import seed_bootstrap

    if SCORE_ONLY not in grid.variants or EXPLAINED not in grid.variants:
        return []
    rows = []
    for dim in grid.dimensions:
        for s in grid.sets:
            if s not in grid.test_sets[dim]:
                continue
            errs = {}
            for v in (EXPLAINED, SCORE_ONLY):
                per_seed = [_errors(root, f"finetuned/{s}/{dim}/{v}/seed_{k}", s) for k in grid.seeds]
                ids = sorted(per_seed[0])
                errs[v] = np.array([[e[i] for i in ids] for e in per_seed])
            b = seed_bootstrap(errs[EXPLAINED], errs[SCORE_ONLY], n_boot=n_boot, seed=seed, ci=ci)
            rows.append({"set": s, "dimension": dim, "mse_explained": float(errs[EXPLAINED].mean()),
                         "mse_score_only": float(errs[SCORE_ONLY].mean()), "diff": b["diff"], "low": b["low"],
                         "high": b["high"], "explanations_win": b["diff"] < 0,
                         "significant": b["high"] < 0 or b["low"] > 0})
    return rows


def _offset(root: Path, grid: Grid, s: str, dim: str, v: str) -> dict[str, float]:
    """Mean offset of one model on its own test set, from its predictions (means over seeds): ``bias`` (mean
    prediction minus mean label), ``centred`` (MSE minus bias squared: the error left once the offset is
    removed) and ``label_var`` (the labels' variance: about what the prior scores, as it sits near their mean)."""
    per_seed = []
    for k in grid.seeds:
        path = root / "data" / "predictions" / "finetuned" / s / dim / v / f"seed_{k}" / f"{s}.jsonl"
        preds = list(read_jsonl(path, Prediction))
        err = np.array([p.expected - p.target for p in preds])
        target = np.array([p.target for p in preds])
        per_seed.append((float(err.mean()), float(err.var()), float(target.var())))
    bias, centred, label_var = (float(np.mean(col)) for col in zip(*per_seed))
    return {"bias": bias, "centred": centred, "label_var": label_var}


def baseline_check(numbers: Mapping[str, Any], grid: Grid, root: Path) -> list[dict[str, Any]]:
    """Does every fine-tuned model beat the untuned student and the label prior on its own test set (MSE)?
    Each row also splits the model's MSE into its mean offset and the rest (``_offset``)."""
    out = []
    for dim in grid.dimensions:
        rows = numbers[dim]["rows"]
        for s in grid.sets:
            if s not in grid.test_sets[dim]:
                continue
            for v in grid.variants_of(s, dim):
                mse = rows[row_label(s, v)][s]["mse"]
                out.append({"set": s, "dimension": dim, "variant": v, "mse": mse,
                            "untuned": rows["Untuned"][s]["mse"], "prior": rows["Prior"][s]["mse"],
                            "beats_untuned": mse < rows["Untuned"][s]["mse"], "beats_prior": mse < rows["Prior"][s]["mse"],
                            **_offset(root, grid, s, dim, v)})
    return out


# --------------------------------------------------------------------------- the paper's numbers


def paper_table(root: Path, dim: str, metric: str) -> tuple[list[str], list[list[str]]] | None:
    name = ("table4_random_naturalness_mse.csv", 4) if (dim, metric) == ("naturalness", "random") else \
        PAPER_TABLES.get((dim, metric))
    if name is None or not (root / "paper" / name[0]).is_file():
        return None
    with open(root / "paper" / name[0], newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def paper_wins(root: Path, dims: Sequence[str]) -> tuple[int, int]:
    """(cells where "(E)" beats score-only on its own test set, cells) in the paper's MSE tables."""
    wins = total = 0
    for dim in dims:
        t = paper_table(root, dim, "mse")
        if t is None:
            continue
        header, rows = t
        by_row = {r[0]: r[1:] for r in rows}
        for label, values in by_row.items():
            if label.endswith(" (E)") or label == "Baseline" or label not in header:
                continue
            e = by_row.get(f"{label} (E)")
            if e is None:
                continue
            col = header.index(label) - 1
            total += 1
            wins += float(e[col]) < float(values[col])
    return wins, total


# --------------------------------------------------------------------------- figures


def _figure_context():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    tmp.replace(path)


def _curve(root: Path, cell: str) -> tuple[np.ndarray, np.ndarray] | None:
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


# --------------------------------------------------------------------------- the document


def _matrix_rows(numbers: Mapping[str, Any], dim: str, grid: Grid, metric: str) -> list[list[Any]]:
    rows = numbers[dim]["rows"]
    return [[label] + [rows[label][t][metric] for t in grid.test_sets[dim]] for label in rows]


def build_report(root: Path, params: Mapping[str, Any], grid: Grid, *, n_boot: int, ci: float, seed: int,
                 provenance: Provenance | None = None) -> dict[str, Any]:
    """Write reports/REPORT.md, reports/tables, reports/figures and metrics/report.json; return the metrics.

    ``provenance``: what the header states (default: :func:`explainft.provenance.collect` for ``root``)."""
    root = Path(root)
    numbers = collect(root, grid)
    wvw = with_vs_without(root, grid, n_boot=n_boot, ci=ci, seed=seed)
    check = baseline_check(numbers, grid, root)
    p_wins, p_total = paper_wins(root, grid.dimensions)
    tables, figures = root / "reports" / "tables", root / "reports" / "figures"
    profile = params.get("profile", "unknown")
    prov = provenance if provenance is not None else collect_provenance(root, params)
    demo = profile != "paper"

    md = io.StringIO()
    w = md.write
    w("# explainft report\n\n")
    score_target = params["train"].get("score_target", "hard")
    score_weight = float(params["train"].get("score_weight", 1.0))
    objective = "" if (score_target, score_weight) == ("hard", 1.0) else (
        f", score target {score_target}, score weight {score_weight:g} (README, \"Score target and weight\")")
    w(f"{prov.sentence()}; student `{params['train']['student']}` "
      f"({params['train'].get('method', 'lora')}){objective}, seeds {list(grid.seeds)}. Generated by the `report` "
      "stage from the pipeline's outputs (`dvc repro` keeps it current).\n\n")
    if demo:
        student = params["train"]["student"]
        who = {"tiny": "a tiny student built here", "smollm2": "SmolLM2-135M-Instruct"}.get(student, f"`{student}`")
        w(f"> **A demonstration, not a replication.** This profile trains {who} on the offline chatterbot corpus "
          "with heuristic teachers; its numbers show that the pipeline measures what the paper measures, not what "
          "the paper found. Only `configs/paper.yaml` (six datasets, LLM teachers, Mistral-7B QLoRA) is a "
          "replication.\n\n")

    selection_metrics = _selections(w, root, params)

    w("## With vs without explanations\n\n")
    if wvw:
        wins = sum(r["explanations_win"] for r in wvw)
        sig = sum(r["explanations_win"] and r["significant"] for r in wvw)
        w(f"Test MSE of the model trained on score + explanation minus that of the score-only model, on the "
          f"training set's own test split, with a paired bootstrap {ci:.0%} interval over test items"
          f"{' and seeds' if len(grid.seeds) > 1 else ''} ({n_boot} resamples). **Explanations win in {wins} of "
          f"{len(wvw)} cells** ({sig} with the interval below zero); the paper: {p_wins} of {p_total}.\n\n")
        w(_md_table(["training set", "dimension", "MSE score only", "MSE (E)", "difference", f"{ci:.0%} interval"],
                    [[r["set"], r["dimension"], _fmt(r["mse_score_only"]), _fmt(r["mse_explained"]),
                      f"{r['diff']:+.4f}", f"[{r['low']:+.4f}, {r['high']:+.4f}]"] for r in wvw]))
        w("\n![with vs without](figures/with_vs_without.png)\n\n")
        _write_csv(tables / "with_vs_without.csv",
                   ["set", "dimension", "mse_score_only", "mse_explained", "diff", "low", "high"],
                   [[r["set"], r["dimension"], r["mse_score_only"], r["mse_explained"], r["diff"], r["low"], r["high"]]
                    for r in wvw])
        with_vs_without_figure(wvw, figures / "with_vs_without.png")
    else:
        w(f"The grid has no `{SCORE_ONLY}` / `{EXPLAINED}` pair (train.variants), so there is nothing to compare.\n\n")

    w("## Every fine-tuned model against the baselines\n\n")
    ok = sum(r["beats_untuned"] and r["beats_prior"] for r in check)
    losing = [r for r in check if not (r["beats_untuned"] and r["beats_prior"])]
    offset_only = [r for r in losing if r["centred"] < r["label_var"]]
    w(f"Test MSE on the model's own test set, against the untuned student and the label prior (always the "
      f"training mean). {ok} of {len(check)} fine-tuned models beat both.\n\n"
      "MSE = bias² + the rest: *bias* is the model's mean prediction minus the mean label, *MSE − bias²* the error "
      "left once that offset is removed, and *label variance* about what the prior scores, as it sits near the "
      "labels' mean.")
    if offset_only:
        w(f" Of the {len(losing)} models that do not beat both, {len(offset_only)} have MSE − bias² below the label "
          "variance: removing their mean offset alone would put them below the prior.")
        if score_target == "hard":
            w(" (A student trained on rounded 1–5 labels can drift to such an offset where nearly every label rounds "
              "to the same score, or where it predicts almost the same score for every item; `train.score_target: "
              "soft` trains on the unrounded score instead.)")
        else:
            w(" (The soft score target aims the expected score at the mean score, so this offset is not rounding's: "
              "the student has not learned the score well enough where it stopped.)")
    elif losing:
        w(f" None of the models that do not beat both ({len(losing)}) has MSE − bias² below the label variance: "
          "they lose on more than their mean offset.")
    w("\n\n")
    w(_md_table(["training set", "dimension", "variant", "MSE", "untuned", "prior", "beats both", "bias",
                 "MSE − bias²", "label variance"],
                [[r["set"], r["dimension"], r["variant"], _fmt(r["mse"], 5), _fmt(r["untuned"], 5),
                  _fmt(r["prior"], 5), "yes" if r["beats_untuned"] and r["beats_prior"] else "**no**",
                  f"{r['bias']:+.4f}", _fmt(r["centred"], 5), _fmt(r["label_var"], 5)] for r in check]))

    w("\n## Cross-dataset test error\n\n")
    w("Rows: the model (training set; \"(E)\" = trained with explanations); columns: the test set. MSE and MAE "
      "on scores normalised to [0, 1] (the paper's scale); "
      f"{'means over seeds; ' if len(grid.seeds) > 1 else ''}lower is better. CSVs in `reports/tables/`.\n\n")
    for dim in grid.dimensions:
        title = DIMENSION_TITLES.get(dim, dim)
        for metric in ("mse", "mae"):
            header = ["trained on"] + list(grid.test_sets[dim])
            rows = _matrix_rows(numbers, dim, grid, metric)
            _write_csv(tables / f"{dim}_{metric}.csv", header, rows)
            w(f"### {title}, {metric.upper()}\n\n")
            w(_md_table(header, [[r[0]] + [_fmt(v) for v in r[1:]] for r in rows]))
            w("\n")
    w("## Validation-loss curves\n\n")
    w("The score-token cross-entropy on the validation split, before training and after every epoch (and every "
      "`train.eval_steps` steps when set), for each training set: the paper's test-loss curves (Fig. 5), drawn on "
      "validation here, because a fine-tune never reads the test split.\n\n")
    for dim in grid.dimensions:
        if loss_curves_figure(root, grid, dim, figures / f"validation_loss_{dim}.png"):
            w(f"![validation loss, {dim}](figures/validation_loss_{dim}.png)\n\n")

    ablation_metrics = _ablations(w, root, numbers, grid, tables, figures)
    _analyses(w, root, grid)

    w("## The paper's numbers\n\n")
    w("From Shah et al. (2025), Tables 3 and 7–11 (`paper/`). Their rows and columns are the six public datasets "
      "and Mixed; ")
    aligned = [s for s in set(grid.sets) | {t for d in grid.dimensions for t in grid.test_sets[d]} if s in PAPER_NAMES]
    w("this run's sets map onto them, so each cell shows ours / paper.\n\n" if aligned else
      "this profile's sets are not theirs, so their tables are shown as published, for the shape of the result.\n\n")
    for dim in grid.dimensions:
        t = paper_table(root, dim, "mse")
        if t is None:
            continue
        header, prow = t
        w(f"### {DIMENSION_TITLES.get(dim, dim)}, MSE (paper Table {PAPER_TABLES[(dim, 'mse')][1]})\n\n")
        if aligned:
            ours = numbers[dim]["rows"]
            inv = {v: k for k, v in PAPER_NAMES.items()}

            def cell(label: str, col: str, value: str) -> str:
                name = label.replace(" (E)", "")
                key = "Untuned" if label == "Baseline" else (
                    row_label(inv[name], EXPLAINED if label.endswith("(E)") else SCORE_ONLY) if name in inv else None)
                mine = ours.get(key, {}).get(inv.get(col, ""), {}).get("mse") if key else None
                return f"{_fmt(mine)} / {value}" if mine is not None else value

            w(_md_table(header, [[r[0]] + [cell(r[0], c, v) for c, v in zip(header[1:], r[1:])] for r in prow]))
        else:
            w(_md_table(header, prow))
        w("\n")

    md_path = root / "reports" / "REPORT.md"
    with atomic_open(md_path) as fh:
        fh.write(md.getvalue())
    metrics = {
        "with_vs_without": {f"{r['set']}/{r['dimension']}": {k: round(r[k], 6) for k in ("diff", "low", "high")}
                            for r in wvw},
        "explanations_win": sum(r["explanations_win"] for r in wvw), "cells": len(wvw),
        "beat_both_baselines": ok, "models": len(check), "lose_on_offset_only": len(offset_only),
        "paper_explanations_win": p_wins, "paper_cells": p_total,
        "ablation": ablation_metrics,
        "selection": selection_metrics,
        "provenance": prov.to_dict(),
    }
    write_json(root / "metrics" / "report.json", metrics)
    return metrics


def _selections(w: Any, root: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The section on settings chosen on validation data (``selection/*.json``, written by ``explainft select``):
    for each record made for this profile (its ``profile`` field), the candidates, the choice, whether the profile
    uses it and whether its inputs are current; records of other profiles are named, not applied."""
    from .selection import load_selections, status

    profile = params.get("profile", "unknown")
    every = load_selections(root)
    records = [r for r in every if r.get("profile") == profile]
    others = sorted(f"`selection/{r['name']}.json` ({r.get('profile')})" for r in every if r not in records)
    w("## How the settings were chosen\n\n")
    if not records:
        w(f"No setting of the **{profile}** profile was chosen on data: `selection/` holds no record made for it "
          "(`explainft select` writes one). Its values are the profile's as written."
          + (f" Records made for other profiles, not applied here: {', '.join(others)}." if others else "")
          + "\n\n")
        return {}
    if others:
        w(f"Records made for other profiles, not applied here: {', '.join(others)}.\n\n")
    w("Every setting chosen from data was chosen on the **validation** split (`explainft select`: each candidate "
      "fine-tuned with the pipeline's own stage, compared by the mean validation MSE of the expected score over "
      "the cells listed); no test split was read to choose it.\n\n")
    out: dict[str, Any] = {}
    for rec in records:
        st = status(rec, params, root)
        chosen = ", ".join(f"`{k}: {v}`" for k, v in rec["chosen"].items())
        w(f"### {rec['name']}\n\n")
        w(f"Chosen: {chosen}, over {len(rec['candidates'])} candidates on {len(rec['cells'])} cells "
          f"({', '.join(rec['cells'])}). ")
        if st["in_profile"]:
            w("This profile uses the chosen values. ")
        else:
            w("**This profile does not use the chosen values** ("
              + "; ".join(f"`{k}` is {prof!r}, chosen {ch!r}" for k, (prof, ch) in st["differs"].items()) + "). ")
        if st["current"]:
            w("The validation and training files and the student are the ones the selection read.\n\n")
        else:
            w("**Stale:** the validation or training files or the student changed since the selection ran; rerun "
              "`explainft select` to choose on the current data.\n\n")
        keys = list(rec["grid"])
        rows = sorted(rec["candidates"], key=lambda c: c["mean_validation_mse"])
        w(_md_table([k.split(".", 1)[-1] for k in keys] + ["mean validation MSE", "label prior", "beats the prior"],
                    [[str(c["params"][k]) for k in keys] + [_fmt(c["mean_validation_mse"], 5),
                                                           _fmt(c["mean_validation_prior_mse"], 5),
                                                           f"{c['beats_prior']} of {len(rec['cells'])}"]
                     for c in rows]))
        w("\n")
        out[rec["name"]] = {"chosen": rec["chosen"], "in_profile": st["in_profile"], "current": st["current"],
                            "mean_validation_mse": min(c["mean_validation_mse"] for c in rec["candidates"])}
    return out


def _variant_kind(v: str) -> str:
    from .variants import parse_variant

    return parse_variant(v).kind


PAPER_RANDOM_ROWS = {"none": "Mixed", "assessment": "Mixed (E)", "fully_random": "Fully", "shuffle": "Shuffle",
                     "associated": "Associated", "weighted_shuffle": "W-Shuffle", "weighted_associated": "W-Associated"}


def _mean_words(root: Path) -> dict[str, float]:
    """{"<set>/<dim>/<variant>": mean explanation length in words} of the training variants (metrics/variants.json,
    written by the variants stage and a declared dependency of the report); empty when it is absent."""
    path = root / "metrics" / "variants.json"
    if not path.is_file():
        return {}
    return {cell: float(v["mean_words"]) for cell, v in json.loads(path.read_text()).get("cells", {}).items()}


def ablation_rows(root: Path, numbers: Mapping[str, Any], grid: Grid) -> list[dict[str, Any]]:
    """Own-test-set error of every variant trained on each set x dimension (main and ablation grids)."""
    mean_words = _mean_words(root)
    out = []
    for dim in grid.dimensions:
        for s in grid.sets:
            if s not in grid.test_sets[dim]:
                continue
            cells = numbers[dim]["rows"]
            for v in grid.variants_of(s, dim):
                kind = _variant_kind(v)
                words = 0.0 if v == SCORE_ONLY else (float(v.split("_", 1)[1]) if kind == "length" else
                                                     mean_words.get(f"{s}/{dim}/{v}"))
                out.append({"set": s, "dimension": dim, "variant": v, "kind": kind, "words": words,
                            "mse": cells[row_label(s, v)][s]["mse"], "mae": cells[row_label(s, v)][s]["mae"]})
    return out


def _ablations(w: Any, root: Path, numbers: Mapping[str, Any], grid: Grid, tables: Path, figures: Path) -> dict:
    """Explanation type (paper Fig. 4), length (Fig. 6) and random-word substitutes (Table 4): tables in REPORT.md,
    CSVs in reports/tables (declared as DVC plots) and PNGs in reports/figures. Returns the ablation metrics."""
    w("## Ablations: explanation type, length, random words\n\n")
    rows = ablation_rows(root, numbers, grid)
    _write_csv(tables / "ablations.csv", ["set", "dimension", "variant", "kind", "words", "mse", "mae"],
               [[r[k] for k in ("set", "dimension", "variant", "kind", "words", "mse", "mae")] for r in rows])
    ablated = sorted({(s, d) for s, d, _ in grid.ablation}, key=lambda c: (grid.sets.index(c[0]), c[1]))
    if not ablated:
        w(f"This profile has no ablation grid (`ablation.variants` is empty), so only {', '.join(grid.variants)} were "
          "trained; README, \"Ablations\", shows how to add one or run it as an experiment.\n\n")
    metrics: dict[str, Any] = {}
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_cell.setdefault((r["set"], r["dimension"]), []).append(r)

    # explanation type
    type_rows = [r for c in ablated for r in by_cell[c] if r["kind"] == "type"]
    w("### Explanation type (paper Fig. 4)\n\n")
    w("Test MSE and MAE on the training set's own test split. The paper: assessment, confidence and both all beat "
      "no explanation, and are close to each other.\n\n")
    type_src = type_rows or [r for r in rows if r["kind"] == "type"]
    w(_md_table(["training set", "dimension", "variant", "words (mean)", "MSE", "MAE"],
                [[r["set"], r["dimension"], r["variant"], _fmt(r["words"], 1), _fmt(r["mse"]), _fmt(r["mae"])]
                 for r in type_src]))
    w("\n")
    _write_csv(tables / "ablation_type.csv", ["set", "dimension", "variant", "words", "mse", "mae"],
               [[r["set"], r["dimension"], r["variant"], r["words"], r["mse"], r["mae"]] for r in type_src])
    _bars_figure([f"{r['set']}/{r['dimension']}: {r['variant']}" for r in type_src], [r["mse"] for r in type_src],
                 "test MSE (own test set)", "Explanation type", figures / "ablation_type.png")
    w("![explanation type](figures/ablation_type.png)\n\n")
    for r in type_rows:
        metrics.setdefault("type", {})[f"{r['set']}/{r['dimension']}/{r['variant']}"] = round(r["mse"], 6)

    # length
    w("### Explanation length (paper Fig. 6)\n\n")
    length_rows = []
    for c in ablated:
        pts = [r for r in by_cell[c] if r["kind"] == "length" or r["variant"] in (SCORE_ONLY, EXPLAINED)]
        if any(r["kind"] == "length" for r in pts):
            length_rows += sorted(pts, key=lambda r: (r["words"] is None, r["words"] or 0.0))
    if length_rows:
        w("Explanations truncated to their first N words (0: score only; \"assessment\": untruncated, at its mean "
          "length). The paper: 25-50 words give most of the gain, with diminishing returns after.\n\n")
        w(_md_table(["training set", "dimension", "variant", "words", "MSE", "MAE"],
                    [[r["set"], r["dimension"], r["variant"], _fmt(r["words"], 1), _fmt(r["mse"]), _fmt(r["mae"])]
                     for r in length_rows]))
        w("\n")
        _length_figure(length_rows, figures / "ablation_length.png")
        w("![explanation length](figures/ablation_length.png)\n\n")
        for r in length_rows:
            metrics.setdefault("length", {})[f"{r['set']}/{r['dimension']}/{r['variant']}"] = round(r["mse"], 6)
    else:
        w("No `length_<N>` variant in the ablation grid.\n\n")
    _write_csv(tables / "ablation_length.csv", ["set", "dimension", "variant", "words", "mse", "mae"],
               [[r["set"], r["dimension"], r["variant"], r["words"], r["mse"], r["mae"]] for r in length_rows])

    # random words
    w("### Random words instead of explanations (paper Table 4)\n\n")
    random_csv = []
    for s, dim in ablated:
        variants = [v for v in grid.variants_of(s, dim)
                    if v in (SCORE_ONLY, EXPLAINED) or _variant_kind(v) == "random"]
        if not any(_variant_kind(v) == "random" for v in variants):
            continue
        tests = list(grid.test_sets[dim])
        cells = numbers[dim]["rows"]
        w(f"Test MSE of the models trained on {s}, {dim}, on every test set: score only, the real explanations, and "
          "the same number of random words (Fully: dictionary words; Shuffle: non-stopwords of all explanations; "
          "Associated: of explanations with the same score; W-: sampled by frequency). The paper: real explanations "
          "best, every kind but Fully beats score only, Associated beats Shuffle, weighting does not help.\n\n")
        w(_md_table(["variant"] + tests, [[v] + [_fmt(cells[row_label(s, v)][t]["mse"]) for t in tests]
                                          for v in variants]))
        w("\n")
        for v in variants:
            random_csv += [[s, dim, v, t, cells[row_label(s, v)][t]["mse"], cells[row_label(s, v)][t]["mae"]]
                           for t in tests]
            metrics.setdefault("random", {})[f"{s}/{dim}/{v}"] = round(cells[row_label(s, v)][s]["mse"], 6)
        own = [cells[row_label(s, v)][s]["mse"] for v in variants]
        _bars_figure(variants, own, f"test MSE on {s}", f"Random words: {s}, {dim}",
                     figures / f"ablation_random_{s}_{dim}.png")
        w(f"![random words](figures/ablation_random_{s}_{dim}.png)\n\n")
    if not random_csv:
        w("No random-word variant in the ablation grid.\n\n")
    _write_csv(tables / "ablation_random.csv", ["set", "dimension", "variant", "test_set", "mse", "mae"], random_csv)
    t4 = paper_table(root, "naturalness", "random")
    if t4 is not None:
        w("The paper's Table 4 (Mixed, naturalness MSE):\n\n")
        w(_md_table(t4[0], t4[1]))
        w("\n")
    return metrics


def _bars_figure(labels: Sequence[str], values: Sequence[float], xlabel: str, title: str, out: Path) -> None:
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


def _length_figure(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    plt = _figure_context()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["set"], r["dimension"]), []).append(r)
    for (s, dim), pts in cells.items():
        trunc = [r for r in pts if r["variant"] != EXPLAINED]
        full = [r for r in pts if r["variant"] == EXPLAINED and r["words"] is not None]
        for ax, metric in zip(axes, ("mse", "mae")):
            line = ax.plot([r["words"] for r in trunc], [r[metric] for r in trunc], marker="o", ms=3,
                           label=f"{s} / {dim}")[0]
            for r in full:
                ax.plot([r["words"]], [r[metric]], marker="*", ms=9, color=line.get_color(), ls="none",
                        label=f"{s} / {dim}: assessment (untruncated)")
    for ax, metric in zip(axes, ("MSE", "MAE")):
        ax.set_xlabel("explanation length (words)")
        ax.set_ylabel(f"test {metric}")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    _save(fig, out)
    plt.close(fig)


def _analyses(w: Any, root: Path, grid: Grid) -> None:
    """Weight differences (Table 5) and the logit lens (Table 6) from the analyse stage."""
    path = root / "metrics" / "analysis.json"
    if not path.is_file():
        return
    a = json.loads(path.read_text())
    w("## Where the explanation models differ: weights (Table 5)\n\n")
    if not a.get("weights"):
        w("No explanation / score-only pair in this grid.\n\n")
        return
    from .analysis.lora_diff import TABLE5_COLUMNS

    w("Frobenius norm of the difference between the explanation model's and the score-only model's weight "
      "updates, per module type, summed over blocks, normalised by the largest (1.0). The paper (LoRA on "
      "Mistral-7B) finds the largest differences in the query and gate/up projections.\n\n")
    w(_md_table(["cell"] + list(TABLE5_COLUMNS),
                [[k] + [_fmt(v.get(t), 2) for t in TABLE5_COLUMNS] for k, v in a["weights"].items()]))
    for f in sorted((root / "plots" / "analysis").glob("weights_*.png")):
        w(f"\n![{f.stem}](../plots/analysis/{f.name})\n")
    w("\n## Where the explanation models differ: the logit lens (Table 6)\n\n")
    w("Mean entropy of each block's decoded distribution at the score position, explanation model minus "
      "score-only model, in the paper's grouping scaled to this student's depth, normalised by the largest "
      "magnitude. The paper: higher entropy in the late blocks, lower at the last. The lens reads all blocks in "
      "one forward pass per batch.\n\n")
    labels = a.get("blocks") or []
    w(_md_table(["cell"] + labels, [[k] + [_fmt(v.get(lab), 2) for lab in labels] for k, v in a["entropy"].items()]))
    for f in sorted((root / "plots" / "analysis").glob("ranks_*.png")):
        w(f"\n![{f.stem}](../plots/analysis/{f.name})\n")
    w("\n")


def grid_from_params(params: Mapping[str, Any]) -> Grid:
    from .config import finetune_config
    from .evaluation import GOLDEN
    from .pipeline import split_sets

    fc = finetune_config(dict(params))
    golden = [GOLDEN] if (params.get("golden") or {}).get("path") else []
    tests = tuple(split_sets(dict(params))) + tuple(golden)
    ab = fc.ablation
    cells = tuple((s, d, v) for s in ab.sets for d in ab.dimensions for v in ab.variants) if ab else ()
    return Grid(sets=fc.sets, dimensions=fc.dimensions, variants=fc.variants, seeds=fc.seeds,
                test_sets={d: tests for d in fc.dimensions}, ablation=cells)


def run_report(params: dict[str, Any], root: Path = Path("."), *,
               provenance: Provenance | None = None) -> dict[str, Any]:
    from .evaluation import evaluate_config

    ec = evaluate_config(params)
    grid = grid_from_params(params)
    # a golden set without a dimension has no column for it: use the columns the baselines actually scored
    for dim in grid.dimensions:
        scored = _load_json(root / "metrics" / "evaluate" / "baselines" / f"{dim}.json")["untuned"]
        grid.test_sets[dim] = tuple(t for t in grid.test_sets[dim] if t in scored)
    return build_report(root, params, grid, n_boot=ec.bootstrap, ci=ec.ci, seed=ec.seed, provenance=provenance)
