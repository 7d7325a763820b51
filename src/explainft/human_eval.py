"""Agreement with people: every rater's scores on a human-rated set, against the people's.

A human-rated set (:mod:`explainft.human`) is either **ratings** (each response scored by one or more annotators
on a numeric scale per quality) or **preferences** (two responses to one prompt, and which one a person
preferred). The profile maps each rated dimension to the human quality that stands for it
(``human.sets.<name>.map``); the annotators' mean is the truth, their spread is recorded.

Raters, each giving a score on [0, 1] per response and dimension:

* ``teacher/<name>/<prompt>``: one teacher with one prompt variant (its normalised score; an unparsable or
  failed rating is a missing prediction, counted);
* ``teacher/<name>``: the mean of that teacher's valid prompt variants;
* ``ensemble/<method>``: the merged ensemble, each merge method (``average``, ``most_frequent``, ``llm`` with a judge);
* ``untuned``: the student before fine-tuning, asked as its fine-tunes are;
* ``student/<set>/<dimension>/<variant>/seed_<k>``: every fine-tuned student (it rates its own dimension);
* ``baseline/length``, ``baseline/distinct``, ``baseline/overlap``: one text feature each
  (:func:`feature_scores`), so a rater that loses to response length shows it.

Metrics (:mod:`explainft.agreement`): per rater and dimension, for ratings Spearman, Kendall tau-b, Pearson,
quadratic weighted kappa on the set's own scale and MAE on [0, 1]; for preferences pairwise accuracy on decided
battles (a rater tie counts half), the share of decided battles the rater calls a tie and its agreement on the
people's ties. Every interval is a paired group bootstrap (all responses to one prompt resampled together; the
same resamples for every rater), and so is each difference "student with explanations minus without" (the same
training set, dimension and seed).

Left out (:func:`prepare`, each counted): ``design_share`` of the set's groups (:func:`design_part`), where the
stand-in raters were designed; every item that asks what a training or validation example of this run asked (the
same user turns, :func:`explainft.datasets.base.prompt_group`: a human-rated pair drawn from a corpus the students
trained on, such as the paper's Arena or HH-RLHF), so no rater is measured on what it learnt from; and, with
``max_items``, the items past a stable sample. The metrics read the rest only.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .agreement import GroupBootstrap, difference, preference_agreement, rating_agreement
from .datasets.base import prompt_group
from .errors import ConfigError
from .human import HumanSet
from .merge import normalise
from .records import Conversation, Item, Rating

PREFERENCE = "preference"  # the only quality of a preference set
BASELINES = ("length", "distinct", "overlap")
_WORD = re.compile(r"\w+(?:'\w+)?")

Preds = dict[tuple[str, str], float]  # (conversation id, dimension) -> score on [0, 1]


# --------------------------------------------------------------------------- which items


def design_part(group: str, share: float) -> bool:
    """Whether ``group`` is in the design part: the first ``share`` of groups by ``sha256("human-design:" + key)``,
    where ``key`` is the group's hash (``helpsteer/p3fa2…`` -> ``3fa2…``, :func:`explainft.human.base.group_of`),
    so the split does not depend on the set's name."""
    if share <= 0:
        return False
    key = group.rsplit("/", 1)[-1].removeprefix("p")
    return int(hashlib.sha256(f"human-design:{key}".encode("utf-8")).hexdigest(), 16) % 1000 < round(share * 1000)


def _rank(group: str) -> int:
    return int(hashlib.sha256(f"human-sample:{group.rsplit('/', 1)[-1]}".encode("utf-8")).hexdigest(), 16)


@dataclass(frozen=True)
class Prepared:
    """The evaluation part of a set: the conversations to rate, and what the people said about them."""

    kind: str  # ratings | preferences
    conversations: list[Conversation]
    groups: list[str]  # per unit (a rated response, or a pair)
    units: list[Any]  # RatedResponse or PreferencePair, in order
    design_units: int  # units set aside for design
    left_out: dict[str, int] = field(default_factory=dict)  # design, in_training, sampled_out


def prepare(
    hs: HumanSet, share: float, *, trained: frozenset[str] | set[str] = frozenset(), max_items: int | None = None
) -> Prepared:
    """The units outside the design part (``share``), asking nothing a training or validation example asked
    (``trained``: their :func:`~explainft.datasets.base.prompt_group`), at most ``max_items`` of them (whole groups,
    the first by a hash of the group); and the conversations the raters must score (a pair gives two)."""
    units = hs.ratings if hs.kind == "ratings" else hs.pairs
    group_of = (lambda u: u.conversation.group) if hs.kind == "ratings" else (lambda u: u.group)
    first = (lambda u: u.conversation) if hs.kind == "ratings" else (lambda u: u.a)
    kept = [u for u in units if not design_part(group_of(u), share)]
    design = len(units) - len(kept)
    fresh = [u for u in kept if prompt_group(first(u).turns) not in trained]
    in_training = len(kept) - len(fresh)
    kept = fresh
    sampled_out = 0
    if max_items is not None and len(kept) > max_items:
        # whole groups, the first by their hash, while they fit (the first one always)
        sizes: dict[str, int] = {}
        for u in kept:
            sizes[group_of(u)] = sizes.get(group_of(u), 0) + 1
        chosen: set[str] = set()
        total = 0
        for g in sorted(sizes, key=lambda g: (_rank(g), g)):
            if chosen and total + sizes[g] > max_items:
                continue
            chosen.add(g)
            total += sizes[g]
        sampled_out = len(kept) - total
        kept = [u for u in kept if group_of(u) in chosen]
    if not kept:
        raise ConfigError(
            f"human.sets.{hs.name}",
            f"nothing is left to measure of the set's {len(units)} items: {design} in the design part "
            f"(design_share), {in_training} asking what a training or validation example asked",
        )
    if hs.kind == "ratings":
        convs = [u.conversation for u in kept]
    else:
        convs = [c for u in kept for c in (u.a, u.b)]
    left_out = {"design": design, "in_training": in_training, "sampled_out": sampled_out}
    return Prepared(hs.kind, convs, [group_of(u) for u in kept], kept, design, left_out)


def check_map(hs: HumanSet, mapping: Mapping[str, str], map_key: str | None = None) -> None:
    """Each mapped quality is one the set has (a preference set's is ``preference``); errors name
    ``human.sets.<name>.map.<dimension>`` (or ``<map_key>.<dimension>``)."""
    known = [PREFERENCE] if hs.kind == "preferences" else sorted(hs.qualities)
    for dim, quality in mapping.items():
        if quality not in known:
            raise ConfigError(
                f"{map_key or f'human.sets.{hs.name}.map'}.{dim}",
                f"{quality!r} is not a quality of this {hs.format} set; it has: {', '.join(known)}",
            )


# --------------------------------------------------------------------------- raters


def teacher_predictions(ratings: Iterable[Rating]) -> dict[str, Preds]:
    """``teacher/<name>/<prompt>`` and ``teacher/<name>`` (the mean of its valid prompts) from teacher ratings."""
    per: dict[str, dict[tuple[str, str], list[float]]] = {}
    for r in ratings:
        if r.status != "ok":
            continue
        v = normalise(r.raw_score, r.scale)  # type: ignore[arg-type]
        per.setdefault(f"teacher/{r.teacher}/{r.prompt}", {}).setdefault((r.id, r.dimension), []).append(v)
        per.setdefault(f"teacher/{r.teacher}", {}).setdefault((r.id, r.dimension), []).append(v)
    return {name: {k: math.fsum(vs) / len(vs) for k, vs in by.items()} for name, by in per.items()}


def item_predictions(items: Iterable[Item]) -> Preds:
    """A merge method's scores, one per (id, dimension)."""
    out: Preds = {}
    for it in items:
        if (it.id, it.dimension) in out:
            raise ValueError(f"two merged items for {it.id!r} on {it.dimension!r}")
        out[(it.id, it.dimension)] = it.score
    return out


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def features(conv: Conversation) -> dict[str, float]:
    """The three one-feature baselines' raw values for one response.

    ``length``: the response's words. ``distinct``: its distinct words / its words (0 for an empty one).
    ``overlap``: the share of its distinct words that occur in the earlier turns or the context.
    """
    resp = words(conv.response.text)
    before = set(words(" ".join(t.text for t in conv.turns[:-1]) + " " + (conv.context or "")))
    distinct = set(resp)
    return {
        "length": float(len(resp)),
        "distinct": len(distinct) / len(resp) if resp else 0.0,
        "overlap": len(distinct & before) / len(distinct) if distinct else 0.0,
    }


def feature_scores(convs: Sequence[Conversation], dimensions: Iterable[str]) -> dict[str, Preds]:
    """``baseline/<feature>``: each feature mapped to [0, 1] by its mid-rank in the set (ties share a rank), the
    same score on every dimension. Rank-based, so the correlations are the feature's own; MAE and kappa are those
    of a rater that spreads the feature evenly over the scale."""
    dims = list(dimensions)
    out: dict[str, Preds] = {}
    raw = [features(c) for c in convs]
    for f in BASELINES:
        vals = np.array([r[f] for r in raw], dtype=float)
        order = vals.argsort(kind="stable")
        ranks = np.empty(len(vals))
        ranks[order] = np.arange(len(vals), dtype=float)
        for v in np.unique(vals):  # average rank for ties
            m = vals == v
            ranks[m] = ranks[m].mean()
        scaled = ranks / (len(vals) - 1) if len(vals) > 1 else np.full(len(vals), 0.5)
        out[f"baseline/{f}"] = {(c.id, d): float(s) for c, s in zip(convs, scaled) for d in dims}
    return out


# --------------------------------------------------------------------------- metrics


def _truth(units: Sequence[Any], quality: str) -> tuple[list[float | None], tuple[float, float]]:
    vals: list[float | None] = []
    scale = None
    for u in units:
        a = u.qualities.get(quality)
        vals.append(None if a is None else a.mean)
        if a is not None:
            scale = (a.scale.lo, a.scale.hi)
    if scale is None:
        raise ConfigError("human.sets.map", f"no response of the set has the quality {quality!r}")
    return vals, scale


def agreement(
    prep: Prepared,
    raters: Mapping[str, Preds],
    mapping: Mapping[str, str],
    *,
    bootstrap: int,
    ci: float,
    seed: int,
    pairs: Sequence[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    """``{"raters": {rater: {dimension: metrics}}, "differences": {...}, "truth": {...}}`` on the prepared set.

    A rater is measured on the units it scored (a pair needs both sides); ``n`` and ``missing`` say how many.
    ``pairs`` lists ``(label, rater with explanations, rater without)`` for the paired differences.
    """
    full = GroupBootstrap(prep.groups, bootstrap, seed)
    out: dict[str, Any] = {"raters": {}, "differences": {}, "truth": {}}
    for dim, quality in mapping.items():
        if prep.kind == "ratings":
            truth, scale = _truth(prep.units, quality)
            present = [i for i, t in enumerate(truth) if t is not None]
            spreads = [prep.units[i].qualities[quality].spread for i in present]
            out["truth"][dim] = {
                "quality": quality,
                "scale": list(scale),
                "n": len(present),
                "mean": round(float(np.mean([truth[i] for i in present])), 6),
                "annotator_spread": round(float(np.mean(spreads)), 6),
                "annotators": round(float(np.mean([len(prep.units[i].qualities[quality].values) for i in present])), 3),
            }
        else:
            winners = [u.winner for u in prep.units]
            out["truth"][dim] = {
                "quality": PREFERENCE,
                "n": len(winners),
                "a": winners.count("a"),
                "b": winners.count("b"),
                "tie": winners.count("tie"),
            }
        for name, preds in raters.items():
            got = _measure(prep, preds, dim, quality, full, bootstrap, seed, ci)
            if got is not None:
                out["raters"].setdefault(name, {})[dim] = got
    for label, x, y in pairs:
        for dim, quality in mapping.items():
            if x in raters and y in raters and _covers(prep, raters[x], dim) and _covers(prep, raters[y], dim):
                out["differences"].setdefault(label, {})[dim] = _difference(
                    prep, raters[x], raters[y], dim, quality, full, ci, bootstrap, seed
                )
    return out


def _covers(prep: Prepared, preds: Preds, dim: str) -> bool:
    return any((c.id, dim) in preds for c in prep.conversations)


def _rows(prep: Prepared, preds: Preds, dim: str) -> list[int]:
    if prep.kind == "ratings":
        return [i for i, u in enumerate(prep.units) if (u.conversation.id, dim) in preds]
    return [i for i, u in enumerate(prep.units) if (u.a.id, dim) in preds and (u.b.id, dim) in preds]


def _sub(full: GroupBootstrap, prep: Prepared, rows: list[int], bootstrap: int, seed: int) -> GroupBootstrap:
    # every unit scored: the set's own resamples (paired across raters); else resample the scored units alone
    return full if len(rows) == len(prep.units) else GroupBootstrap([prep.groups[i] for i in rows], bootstrap, seed)


def _measure(
    prep: Prepared,
    preds: Preds,
    dim: str,
    quality: str,
    full: GroupBootstrap,
    bootstrap: int,
    seed: int,
    ci: float,
) -> dict[str, Any] | None:
    if not _covers(prep, preds, dim):
        return None
    rows = _rows(prep, preds, dim)
    if prep.kind == "ratings":
        truth, scale = _truth(prep.units, quality)
        rows = [i for i in rows if truth[i] is not None]
        if not rows:
            return None
        res = _ratings(
            [_clip(preds[(prep.units[i].conversation.id, dim)]) for i in rows],
            [truth[i] for i in rows],  # type: ignore[misc]
            scale,
            _sub(full, prep, rows, bootstrap, seed),
            ci,
        )
        missing = sum(1 for t in truth if t is not None) - len(rows)
    else:
        if not rows:
            return None
        res = preference_agreement(
            [preds[(prep.units[i].a.id, dim)] for i in rows],
            [preds[(prep.units[i].b.id, dim)] for i in rows],
            [prep.units[i].winner for i in rows],
            boot=_sub(full, prep, rows, bootstrap, seed),
            ci=ci,
        )
        missing = len(prep.units) - len(rows)
    return {**res, "missing": missing}


def integral(scale: tuple[float, float]) -> bool:
    return all(float(v).is_integer() for v in scale)


def _ratings(pred: list[float], truth: list[float], scale: tuple[float, float], boot: GroupBootstrap, ci: float):
    """rating_agreement on the set's scale; a scale with non-integer bounds has no categories, so no kappa."""
    if integral(scale):
        return rating_agreement(pred, truth, scale=(int(scale[0]), int(scale[1])), boot=boot, ci=ci)
    lo, hi = scale
    res = rating_agreement(pred, [(t - lo) / (hi - lo) for t in truth], scale=(0, 1), boot=boot, ci=ci)
    return res | {"qwk": {"value": None, "low": None, "high": None}}


def _clip(v: float) -> float:
    # merged scores and expected scores are on [0, 1] up to rounding
    return min(1.0, max(0.0, v))


def _difference(
    prep: Prepared,
    x: Preds,
    y: Preds,
    dim: str,
    quality: str,
    full: GroupBootstrap,
    ci: float,
    bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    both = set(_rows(prep, y, dim))
    rows = [i for i in _rows(prep, x, dim) if i in both]
    if prep.kind == "ratings":
        truth, scale = _truth(prep.units, quality)
        rows = [i for i in rows if truth[i] is not None]
        if not rows:
            return {"n": 0}
        boot = _sub(full, prep, rows, bootstrap, seed)
        ids = [prep.units[i].conversation.id for i in rows]
        t = [truth[i] for i in rows]
        if integral(scale):
            sc: tuple[float, float] = (int(scale[0]), int(scale[1]))
            metrics: tuple[str, ...] = ("spearman", "kendall", "pearson", "qwk", "mae")
        else:
            t, sc = [(v - scale[0]) / (scale[1] - scale[0]) for v in t], (0, 1)  # type: ignore[operator]
            metrics = ("spearman", "kendall", "pearson", "mae")
        px, py = [_clip(x[(i, dim)]) for i in ids], [_clip(y[(i, dim)]) for i in ids]
        out = {m: difference(m, px, py, t, boot, ci=ci, scale=sc, kind="ratings") for m in metrics}
        return out | {"n": len(rows)}
    if not rows:
        return {"n": 0}
    boot = _sub(full, prep, rows, bootstrap, seed)
    a_ids, b_ids = [prep.units[i].a.id for i in rows], [prep.units[i].b.id for i in rows]
    winners = [prep.units[i].winner for i in rows]
    xs = ([x[(i, dim)] for i in a_ids], [x[(i, dim)] for i in b_ids])
    ys = ([y[(i, dim)] for i in a_ids], [y[(i, dim)] for i in b_ids])
    return {"accuracy": difference("accuracy", xs, ys, winners, boot, ci=ci, kind="preferences"), "n": len(rows)}
