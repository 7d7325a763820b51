"""Agreement of a rater with people: correlations, weighted kappa, pairwise accuracy, a group bootstrap.

Numbers in, numbers out: this module knows nothing of records, files or raters' names.

Inputs
------
A rater's score ``pred`` is on [0, 1]. A human ``truth`` is the annotators' mean on the set's own scale
``scale = (lo, hi)``: integer bounds with ``lo < hi`` (0-4, 1-3, 0-1, 1-5, 0-2); a bound that is not an
integer (``2.5``; a bool) is a ValueError. Every value must be a finite number (a NaN or an infinity is a
ValueError naming the argument and index, ``pred[7] is nan``); ``pred`` must lie in [0, 1] and ``truth`` in
[lo, hi], each within 1e-9 (then clipped to the range; beyond it a ValueError names the index and value).
Arrays of one call must have equal lengths (a ValueError names both lengths).

Statistics (one rater, one set and dimension)
---------------------------------------------
``spearman``: Spearman's rho, the Pearson correlation of average ranks (tied values share the mean of the
    ranks they span; as ``scipy.stats.spearmanr``).
``kendall``: Kendall's tau-b, ``(C - D) / sqrt((n0 - n1) (n0 - n2))`` with ``n0 = n(n-1)/2`` and ``n1``,
    ``n2`` the pairs tied in pred and in truth (``Σ t(t-1)/2`` over tie blocks); as
    ``scipy.stats.kendalltau(variant="b")``.
``pearson``: Pearson's r of pred and truth (invariant to the scale's affine map).
    These three are undefined with fewer than 2 items or when either side is constant.
``qwk``: Cohen's kappa with quadratic weights on the set's own integer categories lo..hi (k = hi - lo + 1).
    The truth goes to its nearest category, round half up (an annotators' mean of 2.5 goes to 3); the
    prediction is first mapped to the scale, ``lo + pred·(hi - lo)``, and rounded the same way. Both are
    rounded to 9 decimals before that, so that float noise (2.4999999999999996) does not move a half.
    With ``O`` the observed k×k confusion counts, ``E = outer(row sums, column sums) / n`` and weights
    ``w_ij = (i - j)² / (k - 1)²``: ``qwk = 1 - Σ w·O / Σ w·E``; undefined when ``Σ w·E = 0`` (every item
    of both sides in one same category).
``mae``: ``mean |pred - (truth - lo) / (hi - lo)|``, on the normalised [0, 1] scale; undefined for no items.

Pairwise preferences
--------------------
A battle ``i`` has a rater's scores ``pred_a[i]``, ``pred_b[i]`` (each on [0, 1]) and a human
``winner[i]`` in ``{"a", "b", "tie"}`` (another label is a ValueError naming the index). With
``d = pred_a - pred_b`` rounded to 9 decimals (so that 0.8 - 0.7 and 0.3 - 0.2 both equal 0.1), the rater
prefers a when ``d > tie_margin``, b when ``d < -tie_margin`` and calls a tie otherwise (``tie_margin >= 0``).
``accuracy``: over the battles the human decided (a or b), ``(agreements + 0.5 · rater ties) / decided``: a
    rater's tie earns half credit (a coin flip's expected score); undefined with no decided battle.
``rater_tie_share``: the share of decided battles the rater calls a tie; undefined with no decided battle.
``tie_agreement``: the share of human ties the rater also calls a tie; undefined with no human tie.

Reported values
---------------
Each statistic is ``S = {"value", "low", "high"}``: plain floats, never NaN; an undefined value is None.
``low``/``high`` are None without a bootstrap (or with 0 resamples). Values are not rounded.

The bootstrap
-------------
:class:`GroupBootstrap` is a paired cluster bootstrap. Items carry a group (all responses to one prompt,
one conversation); the distinct groups are sorted and each resample draws as many groups as there are,
uniformly with replacement (``numpy.random.default_rng(seed).integers``, one (resamples × groups) draw), and
takes every item of each drawn group, as often as the group is drawn. It is built once per set and shared by
every rater on that set, so all raters see the same resamples (paired): differences between raters are
computed resample by resample (:func:`difference`). ``samples[b]`` holds resample b's item indices in draw
order; ``counts[b, i]`` the number of times item i occurs in it.

Every statistic above depends on a resample only through the multiset of its items, so it is computed from
the counts, for all resamples at once, as a weighted statistic (an item drawn twice weighs 2): ragged
resample sizes (groups of different sizes) need no special case. The weighted forms equal the statistics of
the expanded resample exactly: average ranks come from cumulative weights over tie blocks; Kendall's
``C - D = ½ Σ_ij c_i c_j sign(x_i - x_j) sign(y_i - y_j)`` is an exact integer (two copies of an item are a
pair tied on both sides, as in scipy), and its tie counts use block weights; kappa's confusion counts are
sums of weights per (prediction, truth) cell.

The interval is the percentile interval of the resampled values: ``numpy.percentile`` (linear
interpolation) at ``100·(1 - ci)/2`` and ``100·(1 + ci)/2`` (2.5 and 97.5 for ``ci = 0.95``). A resample on
which the statistic is undefined is left out; their number is reported as ``S["undefined_resamples"]`` when
it is not zero, and when more than half of the resamples are undefined, ``low`` and ``high`` are None.
For a difference, a resample is undefined when either rater's statistic is.

Functions
---------
``rating_agreement(pred, truth, scale, boot=None, ci=0.95)``
    -> ``{"n", ["groups",] "spearman", "kendall", "pearson", "qwk", "mae"}`` ("groups": distinct groups,
    only with a bootstrap).
``preference_agreement(pred_a, pred_b, winner, boot=None, ci=0.95, tie_margin=0.0)``
    -> ``{"n", ["groups",] "decided", "human_ties", "accuracy", "rater_tie_share", "tie_agreement"}``.
``difference(metric, x, y, target, boot, ci=0.95, scale=None, kind="ratings", tie_margin=0.0) -> S``: the
    paired difference ``metric(x) - metric(y)``; for ratings x and y are preds and target the truth (scale
    required); for preferences x and y are ``(pred_a, pred_b)`` pairs and target the winners.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

RATING_METRICS = ("spearman", "kendall", "pearson", "qwk", "mae")
PREFERENCE_METRICS = ("accuracy", "rater_tie_share", "tie_agreement")
WINNERS = ("a", "b", "tie")
TOLERANCE = 1e-9  # how far outside its range a value may lie (then clipped)
_DECIMALS = 9  # values are rounded to this many decimals before a half is rounded up or a margin compared
_CELLS = 4_000_000  # resamples are processed, and Kendall's sign matrix built, in blocks of about this many cells


# --------------------------------------------------------------------------- the bootstrap


class GroupBootstrap:
    """A paired cluster bootstrap over ``groups`` (one label per item); see the module docstring.

    Attributes: ``n`` (items), ``groups`` (distinct groups), ``resamples``, ``seed``, ``samples`` (one
    array of item indices per resample, in draw order) and ``counts`` ((resamples, n) int64: how often each
    item occurs in each resample).
    """

    def __init__(self, groups: Sequence[str], resamples: int, seed: int):
        labels = list(groups)
        for i, g in enumerate(labels):
            if not isinstance(g, str):
                raise ValueError(f"groups[{i}] is {g!r}: a group must be a string")
        if not labels:
            raise ValueError("a group bootstrap needs at least one item")
        if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 0:
            raise ValueError(f"resamples must be a non-negative integer, got {resamples!r}")
        index = {label: j for j, label in enumerate(sorted(set(labels)))}
        code = np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))
        self.n, self.groups, self.resamples, self.seed = len(labels), len(index), int(resamples), seed
        b, g = self.resamples, self.groups
        draws = np.random.default_rng(seed).integers(0, g, size=(b, g))
        drawn = np.bincount((np.arange(b)[:, None] * g + draws).ravel(), minlength=b * g).reshape(b, g)
        self.counts = drawn[:, code]
        # items ordered by group: group j's items are members[starts[j] : starts[j] + sizes[j]]
        members = np.argsort(code, kind="stable")
        sizes = np.bincount(code, minlength=g)
        starts = np.cumsum(sizes) - sizes
        flat = draws.ravel()
        length = sizes[flat]
        offsets = np.repeat(starts[flat] - (np.cumsum(length) - length), length)
        items = members[offsets + np.arange(int(length.sum()))]
        self.samples: list[np.ndarray] = np.split(items, np.cumsum(length.reshape(b, g).sum(axis=1))[:-1])
        if b == 0:
            self.samples = []
        self._weights = self.counts.astype(np.float64)

    def __repr__(self) -> str:
        return f"GroupBootstrap(n={self.n}, groups={self.groups}, resamples={self.resamples}, seed={self.seed})"


def _weights(boot: GroupBootstrap | None, n: int, what: str) -> list[np.ndarray]:
    """Weight matrices (rows × n): first the full sample (one row of ones), then the resamples in chunks."""
    if boot is None:
        return [np.ones((1, n))]
    if not isinstance(boot, GroupBootstrap):
        raise ValueError(f"boot must be a GroupBootstrap or None, got {type(boot).__name__}")
    if boot.n != n:
        raise ValueError(f"the bootstrap was built on {boot.n} items but {what} has {n}")
    step = max(1, _CELLS // max(n, 1))
    return [np.ones((1, n))] + [boot._weights[s : s + step] for s in range(0, boot.resamples, step)]


def _rows(compute: Any, weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``compute(w) -> {metric: (rows,)}`` over each weight matrix, concatenated: row 0 is the point estimate."""
    parts = [compute(w) for w in weights]
    return {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}


def _ci(ci: float) -> float:
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number strictly between 0 and 1, got {ci!r}")
    return float(ci)


def _summary(values: np.ndarray, resampled: bool, ci: float) -> dict[str, Any]:
    """``S`` from row 0 (the point estimate) and the resampled rows; NaN marks an undefined value."""
    point = values[0]
    out: dict[str, Any] = {"value": None if math.isnan(point) else float(point), "low": None, "high": None}
    rest = values[1:]
    if not resampled or rest.size == 0:
        return out
    defined = rest[~np.isnan(rest)]
    undefined = int(rest.size - defined.size)
    if undefined:
        out["undefined_resamples"] = undefined
    if defined.size and 2 * undefined <= rest.size:
        low, high = np.percentile(defined, [50 * (1 - ci), 50 * (1 + ci)])
        out["low"], out["high"] = float(low), float(high)
    return out


# --------------------------------------------------------------------------- inputs


def _numbers(x: Any, what: str, low: float, high: float, where: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be numbers: {e}") from None
    if a.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {a.shape}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ValueError(f"{what}[{bad[0]}] is {a[bad[0]]}: not a finite number")
    out = np.flatnonzero((a < low - TOLERANCE) | (a > high + TOLERANCE))
    if out.size:
        raise ValueError(f"{what}[{out[0]}] = {float(a[out[0]])!r} is outside {where}")
    return np.clip(a, low, high)


def _lengths(**arrays: Any) -> int:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("unequal lengths: " + ", ".join(f"{k} has {v} items" for k, v in sizes.items()))
    return next(iter(sizes.values()))


def _scale(scale: Any) -> tuple[int, int]:
    try:
        lo, hi = scale
    except (TypeError, ValueError):
        raise ValueError(f"scale must be a pair (lo, hi), got {scale!r}") from None
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not float(v).is_integer():
            raise ValueError(f"scale bound {name} must be an integer, got {v!r} in scale {scale!r}")
    if not lo < hi:
        raise ValueError(f"scale {scale!r} needs lo < hi")
    return int(lo), int(hi)


def _half_up(x: np.ndarray) -> np.ndarray:
    """Nearest integer, halves up, after rounding to 9 decimals."""
    return np.floor(np.round(x, _DECIMALS) + 0.5).astype(np.int64)


# --------------------------------------------------------------------------- weighted statistics


class _Ties:
    """The tie blocks of one side: items sorted by value, each block a run of equal values."""

    def __init__(self, x: np.ndarray):
        self.order = np.argsort(x, kind="stable")
        xs = x[self.order]
        new = np.r_[True, xs[1:] != xs[:-1]] if x.size else np.zeros(0, dtype=bool)
        self.starts = np.flatnonzero(new)
        self.block = np.empty(x.size, dtype=np.int64)
        self.block[self.order] = np.cumsum(new) - 1

    def totals(self, w: np.ndarray) -> np.ndarray:
        """(rows, blocks): the weight of each block in each row."""
        if not self.starts.size:
            return np.zeros((w.shape[0], 0))
        return np.add.reduceat(w[:, self.order], self.starts, axis=1)


def _ranks(ties: _Ties, totals: np.ndarray) -> np.ndarray:
    """(rows, n): each item's average rank in the expanded sample of each row."""
    before = np.cumsum(totals, axis=1) - totals
    return (before + (totals + 1) / 2)[:, ties.block]


def _varies(totals: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rows with at least 2 items where the side is not constant (no block holds the whole weight)."""
    if not totals.shape[1]:
        return np.zeros(totals.shape[0], dtype=bool)
    return (size >= 2) & (totals.max(axis=1) < size)


def _correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray, size: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation per row (x, y: (n,) or (rows, n)); NaN where not ``ok``."""
    safe = np.where(size > 0, size, 1)
    dx = x - ((w * x).sum(axis=1) / safe)[:, None]
    dy = y - ((w * y).sum(axis=1) / safe)[:, None]
    sxx, syy, sxy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1), (w * dx * dy).sum(axis=1)
    ok = ok & (sxx > 0) & (syy > 0)
    r = sxy / np.sqrt(np.where(ok, sxx * syy, 1.0))
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _kendall(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, tx: np.ndarray, ty: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """Kendall's tau-b per row from the exact ``2 (C - D)`` and the block weights ``tx``, ``ty``; NaN if undefined."""
    n = x.size
    step = max(1, _CELLS // max(n, 1))
    twice = np.zeros(w.shape[0])  # 2 (C - D)
    for s in range(0, n, step):
        cols = slice(s, s + step)
        sign = np.sign(x[:, None] - x[None, cols]) * np.sign(y[:, None] - y[None, cols])
        twice += np.einsum("rj,rj->r", w[:, cols], w @ sign)
    n0 = size * (size - 1) / 2
    n1, n2 = (tx * (tx - 1) / 2).sum(axis=1), (ty * (ty - 1) / 2).sum(axis=1)
    ok = (n0 - n1 > 0) & (n0 - n2 > 0)
    tau = (twice / 2) / np.sqrt(np.where(ok, (n0 - n1) * (n0 - n2), 1.0))
    return np.where(ok, np.clip(tau, -1.0, 1.0), np.nan)


def _qwk(pred_cat: np.ndarray, truth_cat: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    code = k * pred_cat + truth_cat
    cells = np.zeros((w.shape[0], k * k))
    if code.size:
        order = np.argsort(code, kind="stable")
        sc = code[order]
        starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
        cells[:, sc[starts]] = np.add.reduceat(w[:, order], starts, axis=1)
    observed = cells.reshape(-1, k, k)
    size = cells.sum(axis=1)
    rows, cols = observed.sum(axis=2), observed.sum(axis=1)
    i, j = np.indices((k, k))
    weight = (i - j) ** 2 / (k - 1) ** 2
    # Σ w·E = Σ_ij w_ij r_i c_j / n
    expected = np.einsum("ri,ij,rj->r", rows, weight, cols) / np.where(size > 0, size, 1)
    disagreement = np.einsum("rij,ij->r", observed, weight)
    ok = expected > 0
    return np.where(ok, 1.0 - disagreement / np.where(ok, expected, 1.0), np.nan)


def _mean(values: np.ndarray, mask: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per row, the weighted mean of ``values`` over the items in ``mask``; NaN where it holds no weight."""
    total = (w * mask).sum(axis=1)
    return np.where(total > 0, (w * (values * mask)).sum(axis=1) / np.where(total > 0, total, 1.0), np.nan)


def _rating_values(
    pred: np.ndarray, truth: np.ndarray, lo: int, hi: int, w: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """{metric: (rows,) values, NaN where undefined} for the weight rows ``w``; row 0 is the point estimate."""
    size = w.sum(axis=1)
    px, ty = _Ties(pred), _Ties(truth)
    tp, tt = px.totals(w), ty.totals(w)
    ok = _varies(tp, size) & _varies(tt, size)
    out: dict[str, np.ndarray] = {}
    for m in metrics:
        if m == "spearman":
            out[m] = _correlation(_ranks(px, tp), _ranks(ty, tt), w, size, ok)
        elif m == "kendall":
            out[m] = _kendall(pred, truth, w, tp, tt, size)
        elif m == "pearson":
            out[m] = _correlation(pred, truth, w, size, ok)
        elif m == "qwk":
            out[m] = _qwk(_half_up(pred * (hi - lo)), _half_up(truth - lo), hi - lo + 1, w)
        else:
            out[m] = _mean(np.abs(pred - (truth - lo) / (hi - lo)), np.ones(pred.size), w)
    return out


def _preference_values(
    pred_a: np.ndarray, pred_b: np.ndarray, winner: np.ndarray, margin: float, w: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    d = np.round(pred_a - pred_b, _DECIMALS)
    rater = np.where(d > margin, 0, np.where(d < -margin, 1, 2))  # 0: a, 1: b, 2: tie (WINNERS order)
    decided = (winner != 2).astype(np.float64)
    rater_tie = (rater == 2).astype(np.float64)
    credit = np.where(rater == winner, 1.0, 0.5 * rater_tie)
    masks = {
        "accuracy": (credit, decided),
        "rater_tie_share": (rater_tie, decided),
        "tie_agreement": (rater_tie, 1 - decided),
    }
    return {m: _mean(*masks[m], w) for m in metrics}


# --------------------------------------------------------------------------- public functions


def _ratings_in(pred: Any, truth: Any, scale: Any, pred_name: str = "pred") -> tuple[np.ndarray, np.ndarray, int, int]:
    lo, hi = _scale(scale)
    p = _numbers(pred, pred_name, 0.0, 1.0, "[0, 1]")
    t = _numbers(truth, "truth", lo, hi, f"the scale [{lo}, {hi}]")
    _lengths(**{pred_name: p, "truth": t})
    return p, t, lo, hi


def _winners(winner: Any) -> np.ndarray:
    labels = list(winner) if not isinstance(winner, str) else [winner]
    codes = np.empty(len(labels), dtype=np.int64)
    for i, v in enumerate(labels):
        if not isinstance(v, str) or v not in WINNERS:
            raise ValueError(f"winner[{i}] is {v!r}: expected 'a', 'b' or 'tie'")
        codes[i] = WINNERS.index(v)
    return codes


def _preferences_in(pred_a: Any, pred_b: Any, winner: Any, tie_margin: float, names=("pred_a", "pred_b")):
    if isinstance(tie_margin, bool) or not isinstance(tie_margin, (int, float)) or not 0 <= tie_margin < math.inf:
        raise ValueError(f"tie_margin must be a finite number >= 0, got {tie_margin!r}")
    a, b = _numbers(pred_a, names[0], 0.0, 1.0, "[0, 1]"), _numbers(pred_b, names[1], 0.0, 1.0, "[0, 1]")
    codes = _winners(winner)
    _lengths(**{names[0]: a, names[1]: b, "winner": codes})
    return a, b, codes, float(tie_margin)


def rating_agreement(
    pred: Any, truth: Any, scale: tuple[int, int], boot: GroupBootstrap | None = None, ci: float = 0.95
) -> dict[str, Any]:
    """Agreement of one rater's [0, 1] scores with human truths on the scale ``(lo, hi)`` (module docstring)."""
    ci = _ci(ci)
    p, t, lo, hi = _ratings_in(pred, truth, scale)
    weights = _weights(boot, p.size, "pred")
    values = _rows(lambda w: _rating_values(p, t, lo, hi, w, RATING_METRICS), weights)
    out: dict[str, Any] = {"n": int(p.size)}
    if boot is not None:
        out["groups"] = boot.groups
    out.update({m: _summary(values[m], boot is not None, ci) for m in RATING_METRICS})
    return out


def preference_agreement(
    pred_a: Any,
    pred_b: Any,
    winner: Sequence[str],
    boot: GroupBootstrap | None = None,
    ci: float = 0.95,
    tie_margin: float = 0.0,
) -> dict[str, Any]:
    """Agreement of one rater's pairwise preferences with human winners ("a", "b", "tie") (module docstring)."""
    ci = _ci(ci)
    a, b, codes, margin = _preferences_in(pred_a, pred_b, winner, tie_margin)
    weights = _weights(boot, a.size, "winner")
    values = _rows(lambda w: _preference_values(a, b, codes, margin, w, PREFERENCE_METRICS), weights)
    out: dict[str, Any] = {"n": int(a.size)}
    if boot is not None:
        out["groups"] = boot.groups
    out["decided"], out["human_ties"] = int((codes != 2).sum()), int((codes == 2).sum())
    out.update({m: _summary(values[m], boot is not None, ci) for m in PREFERENCE_METRICS})
    return out


def difference(
    metric: str,
    x: Any,
    y: Any,
    target: Any,
    boot: GroupBootstrap | None,
    ci: float = 0.95,
    scale: tuple[int, int] | None = None,
    kind: str = "ratings",
    tie_margin: float = 0.0,
) -> dict[str, Any]:
    """``metric(x) - metric(y)`` on the same items and the same resamples, with its percentile interval.

    ``kind="ratings"``: x and y are two raters' [0, 1] scores, ``target`` the truths on ``scale``.
    ``kind="preferences"``: x and y are ``(pred_a, pred_b)`` pairs, ``target`` the winners.
    """
    ci = _ci(ci)
    if kind == "ratings":
        if metric not in RATING_METRICS:
            raise ValueError(f"unknown rating metric {metric!r}: expected one of {', '.join(RATING_METRICS)}")
        if scale is None:
            raise ValueError("a difference of ratings needs the scale (lo, hi) of the truths")
        px, t, lo, hi = _ratings_in(x, target, scale, "x")
        py, _, _, _ = _ratings_in(y, target, scale, "y")
        weights = _weights(boot, px.size, "x")
        vx, vy = (_rows(lambda w, q=q: _rating_values(q, t, lo, hi, w, [metric]), weights)[metric] for q in (px, py))
    elif kind == "preferences":
        if metric not in PREFERENCE_METRICS:
            raise ValueError(f"unknown preference metric {metric!r}: expected one of {', '.join(PREFERENCE_METRICS)}")
        pairs = []
        for name, pair in (("x", x), ("y", y)):
            try:
                pa, pb = pair
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a pair (pred_a, pred_b) for preferences") from None
            pairs.append(_preferences_in(pa, pb, target, tie_margin, (f"{name}.pred_a", f"{name}.pred_b")))
        weights = _weights(boot, pairs[0][0].size, "winner")
        vx, vy = (_rows(lambda w, p=p: _preference_values(*p, w, [metric]), weights)[metric] for p in pairs)
    else:
        raise ValueError(f"kind must be 'ratings' or 'preferences', got {kind!r}")
    return _summary(vx - vy, boot is not None, ci)
