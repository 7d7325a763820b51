"""Rating metrics and bootstrap intervals (pure numpy, on the Prediction records of explainft.records).

Scales. ``mae`` and ``mse`` are on the normalised [0, 1] scale (the paper's
MAE/MSE are of that size); ``mae_1to5 = 4·mae`` and ``mse_1to5 = 16·mse``
are the same errors on the 1–5 scale.

Gold labels. A [0, 1] target is the label ``1 + round_half_up(4·target)``
(:func:`gold_labels`; the same rule as ``merge.to_label``: 0.125 → 2,
0.375 → 3), unless the caller passes labels (e.g. the split's ``label``).

Functions
---------
``mae(pred, target)``, ``mse(pred, target)``, ``mae_1to5(pred, target)`` -> float
``spearman(x, y) -> float | None``: Pearson correlation of average ranks (ties
    share their mean rank); None when fewer than 2 items or either side is constant.
``qwk(pred_labels, gold_labels, *, n_labels=5) -> float | None``: Cohen's kappa with
    quadratic weights ``(i−j)²/(K−1)²``; None when undefined (both sides one same label).
``ece(confidence, correct, *, n_bins=10) -> float``: expected calibration error,
    ``Σ_b (n_b/n)·|accuracy_b − mean confidence_b|`` over 10 equal-width bins
    ``(0, .1], (.1, .2], …`` (a confidence of exactly 0 falls in the first).
    Here confidence is the argmax's probability and correct is argmax == gold label.
``gold_labels(targets) -> np.ndarray``
``summary(preds, labels=None) -> dict``: n, mae, mse, mae_1to5, mse_1to5, spearman,
    qwk, accuracy, ece, mean_expected, mean_target, rounded to 6 decimals.
``paired_bootstrap(err_a, err_b, *, n_boot=2000, seed=0, ci=0.95) -> {diff, low, high, p_a_better}``
``seed_bootstrap(errs_a_by_seed, errs_b_by_seed, *, n_boot=2000, seed=0, ci=0.95) -> same keys``
``label_prior(train_scores) -> float``; ``prior_predictions(examples, prior, *, test_set, model="prior")``

Bootstrap. ``err_*`` are per-item errors (squared errors for MSE) of two
models on the same items, in the same order. ``diff = mean(err_a) −
mean(err_b)`` (negative: A is better); items are resampled with replacement,
the same indices for both models (a paired bootstrap), and ``low``/``high``
are the percentile interval of the resampled differences; ``p_a_better`` is
the share of resamples where A's mean error is lower (ties count half).
With several training seeds per model, :func:`seed_bootstrap` resamples at
two levels: the items (shared by both models) and, independently for each
model, its seeds (the error of an item is then the mean over the drawn
seeds), so the interval covers seed-to-seed variance as well as the test
sample. With one seed per model it equals :func:`paired_bootstrap` exactly
(the item draws come from the same generator; the seed draws from a separate
one).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from .records import Prediction

N_LABELS = 5
_DECIMALS = 6
_CHUNK_CELLS = 2_000_000  # resample indices held at once (n_boot is processed in chunks of this many cells)


# --------------------------------------------------------------------------- helpers


def _pair(a: Any, b: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{what} needs equal lengths, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError(f"{what} of no items is undefined")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what}: inputs must be finite")
    return x, y


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), _DECIMALS)


# --------------------------------------------------------------------------- point metrics


def mae(pred: Any, target: Any) -> float:
    """Mean absolute error (on the scale of the inputs: [0, 1] for normalised scores)."""
    p, t = _pair(pred, target, "mae")
    return float(np.mean(np.abs(p - t)))


def mse(pred: Any, target: Any) -> float:
    """Mean squared error (on the scale of the inputs)."""
    p, t = _pair(pred, target, "mse")
    return float(np.mean((p - t) ** 2))


def mae_1to5(pred: Any, target: Any) -> float:
    """MAE of normalised scores expressed on the 1–5 scale (``4·mae``)."""
    return 4.0 * mae(pred, target)


def rank_average(a: Any) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (as ``scipy.stats.rankdata(method="average")``)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    order = np.argsort(a, kind="mergesort")
    inv = np.empty_like(order)
    inv[order] = np.arange(a.size)
    s = a[order]
    new = np.r_[True, s[1:] != s[:-1]]
    dense = np.cumsum(new)[inv]  # 1-based group of each item
    bounds = np.r_[np.flatnonzero(new), a.size]  # group g spans sorted positions bounds[g-1] .. bounds[g]-1
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(x: Any, y: Any) -> float | None:
    """Spearman's rho with average ranks for ties; None if fewer than 2 items or either side is constant."""
    a, b = _pair(x, y, "spearman")
    if a.size < 2:
        return None
    ra, rb = rank_average(a), rank_average(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    sxx, syy = float(ra @ ra), float(rb @ rb)
    if sxx == 0 or syy == 0:
        return None
    return float(np.clip((ra @ rb) / math.sqrt(sxx * syy), -1.0, 1.0))


def gold_labels(targets: Any) -> np.ndarray:
    """``1 + round_half_up(4·target)`` for [0, 1] targets (rounded to 9 decimals first, as ``merge.to_label``)."""
    t = np.asarray(targets, dtype=np.float64).ravel()
    if not (np.isfinite(t).all() and ((t >= 0) & (t <= 1)).all()):
        raise ValueError("targets must be finite and within [0, 1]")
    return (1 + np.floor(np.round(4.0 * t, 9) + 0.5)).astype(np.int64)


def _labels(x: Any, what: str, n_labels: int) -> np.ndarray:
    a = np.asarray(x)
    if a.size and not np.all(np.asarray(a, dtype=np.float64) == np.round(np.asarray(a, dtype=np.float64))):
        raise ValueError(f"{what}: labels must be integers 1..{n_labels}")
    a = np.asarray(a, dtype=np.int64).ravel()
    if a.size and (a.min() < 1 or a.max() > n_labels):
        raise ValueError(f"{what}: labels must be in 1..{n_labels}, got {a.min()}..{a.max()}")
    return a


def qwk(pred_labels: Any, gold: Any, *, n_labels: int = N_LABELS) -> float | None:
    """Quadratic weighted kappa between integer labels 1..n_labels; None when undefined."""
    p, g = _labels(pred_labels, "qwk", n_labels), _labels(gold, "qwk", n_labels)
    if p.shape != g.shape:
        raise ValueError(f"qwk needs equal lengths, got {p.size} and {g.size}")
    if p.size == 0:
        raise ValueError("qwk of no items is undefined")
    k = n_labels
    observed = np.zeros((k, k))
    np.add.at(observed, (p - 1, g - 1), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / p.size
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    denom = float((w * expected).sum())
    if denom == 0:
        return None
    return float(1.0 - (w * observed).sum() / denom)


def ece(confidence: Any, correct: Any, *, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` equal-width confidence bins (see the module docstring)."""
    c, y = _pair(confidence, np.asarray(correct, dtype=np.float64), "ece")
    if ((c < 0) | (c > 1)).any():
        raise ValueError("ece: confidences must be within [0, 1]")
    # rounded first: 0.3 * 10 is 3.0000000000000004 in binary, and 0.3 belongs to the bin (.2, .3]
    bins = np.clip(np.ceil(np.round(c * n_bins, 9)).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() / c.size * abs(float(y[m].mean()) - float(c[m].mean()))
    return float(total)


# --------------------------------------------------------------------------- a prediction file


def summary(preds: Sequence[Prediction], labels: Sequence[int] | None = None) -> dict[str, Any]:
    """All metrics of one model on one test set and dimension, rounded to 6 decimals (see the module docstring).

    ``labels`` are the gold 1..5 labels in ``preds`` order; by default they
    are derived from each prediction's target (:func:`gold_labels`).
    """
    preds = list(preds)
    if not preds:
        raise ValueError("summary of no predictions is undefined")
    first = preds[0]
    seen: set[str] = set()
    for p in preds:
        for key in ("model", "test_set", "dimension"):
            if getattr(p, key) != getattr(first, key):
                raise ValueError(
                    f"prediction {p.id!r} has {key} {getattr(p, key)!r}, but {first.id!r} has "
                    f"{getattr(first, key)!r}: summarise one model, test set and dimension at a time"
                )
        if p.target is None:
            raise ValueError(f"prediction {p.id!r} has no target: metrics need gold scores")
        if p.id in seen:
            raise ValueError(f"prediction id {p.id!r} occurs twice")
        seen.add(p.id)
    expected = np.array([p.expected for p in preds])
    target = np.array([p.target for p in preds], dtype=np.float64)
    argmax = np.array([p.argmax for p in preds], dtype=np.int64)
    gold = gold_labels(target) if labels is None else _labels(labels, "summary labels", N_LABELS)
    if gold.size != len(preds):
        raise ValueError(f"summary: {len(preds)} predictions but {gold.size} labels")
    probs = np.array([p.probs for p in preds], dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    confidence = probs[np.arange(len(preds)), argmax - 1]
    correct = argmax == gold
    out = {
        "n": len(preds),
        "mae": mae(expected, target),
        "mse": mse(expected, target),
        "mae_1to5": mae_1to5(expected, target),
        "mse_1to5": 16.0 * mse(expected, target),
        "spearman": spearman(expected, target),
        "qwk": qwk(argmax, gold),
        "accuracy": float(correct.mean()),
        "ece": ece(confidence, correct),
        "mean_expected": float(expected.mean()),
        "mean_target": float(target.mean()),
    }
    return {k: (v if k == "n" else _round(v)) for k, v in out.items()}


# --------------------------------------------------------------------------- bootstrap


def _ci_bounds(ci: float) -> tuple[float, float]:
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    return (1 - ci) / 2, 1 - (1 - ci) / 2


def _item_draws(rng: np.random.Generator, n: int, n_boot: int) -> Iterable[np.ndarray]:
    """Chunks of resampled item indices (rows of n), n_boot rows in all; the same stream for both bootstraps."""
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n))


def _result(diff: float, boot: np.ndarray, ci: float) -> dict[str, float]:
    lo_q, hi_q = _ci_bounds(ci)
    low, high = np.quantile(boot, [lo_q, hi_q])
    p_better = float((boot < 0).mean() + 0.5 * (boot == 0).mean())
    return {"diff": float(diff), "low": float(low), "high": float(high), "p_a_better": p_better}


def _check_boot(n_boot: int) -> None:
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")


def paired_bootstrap(
    err_a: Any, err_b: Any, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> dict[str, float]:
    """Paired item bootstrap of ``mean(err_a) − mean(err_b)`` (see the module docstring)."""
    _check_boot(n_boot)
    _ci_bounds(ci)
    a, b = _pair(err_a, err_b, "paired_bootstrap")
    d = a - b
    rng = np.random.default_rng(seed)
    boot = np.concatenate([d[idx].mean(axis=1) for idx in _item_draws(rng, d.size, n_boot)])
    return _result(float(a.mean() - b.mean()), boot, ci)


def _by_seed(errs: Any, what: str) -> np.ndarray:
    m = np.asarray(errs, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{what}: expected one row of per-item errors per seed, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{what}: errors must be finite")
    return m


def seed_bootstrap(
    errs_a_by_seed: Any, errs_b_by_seed: Any, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> dict[str, float]:
    """Two-level bootstrap (seeds and items) of the mean-error difference; one seed each = paired_bootstrap."""
    _check_boot(n_boot)
    _ci_bounds(ci)
    a, b = _by_seed(errs_a_by_seed, "seed_bootstrap A"), _by_seed(errs_b_by_seed, "seed_bootstrap B")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"seed_bootstrap: A has {a.shape[1]} items per seed, B {b.shape[1]}; both must be scored "
            "on the same items in the same order"
        )
    n = a.shape[1]
    diff = float(a.mean() - b.mean())
    if a.shape[0] == 1 and b.shape[0] == 1:
        return paired_bootstrap(a[0], b[0], n_boot=n_boot, seed=seed, ci=ci)
    rng_items = np.random.default_rng(seed)
    rng_seeds = np.random.default_rng([seed, 1])
    boots = []
    for idx in _item_draws(rng_items, n, n_boot):
        rows = idx.shape[0]
        # seed weights: how often each seed is drawn, over the number of seeds (rows sum to 1)
        wa = rng_seeds.multinomial(a.shape[0], np.full(a.shape[0], 1 / a.shape[0]), size=rows) / a.shape[0]
        wb = rng_seeds.multinomial(b.shape[0], np.full(b.shape[0], 1 / b.shape[0]), size=rows) / b.shape[0]
        per_item = wa @ a - wb @ b  # rows × n: each resample's seed-averaged difference per item
        boots.append(np.take_along_axis(per_item, idx, axis=1).mean(axis=1))
    return _result(diff, np.concatenate(boots), ci)


# --------------------------------------------------------------------------- the prior baseline


def label_prior(train_scores: Any) -> float:
    """The mean training score (normalised): the constant prediction with the lowest training MSE."""
    s = np.asarray(train_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("label_prior of no training scores is undefined")
    if not (np.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()):
        raise ValueError("training scores must be finite and within [0, 1]")
    return float(s.mean())


def prior_probs(prior: float) -> tuple[float, float, float, float, float]:
    """Five probabilities whose expected score is exactly ``prior``: mass split between the two nearest labels."""
    if not (math.isfinite(prior) and 0 <= prior <= 1):
        raise ValueError(f"prior {prior!r} is outside [0, 1]")
    e = 1 + 4 * prior
    lower = min(int(math.floor(e)), N_LABELS - 1)
    w = e - lower
    probs = [0.0] * N_LABELS
    probs[lower - 1] = 1 - w
    probs[lower] = w
    return tuple(probs)  # type: ignore[return-value]


def prior_predictions(
    examples: Iterable[Any], prior: float, *, test_set: str, model: str = "prior"
) -> list[Prediction]:
    """The prior baseline's Prediction for each example (``id``, ``dimension``, ``score`` as target)."""
    probs = prior_probs(prior)
    argmax = int(np.argmax(probs)) + 1
    out = [
        Prediction(
            id=ex.id,
            model=model,
            test_set=test_set,
            dimension=ex.dimension,
            probs=probs,
            expected=prior,
            argmax=argmax,
            target=ex.score,
        )
        for ex in examples
    ]
    if not out:
        raise ValueError(f"test set {test_set!r} is empty: no prior predictions")
    return out
