"""The golden set: teacher prompts and merge methods against human ratings (the paper's Table 2).

The paper's golden set (500 conversations rated 1-4 by two experts who agreed)
is proprietary; the project accepts a user-supplied file in the format below.

Golden JSONL format
-------------------
UTF-8, one JSON object per line (blank lines are ignored)::

    {"id": "golden/0001",
     "turns": [{"role": "user", "text": "Can you recommend a sci-fi novel?"},
               {"role": "assistant", "text": "Try *The Left Hand of Darkness* by Ursula K. Le Guin."}],
     "context": "optional grounding text (a story, review snippets)",
     "ratings": {"naturalness": {"score": 4, "scale": 4},
                 "on_topic": {"score": 5, "scale": 5}}}

``id``
    Non-empty string, unique in the file.
``turns``
    The conversation, oldest first; each turn ``{"role": "user" | "assistant",
    "text": str}`` (optionally ``"speaker": str``). The last turn is the
    response being rated and must be an ``assistant`` turn, with at least one
    ``user`` turn before it (the rules of every Conversation).
``context``
    Optional string.
``meta``
    Optional object, carried into the Conversation untouched (a place for
    the source dataset, annotator ids …).
``ratings``
    The human (expert-agreed) rating per dimension: any non-empty subset of
    ``naturalness``, ``comprehensiveness``, ``on_topic``, each ``{"score": int,
    "scale": 4 | 5}`` with ``1 <= score <= scale``. Scores are compared on the
    normalised scale ``(score - 1) / (scale - 1)``.

No other keys are allowed (a misspelt ``rating`` fails rather than being
ignored). A bad line raises :class:`~explainft.errors.RecordError` naming the
file, the line and the field (``ratings.naturalness.score``).

Evaluation
----------
:func:`evaluate_golden` compares, per dimension, on the normalised [0, 1] scale:

* each prompt variant: for every item, the mean of that variant's valid
  (``ok``) normalised scores across teachers;
* each merge method: the merged ``Item.score``;

with the human score. Metrics: MAE, MSE, Spearman's rho (Pearson correlation
of average ranks, so ties share a rank; ``null`` when fewer than two items or
either side is constant) and ``n``, the items compared. Golden items a row has
no prediction for are counted in ``missing_prediction`` and predictions for
items without a human rating on that dimension in ``not_in_golden``; neither is
ever dropped silently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .config.annotate import PROMPT_VARIANTS
from .errors import RecordError
from .fsutil import atomic_open, write_json
from .merge import SCORE_METHODS, normalise
from .records import DIMENSIONS, Conversation, Item, Rating, iter_json_lines

GOLDEN_KEYS = {"id", "turns", "context", "meta", "ratings"}
RATING_KEYS = {"score", "scale"}

# row labels of the paper's Table 2 (paper/table2_teacher_prompts_vs_golden.csv, column prompt_or_merge)
ROW_LABELS = {
    "scale4": "Scale 1-4",
    "scale4_examples": "Scale 1-4 with Examples",
    "scale5": "Scale 1-5",
    "scale5_examples": "Scale 1-5 with Examples",
    "average": "Average",
    "most_frequent": "Most Occurrence",
    "llm": "LLM",
}
DIMENSION_LABELS = {"naturalness": "Naturalness", "comprehensiveness": "Comprehensiveness", "on_topic": "On-topic"}

Truth = dict[tuple[str, str], float]


# --------------------------------------------------------------------------- loading


def _parse_ratings(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise RecordError(
            "wrong_type",
            f"expected an object of dimension -> {{score, scale}}, got {type(raw).__name__}",
            field="ratings",
        )
    if not raw:
        raise RecordError("missing_field", "ratings is empty; give at least one dimension", field="ratings")
    out: dict[str, float] = {}
    for dim, r in raw.items():
        f = f"ratings.{dim}"
        if dim not in DIMENSIONS:
            raise RecordError("bad_value", f"unknown dimension {dim!r}; known: {', '.join(DIMENSIONS)}", field=f)
        if not isinstance(r, dict):
            raise RecordError("wrong_type", f"expected {{score, scale}}, got {type(r).__name__}", field=f)
        extra = sorted(set(r) - RATING_KEYS)
        if extra:
            raise RecordError("unknown_field", "unknown key; allowed: score, scale", field=f"{f}.{extra[0]}")
        for k in ("scale", "score"):
            v = r.get(k)
            if v is None:
                raise RecordError("missing_field", "required field is missing or null", field=f"{f}.{k}")
            if isinstance(v, bool) or not isinstance(v, int):
                raise RecordError("wrong_type", f"expected an integer, got {v!r}", field=f"{f}.{k}")
        if r["scale"] not in (4, 5):
            raise RecordError("bad_value", f"scale must be 4 or 5, got {r['scale']}", field=f"{f}.scale")
        if not 1 <= r["score"] <= r["scale"]:
            raise RecordError(
                "out_of_range", f"score {r['score']} is outside its scale 1..{r['scale']}", field=f"{f}.score"
            )
        out[dim] = normalise(r["score"], r["scale"])
    return out


def parse_golden_line(obj: Any, dataset: str = "golden") -> tuple[Conversation, dict[str, float]]:
    """One parsed JSON object -> (Conversation, {dimension: normalised human score}); RecordError names the field."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a golden item must be a JSON object, got {type(obj).__name__}")
    cid = obj.get("id")
    if not isinstance(cid, str) or not cid:
        raise RecordError("missing_field" if cid is None else "wrong_type", "id must be a non-empty string", field="id")
    try:
        extra = sorted(set(obj) - GOLDEN_KEYS)
        if extra:
            raise RecordError(
                "unknown_field", f"unknown key; allowed: {', '.join(sorted(GOLDEN_KEYS))}", field=extra[0]
            )
        if "ratings" not in obj:
            raise RecordError("missing_field", "required field is missing", field="ratings")
        conv = Conversation.from_dict({k: v for k, v in obj.items() if k != "ratings"} | {"dataset": dataset})
        return conv, _parse_ratings(obj["ratings"])
    except RecordError as e:
        e.record = e.record or cid
        raise


def load_golden(path: str | Path, dataset: str = "golden") -> tuple[list[Conversation], Truth]:
    """Read a golden JSONL file -> (conversations in file order, {(id, dimension): normalised human score})."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(
            "missing_file", "golden file not found; supply one in the format of explainft.golden", file=path
        )
    convs: list[Conversation] = []
    truth: Truth = {}
    first_line: dict[str, int] = {}
    for lineno, obj in iter_json_lines(path):
        try:
            conv, scores = parse_golden_line(obj, dataset)
        except RecordError as e:
            raise e.at(path, lineno)
        if conv.id in first_line:
            raise RecordError(
                "duplicate_id",
                f"id already used on line {first_line[conv.id]}",
                field="id",
                record=conv.id,
                file=path,
                line=lineno,
            )
        first_line[conv.id] = lineno
        convs.append(conv)
        for dim, s in scores.items():
            truth[(conv.id, dim)] = s
    if not convs:
        raise RecordError("empty_file", "the golden file has no items", file=path)
    return convs, truth


# --------------------------------------------------------------------------- metrics


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson correlation of average ranks (ties share the mean rank); None if undefined.

    By hand because ``pandas.Series.corr(method="spearman")`` needs scipy, which
    the project does not install; ``Series.rank(method="average")`` does not.
    """
    if len(x) != len(y):
        raise ValueError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return None
    rx = pd.Series(list(x), dtype="float64").rank(method="average").tolist()
    ry = pd.Series(list(y), dtype="float64").rank(method="average").tolist()
    mx, my = math.fsum(rx) / len(rx), math.fsum(ry) / len(ry)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def compare(
    pred: Mapping[tuple[str, str], float], truth: Mapping[tuple[str, str], float], dimension: str
) -> dict[str, Any]:
    """MAE, MSE, Spearman, n, missing_prediction, not_in_golden of ``pred`` vs ``truth`` on one dimension."""
    keys_t = sorted(k for k in truth if k[1] == dimension)
    keys_p = {k for k in pred if k[1] == dimension}
    both = [k for k in keys_t if k in keys_p]
    p = [pred[k] for k in both]
    t = [truth[k] for k in both]
    n = len(both)
    return {
        "n": n,
        "mae": math.fsum(abs(a - b) for a, b in zip(p, t)) / n if n else None,
        "mse": math.fsum((a - b) ** 2 for a, b in zip(p, t)) / n if n else None,
        "spearman": spearman(p, t),
        "missing_prediction": len(keys_t) - n,
        "not_in_golden": len(keys_p - set(keys_t)),
    }


def prompt_predictions(ratings: Iterable[Rating]) -> dict[str, dict[tuple[str, str], float]]:
    """{prompt variant: {(id, dimension): mean of that variant's valid normalised scores across teachers}}."""
    sums: dict[str, dict[tuple[str, str], list[float]]] = {}
    for r in ratings:
        if r.status != "ok":
            continue
        sums.setdefault(r.prompt, {}).setdefault((r.id, r.dimension), []).append(normalise(r.raw_score, r.scale))  # type: ignore[arg-type]
    return {v: {k: math.fsum(s) / len(s) for k, s in by.items()} for v, by in sums.items()}


def _ordered(keys: Iterable[str], first: Sequence[str]) -> list[str]:
    keys = set(keys)
    return [k for k in first if k in keys] + sorted(keys - set(first))


def evaluate_golden(
    ratings: Sequence[Rating], items_by_method: Mapping[str, Sequence[Item]], truth: Mapping[tuple[str, str], float]
) -> dict[str, Any]:
    """Table 2 as data: ``{"prompts": {variant: {dim: metrics}}, "merges": {method: {dim: metrics}},
    "truth": {dim: n human ratings}, "ratings": {status: n}}``.

    The four standard prompt variants are always reported (n = 0 and all golden
    items missing when a variant has no rating); other variants found in the
    ratings are added. ``metrics`` is the dict of :func:`compare`.
    """
    ratings = list(ratings)
    per_prompt = prompt_predictions(ratings)
    prompts = {
        v: {d: compare(per_prompt.get(v, {}), truth, d) for d in DIMENSIONS}
        for v in _ordered(set(per_prompt) | set(PROMPT_VARIANTS), PROMPT_VARIANTS)
    }
    merges = {}
    for method, items in items_by_method.items():
        pred: dict[tuple[str, str], float] = {}
        for it in items:
            if (it.id, it.dimension) in pred:
                raise RecordError(
                    "duplicate_item",
                    f"two items for {it.dimension} from merge method {method!r}",
                    record=it.id,
                    field="dimension",
                )
            pred[(it.id, it.dimension)] = it.score
        merges[method] = {d: compare(pred, truth, d) for d in DIMENSIONS}
    return {
        "prompts": prompts,
        "merges": merges,
        "truth": {d: sum(1 for k in truth if k[1] == d) for d in DIMENSIONS},
        "ratings": {s: sum(1 for r in ratings if r.status == s) for s in ("ok", "unparsable", "failed")},
    }


# --------------------------------------------------------------------------- output


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def golden_table_markdown(results: Mapping[str, Any]) -> str:
    """The paper's Table 2 shape: rows = prompt variants then merge methods, columns = MAE and MSE per dimension."""
    cols = [(d, m) for d in DIMENSIONS for m in ("mae", "mse")]
    header = "| Prompt or merge | " + " | ".join(f"{DIMENSION_LABELS[d]} {m.upper()}" for d, m in cols) + " |"
    lines = [header, "|---|" + "---:|" * len(cols)]
    rows = [(k, results["prompts"][k]) for k in _ordered(results["prompts"], PROMPT_VARIANTS)] + [
        (k, results["merges"][k]) for k in _ordered(results["merges"], SCORE_METHODS)
    ]
    missing = []
    for key, per_dim in rows:
        lines.append(f"| {ROW_LABELS.get(key, key)} | " + " | ".join(_fmt(per_dim[d][m]) for d, m in cols) + " |")
        for d in DIMENSIONS:
            if per_dim[d]["missing_prediction"]:
                missing.append(f"{ROW_LABELS.get(key, key)} / {d}: {per_dim[d]['missing_prediction']}")
    truth = results["truth"]
    lines += [
        "",
        "MAE and MSE on scores normalised to [0, 1] against the golden set's human ratings "
        "(golden items per dimension: " + ", ".join(f"{d} {truth[d]}" for d in DIMENSIONS) + "). "
        "Spearman's rho and n per cell are in the metrics file.",
    ]
    if missing:
        lines += ["", "Golden items without a prediction (not in the means): " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def write_golden(results: Mapping[str, Any], metrics_path: str | Path, md_path: str | Path) -> None:
    """Write the results as JSON (sorted keys) and the Table 2 markdown, each atomically."""
    write_json(metrics_path, results)
    with atomic_open(md_path) as fh:
        fh.write(golden_table_markdown(results))
