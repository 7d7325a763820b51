"""DVC stage ``analyse``: the paper's weight-difference and logit-lens analyses over the trained grid.

For every training set × dimension × seed whose grid holds both the
score-only model (``none``) and the explanation model (``assessment``):

* **Weight differences** (Table 5, appendix A.4): the Frobenius norm of the
  difference between the two models' weight updates per module type, summed
  over blocks and normalised by the largest (LoRA adapters: ΔW = (alpha/r)·B·A
  in r×r space; full fine-tunes: W_E − W_none), and a per-block heatmap
  (:mod:`explainft.analysis.lora_diff`).
* **Logit lens** (Table 6, appendices A.5-A.6): on the first
  ``analysis.lens_items`` items of the set's own validation split (an analysis
  reads no test data), the mean entropy of each block's decoded distribution at
  the score position for both models;
  the difference (E minus score-only) per block, in the paper's grouping
  scaled to the student's depth, normalised by its largest magnitude; and
  heatmaps of the rank of the final predicted token per block
  (:mod:`explainft.analysis.logit_lens`). The lens pass is timed against plain
  scoring of the same items; that cost changes from run to run, so it goes to
  ``timings/analysis.json`` (:mod:`explainft.timings`), not to the metrics.

Writes ``plots/analysis/{weight_differences,entropy_differences,entropy_by_block}.csv``,
PNG heatmaps and ``metrics/analysis.json`` (all functions of the models and
splits), and ``timings/analysis.json`` (``lens_seconds``, ``scoring_seconds``,
``lens_cost_vs_scoring``).
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path
from typing import Any

from ..analysis.logit_lens import entropy_difference, logit_lens, rank_heatmap
from ..analysis.lora_diff import TABLE5_COLUMNS, heatmap, weight_differences
from ..config import analysis_config, finetune_config
from ..fsutil import atomic_open, write_json
from ..layout import cell_path
from ..progress import progress
from ..records import Example, read_jsonl
from ..scoring import load_rater, score_examples
from ..students import resolve_student, student_revision
from ..timings import write_timings
from ..variants import EXPLAINED, SCORE_ONLY


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in r])
    with atomic_open(path) as fh:
        fh.write(buf.getvalue())


def run(params: dict[str, Any], root: Path = Path(".")) -> dict[str, Any]:
    import torch  # heavy: imported when the stage runs, not when the CLI starts

    fc = finetune_config(params)
    ac = analysis_config(params)
    out = root / "plots" / "analysis"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pairs = [(s, d, k) for d in fc.dimensions for s in fc.sets for k in fc.seeds]
    if SCORE_ONLY not in fc.variants or EXPLAINED not in fc.variants:
        pairs = []
    weight_rows, entropy_rows, block_rows = [], [], []
    metrics: dict[str, Any] = {"weights": {}, "entropy": {}, "pairs": len(pairs)}
    labels: list[str] = []
    lens_seconds = score_seconds = 0.0
    base = resolve_student(fc.student, root)
    revision = student_revision(root)
    position = fc.train.explanation_position  # read each model where it was trained to give its score
    # progress in models (each: its lens pass and a timed scoring pass); a bar in a terminal, plain lines in a
    # log (on a pretrained student the two passes take minutes per model on a CPU)
    with progress(2 * len(pairs), "analyse", "models") as bar:
        for s, d, k in pairs:
            key = f"{s}/{d}/seed_{k}"
            dirs = {v: root / "models" / "finetuned" / cell_path(s, d, v, k) / "model" for v in (EXPLAINED, SCORE_ONLY)}
            w = weight_differences(dirs[EXPLAINED], dirs[SCORE_ONLY])
            weight_rows.append([d, s, k, w["kind"]] + [w["normalised"].get(t) for t in TABLE5_COLUMNS])
            metrics["weights"][key] = {t: round(v, 6) for t, v in w["normalised"].items()}
            draw = ac.heatmaps in ("all", s) and k == fc.seeds[0]
            if draw:
                heatmap(
                    w["per_layer"], out / f"weights_{s}_{d}.png", f"{s}, {d}: ||ΔW(E) − ΔW(score only)||_F per block"
                )
            items = list(read_jsonl(root / "data" / "splits" / s / d / "validation.jsonl", Example))[: ac.lens_items]
            lens = {}
            for v in (EXPLAINED, SCORE_ONLY):
                bar.set_postfix(model=f"{s}/{d}/{v}/seed_{k}")
                model, tok = load_rater(dirs[v], base=base, device=fc.device, revision=revision)
                t0 = time.perf_counter()
                read = {"max_length": fc.train.max_length, "batch_size": ac.batch_size, "position": position}
                lens[v] = logit_lens(model, tok, items, **read)
                t1 = time.perf_counter()
                score_examples(model, tok, items, **read)
                t2 = time.perf_counter()
                lens_seconds += t1 - t0
                score_seconds += t2 - t1
                for b, (h, r) in enumerate(zip(lens[v].entropy, lens[v].mean_rank), start=1):
                    block_rows.append([d, s, k, v, b, float(h), float(r)])
                if draw:
                    rank_heatmap(
                        lens[v],
                        out / f"ranks_{s}_{d}_{v}.png",
                        f"{s}, {d}, {v}: rank of the final prediction per block",
                    )
                del model
                bar.update()
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
            diff = entropy_difference(lens[EXPLAINED], lens[SCORE_ONLY])
            labels = diff["labels"]
            entropy_rows.append([d, s, k] + [float(x) for x in diff["grouped_normalised"]])
            metrics["entropy"][key] = {lab: round(float(x), 6) for lab, x in zip(labels, diff["grouped_normalised"])}
    _csv(out / "weight_differences.csv", ["dimension", "set", "seed", "kind"] + list(TABLE5_COLUMNS), weight_rows)
    _csv(out / "entropy_differences.csv", ["dimension", "set", "seed"] + labels, entropy_rows)
    _csv(
        out / "entropy_by_block.csv",
        ["dimension", "set", "seed", "variant", "block", "entropy", "mean_rank"],
        block_rows,
    )
    metrics["blocks"] = labels
    write_json(root / "metrics" / "analysis.json", metrics)
    write_timings(
        root,
        "analysis",
        {
            "lens_seconds": lens_seconds,
            "scoring_seconds": score_seconds,
            "lens_cost_vs_scoring": round(lens_seconds / score_seconds, 2) if score_seconds > 0 else None,
        },
    )
    return metrics
