"""The report's "Agreement with people" section: every rater against each human-rated set (``human_eval``).

Per set, one table: rows are the one-feature baselines, each teacher (the mean of its prompt variants), the
merged ensemble (each merge method), the untuned student and each fine-tuned student; columns are the dimensions.
A cell is Spearman's rho with its group-bootstrap interval for a rated set, pairwise accuracy on the people's
decided battles for a preference set. Then the differences "with explanations minus without", whether the
ensemble beats the best one-feature baseline, and the published figures for the same sets
(``paper/published_human_agreement.csv``) beside ours where this profile measures that set.
Every metric of every rater is in ``reports/tables/human_<set>.csv``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

from .markdown import DIMENSION_TITLES, Writer, fmt, md_table, write_csv

PUBLISHED = "published_human_agreement.csv"
ALL_METRICS = ("spearman", "kendall", "pearson", "qwk", "mae", "accuracy", "rater_tie_share", "tie_agreement")


def _cell(m: Mapping[str, Any] | None, key: str) -> str:
    if m is None or key not in m:
        return ""
    s = m[key]
    if s["value"] is None:
        return "–"
    ci = f" [{fmt(s['low'], 2)}, {fmt(s['high'], 2)}]" if s.get("low") is not None else ""
    return f"{fmt(s['value'], 3)}{ci}"


def _rows(raters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, rater key) in the table's order; students are keyed by set/variant/seed, one dimension each."""
    order = []
    order += [(k.split("/", 1)[1] + " (baseline)", k) for k in raters if k.startswith("baseline/")]
    order += [(f"teacher {k.split('/')[1]}", k) for k in raters if k.startswith("teacher/") and k.count("/") == 1]
    order += [(f"ensemble ({k.split('/', 1)[1]})", k) for k in raters if k.startswith("ensemble/")]
    order += [("untuned student", k) for k in raters if k == "untuned"]
    return order


def _student_rows(raters: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """{"set / variant / seed_k": {dimension: rater key}} for the fine-tuned students."""
    out: dict[str, dict[str, str]] = {}
    for k in raters:
        if k.startswith("student/"):
            _, train_set, dim, variant, seed = k.split("/")
            out.setdefault(f"student {train_set} / {variant} / {seed}", {})[dim] = k
    return out


def published(root: Path) -> list[dict[str, str]]:
    """The published figures (``paper/published_human_agreement.csv``); empty when the file is absent."""
    path = root / "paper" / PUBLISHED
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def human_section(w: Writer, root: Path, sets: Mapping[str, Any], tables: Path) -> dict[str, Any]:
    """Write the section for the sets the profile names (``human.sets``); returns the report metrics for it."""
    w("## Agreement with people\n\n")
    if not sets:
        w("This profile names no human-rated set (`human.sets`), so no rater was compared with people.\n\n")
        return {}
    w(
        "Every rater scored human-rated responses it never trained on; the people's judgement is the annotators' "
        "mean on the quality `human.sets.<set>.map` names for each dimension. Intervals: 95% group bootstrap "
        "(all responses to one prompt resampled together). Left out of every number: the design part of each set "
        "(`design_share`), where the heuristic teachers' evidence was looked at, and any item asking what a "
        "training or validation example asked. With offline stand-in teachers and a tiny student (the embedded "
        "default) these tables say how far the demonstration's raters are from people, not how a rater taught "
        "by LLM teachers fares.\n\n"
    )
    metrics: dict[str, Any] = {}
    pub = published(root)
    for name, cfg in sets.items():
        path = root / "reports" / "human" / f"{name}.json"
        if not path.is_file():
            w(f"### {name}\n\nNo results (`reports/human/{name}.json` is missing: run `dvc repro human_eval`).\n\n")
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        metrics[name] = _set_section(w, r, name, tables, [p for p in pub if p["set"] == name])
    others = sorted({p["set"] for p in pub} - set(sets))
    if others:
        w(
            "Published figures for sets this profile does not measure ("
            + ", ".join(f"`{s}`" for s in others)
            + ") are in `paper/published_human_agreement.csv`; `configs/human-public.yaml` measures them.\n\n"
        )
    return metrics


def _set_section(w: Writer, r: Mapping[str, Any], name: str, tables: Path, pub: list[dict[str, str]]) -> dict:
    prefs = r["kind"] == "preferences"
    key = "accuracy" if prefs else "spearman"
    # the dimensions in their usual order (the JSON sorts its keys)
    order = list(DIMENSION_TITLES)
    dims = sorted(r["map"], key=lambda d: (order.index(d) if d in order else len(order), d))
    raters = r["raters"]
    w(f"### {name} ({r['format']})\n\n")
    load = r["load"]
    skipped = load.get("skipped_total", 0) + load.get("dropped_total", 0)
    left = r.get("left_out", {})
    w(
        f"{r['items']} {'battles' if prefs else 'responses'} measured ({r['design_items']} in the design part left "
        f"out, {left.get('in_training', 0)} asking what a training or validation example asked, "
        f"{left.get('sampled_out', 0)} past `max_items`; {skipped} source records skipped or dropped, by reason "
        "in the metrics). "
        + (
            "Cells: pairwise accuracy on the battles a person decided (a rater's tie counts half)."
            if prefs
            else "Cells: Spearman's rho with the annotators' mean."
        )
        + " Quality per dimension: "
        + ", ".join(f"{DIMENSION_TITLES.get(d, d)} ← {r['map'][d]}" for d in dims)
        + ".\n\n"
    )
    header = ["rater"] + [DIMENSION_TITLES.get(d, d) for d in dims]
    rows = [[label] + [_cell(raters[k].get(d), key) for d in dims] for label, k in _rows(raters)]
    rows += [
        [label] + [_cell(raters[ks[d]].get(d) if d in ks else None, key) for d in dims]
        for label, ks in sorted(_student_rows(raters).items())
    ]
    w(md_table(header, rows))
    w("\n")
    write_csv(
        tables / f"human_{name}.csv",
        [
            "rater",
            "dimension",
            "n",
            *ALL_METRICS,
            *(f"{m}_low" for m in ALL_METRICS),
            *(f"{m}_high" for m in ALL_METRICS),
        ],
        [
            [k, d, m["n"]]
            + [m[x]["value"] if x in m else None for x in ALL_METRICS]
            + [m[x]["low"] if x in m else None for x in ALL_METRICS]
            + [m[x]["high"] if x in m else None for x in ALL_METRICS]
            for k in sorted(raters)
            for d, m in raters[k].items()
        ],
    )
    # does the ensemble beat the best one-feature baseline?
    beats: dict[str, Any] = {}
    lines = []
    for d in dims:
        base = {k: raters[k][d][key]["value"] for k in raters if k.startswith("baseline/") and d in raters[k]}
        ens = raters.get("ensemble/average", {}).get(d, {}).get(key, {}).get("value")
        best = max(((v, k) for k, v in base.items() if v is not None), default=None)
        if ens is None or best is None:
            continue
        won = ens > best[0]
        beats[d] = {"ensemble": round(ens, 6), "best_baseline": best[1], "baseline": round(best[0], 6), "beats": won}
        lines.append(
            f"{DIMENSION_TITLES.get(d, d)}: ensemble {fmt(ens, 3)} {'>' if won else '≤'} "
            f"{best[1].split('/', 1)[1]} {fmt(best[0], 3)}"
        )
    if lines:
        w(f"Ensemble (average) against the best one-feature baseline ({key}): " + "; ".join(lines) + ".\n\n")
    diffs = r.get("differences") or {}
    if diffs:
        w(f"With explanations minus without, the same training set, dimension and seed ({key}):\n\n")
        w(
            md_table(
                ["pair"] + [DIMENSION_TITLES.get(d, d) for d in dims],
                [[label] + [_cell(per.get(d), key) for d in dims] for label, per in sorted(diffs.items())],
            )
        )
        w("\n")
    if pub:
        w("Published figures on this set, beside ours (the closest rater we have on the same quality):\n\n")
        rows = []
        for p in pub:
            ours = None
            for d, q in r["map"].items():
                if q == p["quality"]:
                    ours = raters.get("ensemble/average", {}).get(d, {}).get(p["metric"], {}).get("value")
            rows.append(
                [
                    p["system"],
                    p["quality"],
                    p["metric"],
                    p["value"],
                    fmt(ours, 3) if ours is not None else "",
                    p["source"],
                ]
            )
        w(md_table(["system", "quality", "metric", "published", "ours (ensemble)", "source"], rows))
        w("\n")
    return {"items": r["items"], "ensemble_beats_baselines": beats}
