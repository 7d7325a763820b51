"""The body of ``explainft agree``: rate a human-rated file with trained raters and/or the profile's teachers, and
measure the agreement, without running the pipeline.

The file is read by the format's loader (:mod:`explainft.human`: HelpSteer, Arena preferences, USR, FED, or a gold
file of your own), every response is rated by each rater named, and the same metrics as the ``human_eval`` stage
are computed (:mod:`explainft.human_eval`), with the three one-feature baselines always beside them. No part of
the file is set aside (it is the user's own evaluation set).
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Sequence

from ..config import annotate_config, merge_config
from ..errors import ConfigError
from ..human import QUALITY_NAMES, check_human_set, load_human_set
from ..human_eval import PREFERENCE, Preds, agreement, check_map, feature_scores, prepare
from ..scoring import trained_position
from .human_eval import model_scores, teacher_raters

NAME = "agree"


def parse_map(pairs: Sequence[str], fmt: str, dimensions: Sequence[str]) -> dict[str, str]:
    """``DIMENSION=QUALITY`` pairs; none given: a preference set maps every dimension to its preference, a rating
    set every dimension that is also one of its qualities (a gold file rated on ``naturalness`` …)."""
    out: dict[str, str] = {}
    for p in pairs:
        dim, sep, quality = p.partition("=")
        if not sep or not dim or not quality:
            raise ConfigError("--map", f"expected DIMENSION=QUALITY, got {p!r}")
        out[dim] = quality
    if out:
        return out
    known = QUALITY_NAMES.get(fmt)
    if known == (PREFERENCE,):
        return {d: PREFERENCE for d in dimensions}
    return {d: d for d in dimensions if known is None or d in known}


def run(
    path: str | Path,
    fmt: str,
    *,
    mapping: dict[str, str],
    raters: Sequence[str] = (),
    base: str | None = None,
    params: dict[str, Any] | None = None,
    on_error: str = "raise",
    max_length: int = 640,
    batch_size: int = 32,
    bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of each rater folder in ``raters`` (and of the teachers and ensemble of ``params``, when given)
    with the people's judgements in ``path`` (a file, or a folder of the format's files)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(str(path), "no such file or folder")
    options = {"files": [glob.escape(path.name)]} if path.is_file() else {}  # the name itself, not a pattern
    folder = path.parent if path.is_file() else path
    if not mapping:
        raise ConfigError("--map", f"no dimension maps to a quality of this {fmt} file: give --map DIMENSION=QUALITY")
    check_human_set(NAME, fmt, options, mapping, map_key="--map")
    hs = load_human_set(fmt, folder, NAME, options, on_error)
    check_map(hs, mapping, map_key="--map")
    prep = prepare(hs, 0.0)
    dims = tuple(mapping)
    scores: dict[str, Preds] = {}
    if params is not None:
        acfg = annotate_config(params)
        scores.update(teacher_raters(prep.conversations, acfg, merge_config(params, acfg), dims, NAME))
    for r in raters:
        scores[f"model/{r}"] = model_scores(
            r,
            prep.conversations,
            dims,
            max_length=max_length,
            batch_size=batch_size,
            position=trained_position(Path(r)),
            desc=NAME,
            base=base,
        )
    scores.update(feature_scores(prep.conversations, dims))
    result = agreement(prep, scores, mapping, bootstrap=bootstrap, ci=ci, seed=seed)
    return {"file": str(path), "format": fmt, "kind": hs.kind, "items": len(prep.units), "load": hs.load} | result


def table(result: dict[str, Any]) -> str:
    """The result as aligned text: one line per rater and dimension, each metric with its interval."""
    metrics = (
        ("accuracy", "rater_tie_share")
        if result["kind"] == "preferences"
        else ("spearman", "kendall", "pearson", "qwk", "mae")
    )
    rows = [["rater", "dimension", "n", *metrics]]
    for rater in sorted(result["raters"]):
        for dim, m in result["raters"][rater].items():
            cells = []
            for k in metrics:
                s = m[k]
                v = "–" if s["value"] is None else f"{s['value']:.3f}"
                if s.get("low") is not None:
                    v += f" [{s['low']:.2f}, {s['high']:.2f}]"
                cells.append(v)
            rows.append([rater, dim, str(m["n"]), *cells])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
