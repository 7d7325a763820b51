"""Agreement statistics against scipy, hand-computed cases and a naive bootstrap (explainft.agreement)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from explainft.agreement import (
    PREFERENCE_METRICS,
    RATING_METRICS,
    GroupBootstrap,
    difference,
    preference_agreement,
    rating_agreement,
)


def values(result: dict) -> dict:
    return {m: result[m]["value"] for m in RATING_METRICS if m in result} | {
        m: result[m]["value"] for m in PREFERENCE_METRICS if m in result
    }


def tied_ratings(seed: int, n: int = 60, scale: tuple[int, int] = (1, 5)):
    """Truths that are means of two annotators (halves included) and rounded predictions: ties on both sides."""
    rng = np.random.default_rng(seed)
    lo, hi = scale
    truth = rng.integers(lo, hi + 1, size=(n, 2)).mean(axis=1)
    pred = np.clip((truth - lo) / (hi - lo) + rng.normal(0, 0.25, n), 0, 1).round(1)
    groups = [f"prompt{g}" for g in rng.integers(0, n // 4, n)]
    return pred, truth, groups


# --------------------------------------------------------------------------- correlations


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_correlations_match_scipy_with_ties(seed):
    pred, truth, _ = tied_ratings(seed)
    assert len(set(pred)) < pred.size and len(set(truth)) < truth.size  # the case has ties on both sides
    r = rating_agreement(pred, truth, scale=(1, 5))
    assert r["n"] == 60 and "groups" not in r
    assert r["spearman"]["value"] == pytest.approx(stats.spearmanr(pred, truth).statistic, abs=1e-12)
    assert r["kendall"]["value"] == pytest.approx(stats.kendalltau(pred, truth, variant="b").statistic, abs=1e-12)
    assert r["pearson"]["value"] == pytest.approx(stats.pearsonr(pred, truth).statistic, abs=1e-12)
    for m in RATING_METRICS:
        assert r[m]["low"] is None and r[m]["high"] is None


def test_kendall_tau_b_by_hand():
    # pred (1, 2, 2, 3), truth (1, 1, 2, 3): pairs 12 (x<, y=) tie in y, 13 C, 14 C, 23 tie in x, 24 C, 34 C
    # C = 4, D = 0, n0 = 6, n1 = 1 (x tie), n2 = 1 (y tie): tau-b = 4 / sqrt(5 * 5) = 0.8
    r = rating_agreement([0.0, 0.5, 0.5, 1.0], [1, 1, 2, 3], scale=(1, 3))
    assert r["kendall"]["value"] == pytest.approx(0.8)
    # Spearman: ranks (1, 2.5, 2.5, 4) and (1.5, 1.5, 3, 4): centred (-1.5, 0, 0, 1.5), (-1, -1, .5, 1.5)
    # Σxy = 1.5 + 2.25 = 3.75, Σx² = 4.5, Σy² = 1 + 1 + .25 + 2.25 = 4.5: rho = 3.75 / 4.5
    assert r["spearman"]["value"] == pytest.approx(3.75 / 4.5)


def test_perfect_and_reversed_agreement():
    truth = np.array([1, 2, 3, 4, 5, 2, 4])
    perfect = (truth - 1) / 4
    r = rating_agreement(perfect, truth, scale=(1, 5))
    assert values(r) == pytest.approx({"spearman": 1.0, "kendall": 1.0, "pearson": 1.0, "qwk": 1.0, "mae": 0.0})
    # reversed on the five categories once each: qwk is -1 too (Σw·O = 40/16, Σw·E = (1/5)·100/16);
    # mae = mean |1 - 2x| over x = 0, .25, .5, .75, 1 = (1 + .5 + 0 + .5 + 1) / 5
    truth = np.array([1, 2, 3, 4, 5])
    r = rating_agreement(1 - (truth - 1) / 4, truth, scale=(1, 5))
    assert values(r) == pytest.approx({"spearman": -1.0, "kendall": -1.0, "pearson": -1.0, "qwk": -1.0, "mae": 0.6})


def test_a_constant_side_or_too_few_items_is_none():
    r = rating_agreement([0.5, 0.5, 0.5], [1, 2, 3], scale=(1, 3))
    assert (r["spearman"]["value"], r["kendall"]["value"], r["pearson"]["value"]) == (None, None, None)
    assert r["qwk"]["value"] == pytest.approx(0.0)  # a constant prediction: observed = expected
    r = rating_agreement([0.1, 0.6, 0.9], [2, 2, 2], scale=(1, 3))
    assert (r["spearman"]["value"], r["kendall"]["value"], r["pearson"]["value"]) == (None, None, None)
    # both sides in one same category: kappa is undefined
    assert rating_agreement([0.5, 0.5], [2, 2], scale=(1, 3))["qwk"]["value"] is None
    one = rating_agreement([0.5], [2], scale=(1, 3))
    assert [one[m]["value"] for m in ("spearman", "kendall", "pearson", "qwk")] == [None] * 4
    assert one["mae"]["value"] == 0.0
    none = rating_agreement([], [], scale=(1, 3))
    assert none["n"] == 0 and all(none[m]["value"] is None for m in RATING_METRICS)
    json.dumps(none, allow_nan=False)


# --------------------------------------------------------------------------- weighted kappa and MAE


def test_qwk_of_a_3x3_confusion_by_hand():
    # rows: predicted category, columns: truth category (0, 1, 2), n = 10
    #   [[3, 1, 0],      row sums (4, 3, 3), column sums (4, 3, 3)
    #    [0, 2, 1],      weights (i-j)²/(k-1)² = [[0, .25, 1], [.25, 0, .25], [1, .25, 0]]
    #    [1, 0, 2]]      Σw·O = .25·(1 + 0 + 1 + 0) + 1·(0 + 1) = 1.5
    # E = outer(r, c)/10 = [[1.6, 1.2, 1.2], [1.2, .9, .9], [1.2, .9, .9]]
    # Σw·E = .25·(1.2 + 1.2 + .9 + .9) + 1·(1.2 + 1.2) = 3.45;  qwk = 1 - 1.5/3.45 = 13/23
    cells = {(0, 0): 3, (0, 1): 1, (1, 1): 2, (1, 2): 1, (2, 0): 1, (2, 2): 2}
    pairs = [pt for pt, count in cells.items() for _ in range(count)]
    pred = [p / 2 for p, _ in pairs]
    assert rating_agreement(pred, [t for _, t in pairs], scale=(0, 2))["qwk"]["value"] == pytest.approx(13 / 23)
    # the same categories on a scale 1..3
    assert rating_agreement(pred, [t + 1 for _, t in pairs], scale=(1, 3))["qwk"]["value"] == pytest.approx(13 / 23)


def test_qwk_rounds_halves_up_and_maps_pred_to_the_scale():
    # scale 1..5: truth 2.5 -> 3; pred 0.375 -> 1 + 0.375·4 = 2.5 -> 3: perfect agreement
    truth = [2.5, 1, 5]
    assert rating_agreement([0.375, 0.0, 1.0], truth, scale=(1, 5))["qwk"]["value"] == pytest.approx(1.0)
    # float noise below the half still goes up (rounded to 9 decimals first)
    below = float(np.nextafter(0.375, 0))
    assert rating_agreement([below, 0.0, 1.0], truth, scale=(1, 5))["qwk"]["value"] == pytest.approx(1.0)
    # 0.374 -> 2.496 -> 2, which disagrees with the truth's 3
    assert rating_agreement([0.374, 0.0, 1.0], truth, scale=(1, 5))["qwk"]["value"] < 1.0
    # scale 0..4: an annotators' mean of 2.5 is category 3, so is pred 0.75 (-> 3.0), not pred 0.5 (-> 2.0)
    assert rating_agreement([0.75, 0.0, 1.0], [2.5, 0, 4], scale=(0, 4))["qwk"]["value"] == pytest.approx(1.0)
    assert rating_agreement([0.5, 0.0, 1.0], [2.5, 0, 4], scale=(0, 4))["qwk"]["value"] < 1.0


def test_mae_is_on_the_normalised_scale():
    # truth (1, 4, 3) on 1..5 is (0, .75, .5): errors 0, .25, .5
    assert rating_agreement([0, 0.5, 1], [1, 4, 3], scale=(1, 5))["mae"]["value"] == pytest.approx(0.25)
    # on 0..1 the truth is already normalised
    assert rating_agreement([0.2, 0.9], [0, 1], scale=(0, 1))["mae"]["value"] == pytest.approx(0.15)


def test_values_within_the_tolerance_are_clipped():
    r = rating_agreement([1 + 1e-12, -1e-12], [5 + 1e-12, 1 - 1e-12], scale=(1, 5))
    assert r["mae"]["value"] == pytest.approx(0.0, abs=1e-15)


# --------------------------------------------------------------------------- preferences

BATTLES = [
    # pred_a, pred_b, human winner: what the rater earns
    (0.9, 0.1, "a"),  # agrees: 1
    (0.2, 0.7, "a"),  # disagrees: 0
    (0.5, 0.5, "b"),  # calls a tie: 0.5
    (0.3, 0.6, "b"),  # agrees: 1
    (0.4, 0.4, "tie"),  # a human tie the rater also calls
    (0.8, 0.2, "tie"),  # a human tie the rater decides
]


def test_preference_accuracy_counts_a_rater_tie_half():
    a, b, winner = zip(*BATTLES)
    r = preference_agreement(a, b, winner)
    assert (r["n"], r["decided"], r["human_ties"]) == (6, 4, 2)
    assert r["accuracy"] == {"value": pytest.approx((1 + 0 + 0.5 + 1) / 4), "low": None, "high": None}
    assert r["rater_tie_share"]["value"] == pytest.approx(1 / 4)
    assert r["tie_agreement"]["value"] == pytest.approx(1 / 2)


def test_preference_tie_margin():
    # differences 0.8 - 0.7 = 0.10000000000000009 and 0.3 - 0.2 = 0.09999999999999998 both count as 0.1
    a, b, winner = [0.8, 0.3, 0.9, 0.5], [0.7, 0.2, 0.1, 0.45], ["a", "a", "a", "b"]
    at = preference_agreement(a, b, winner, tie_margin=0.1)
    assert at["rater_tie_share"]["value"] == pytest.approx(3 / 4)  # 0.1, 0.1 and 0.05 are within the margin
    assert at["accuracy"]["value"] == pytest.approx((0.5 + 0.5 + 1 + 0.5) / 4)
    below = preference_agreement(a, b, winner, tie_margin=0.05)
    assert below["rater_tie_share"]["value"] == pytest.approx(1 / 4)  # only 0.05 is within 0.05
    assert below["accuracy"]["value"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    exact = preference_agreement(a, b, winner)
    assert exact["rater_tie_share"]["value"] == 0.0 and exact["accuracy"]["value"] == pytest.approx(3 / 4)


def test_preferences_without_decided_battles_or_human_ties_are_none():
    r = preference_agreement([0.5, 0.7], [0.5, 0.1], ["tie", "tie"])
    assert r["accuracy"]["value"] is None and r["rater_tie_share"]["value"] is None
    assert r["tie_agreement"]["value"] == pytest.approx(0.5)
    r = preference_agreement([0.5, 0.7], [0.5, 0.1], ["a", "b"])
    assert r["tie_agreement"]["value"] is None and r["accuracy"]["value"] == pytest.approx(0.25)
    json.dumps(r, allow_nan=False)


# --------------------------------------------------------------------------- the bootstrap


def test_bootstrap_is_deterministic_for_a_seed():
    pred, truth, groups = tied_ratings(5)
    one, two = GroupBootstrap(groups, 50, seed=7), GroupBootstrap(groups, 50, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(one.samples, two.samples))
    assert rating_agreement(pred, truth, (1, 5), one) == rating_agreement(pred, truth, (1, 5), two)
    other = GroupBootstrap(groups, 50, seed=8)
    assert not all(np.array_equal(x, y) for x, y in zip(one.samples, other.samples))


def test_groups_travel_together():
    groups = ["p1", "p2", "p1", "p3", "p3", "p3", "p4"]
    members = {g: [i for i, h in enumerate(groups) if h == g] for g in set(groups)}
    boot = GroupBootstrap(groups, 30, seed=1)
    assert (boot.n, boot.groups, boot.resamples, len(boot.samples)) == (7, 4, 30, 30)
    for b, sample in enumerate(boot.samples):
        rest, drawn = list(sample), 0
        while rest:  # the sample is whole groups one after the other, in their item order
            block = members[groups[rest[0]]]
            assert rest[: len(block)] == block
            rest, drawn = rest[len(block) :], drawn + 1
        assert drawn == boot.groups
        assert np.array_equal(np.bincount(sample, minlength=7), boot.counts[b])


def test_no_resamples_gives_no_interval():
    pred, truth, groups = tied_ratings(6)
    boot = GroupBootstrap(groups, 0, seed=0)
    r = rating_agreement(pred, truth, (1, 5), boot)
    assert r["groups"] == boot.groups and boot.samples == []
    assert values(r) == values(rating_agreement(pred, truth, (1, 5)))
    assert all(
        r[m]["low"] is None and r[m]["high"] is None and "undefined_resamples" not in r[m] for m in RATING_METRICS
    )


def reference_rating(metric: str, pred: np.ndarray, truth: np.ndarray, lo: int, hi: int) -> float:
    """One statistic of one (expanded) sample, the plain way: scipy and explicit loops."""
    if metric == "mae":
        return float(np.mean(np.abs(pred - (truth - lo) / (hi - lo))))
    if metric == "qwk":
        k = hi - lo + 1
        observed = np.zeros((k, k))
        for p, t in zip(pred, truth):
            observed[math.floor(round(p * (hi - lo), 9) + 0.5), math.floor(round(t - lo, 9) + 0.5)] += 1
        expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(pred)
        weight = np.array([[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)])
        return float(1 - (weight * observed).sum() / (weight * expected).sum())
    if len(set(pred)) < 2 or len(set(truth)) < 2:
        return math.nan
    fn = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}[metric]
    return float(fn(pred, truth).statistic)


def percentile_interval(draws: list[float], ci: float = 0.95) -> tuple[float, float]:
    ok = [d for d in draws if not math.isnan(d)]
    low, high = np.percentile(ok, [50 * (1 - ci), 50 * (1 + ci)])
    return float(low), float(high)


def test_intervals_equal_a_naive_bootstrap_of_the_index_arrays():
    pred, truth, groups = tied_ratings(9, n=80)
    boot = GroupBootstrap(groups, 120, seed=3)
    r = rating_agreement(pred, truth, (1, 5), boot, ci=0.9)
    assert r["groups"] == len(set(groups))
    for m in RATING_METRICS:
        naive = [reference_rating(m, pred[s], truth[s], 1, 5) for s in boot.samples]
        low, high = percentile_interval(naive, ci=0.9)
        assert (r[m]["low"], r[m]["high"]) == (pytest.approx(low, abs=1e-10), pytest.approx(high, abs=1e-10)), m
        assert r[m]["low"] <= r[m]["value"] <= r[m]["high"], m  # a well-behaved case
        assert "undefined_resamples" not in r[m]


def test_preference_intervals_equal_a_naive_bootstrap():
    rng = np.random.default_rng(4)
    n = 90
    a, b = rng.integers(0, 5, n) / 4, rng.integers(0, 5, n) / 4
    winner = np.where(rng.random(n) < 0.2, "tie", np.where(a + rng.normal(0, 0.3, n) > b, "a", "b"))
    boot = GroupBootstrap([f"m{i % 30}" for i in range(n)], 100, seed=2)
    r = preference_agreement(a, b, list(winner), boot)
    naive = {m: [] for m in PREFERENCE_METRICS}
    for s in boot.samples:
        one = preference_agreement(a[s], b[s], list(winner[s]))
        for m in PREFERENCE_METRICS:
            naive[m].append(math.nan if one[m]["value"] is None else one[m]["value"])
    for m in PREFERENCE_METRICS:
        low, high = percentile_interval(naive[m])
        assert (r[m]["low"], r[m]["high"]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12)), m


def test_undefined_resamples_are_left_out_and_counted():
    # two groups: pred is constant inside each, so a resample drawing one group twice has a constant pred
    groups = ["x"] * 4 + ["y"] * 4
    pred = [0.2] * 4 + [0.8] * 4
    truth = [1, 2, 3, 4, 2, 3, 4, 5]
    seen = set()
    for seed in range(40):
        boot = GroupBootstrap(groups, 9, seed=seed)
        undefined = sum(len(set(np.asarray(groups)[s])) == 1 for s in boot.samples)
        s = rating_agreement(pred, truth, (1, 5), boot)["spearman"]
        assert s.get("undefined_resamples", 0) == undefined
        assert (s["low"] is None) == (2 * undefined > 9)
        seen.add(s["low"] is None)
    assert seen == {True, False}
    # a point estimate that is undefined is undefined on every resample
    r = rating_agreement([0.5] * 8, truth, (1, 5), GroupBootstrap(groups, 9, seed=0))
    assert r["pearson"] == {"value": None, "low": None, "high": None, "undefined_resamples": 9}
    json.dumps(r, allow_nan=False)


# --------------------------------------------------------------------------- paired differences


def test_difference_of_a_rater_with_itself_is_exactly_zero():
    pred, truth, groups = tied_ratings(10)
    boot = GroupBootstrap(groups, 200, seed=0)
    for m in RATING_METRICS:
        assert difference(m, pred, pred, truth, boot, scale=(1, 5)) == {"value": 0.0, "low": 0.0, "high": 0.0}
    a, b, winner = zip(*BATTLES * 5)
    pboot = GroupBootstrap([str(i % 7) for i in range(30)], 100, seed=0)
    for m in PREFERENCE_METRICS:
        d = difference(m, (a, b), (a, b), winner, pboot, kind="preferences")
        assert (d["value"], d["low"], d["high"]) == (0.0, 0.0, 0.0)


def test_difference_of_two_raters_is_paired_and_has_the_sign_of_the_point_difference():
    pred, truth, groups = tied_ratings(11, n=120)
    rng = np.random.default_rng(0)
    good = np.clip((truth - 1) / 4 + rng.normal(0, 0.05, truth.size), 0, 1)
    boot = GroupBootstrap(groups, 200, seed=1)
    for m in RATING_METRICS:
        d = difference(m, good, pred, truth, boot, scale=(1, 5))
        x, y = (rating_agreement(p, truth, (1, 5))[m]["value"] for p in (good, pred))
        assert d["value"] == pytest.approx(x - y)
        assert np.sign(d["value"]) == np.sign(x - y) != 0
        assert np.sign(d["low"]) == np.sign(d["high"]) == np.sign(x - y), m  # a clear difference excludes 0
    # paired: the resampled differences are those of the same resamples
    naive = [
        reference_rating("kendall", good[s], truth[s], 1, 5) - reference_rating("kendall", pred[s], truth[s], 1, 5)
        for s in boot.samples
    ]
    low, high = percentile_interval(naive)
    d = difference("kendall", good, pred, truth, boot, scale=(1, 5))
    assert (d["low"], d["high"]) == (pytest.approx(low, abs=1e-10), pytest.approx(high, abs=1e-10))


def test_difference_of_preferences():
    a, b, winner = zip(*BATTLES)
    flipped = (b, a)  # agrees exactly where the rater disagreed
    d = difference("accuracy", (a, b), flipped, winner, None, kind="preferences")
    assert d == {"value": pytest.approx(0.625 - 0.375), "low": None, "high": None}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("pred", "truth", "scale", "message"),
    [
        ([0.1, 0.2, 0.3], [1, 2, 3, 4], (1, 5), "pred has 3 items, truth has 4 items"),
        ([0.1, float("nan"), 0.3], [1, 2, 3], (1, 5), r"pred\[1\] is nan"),
        ([0.1, 0.2, 0.3], [1, 2, float("inf")], (1, 5), r"truth\[2\] is inf"),
        ([0.1, 1.2, 0.3], [1, 2, 3], (1, 5), r"pred\[1\] = 1.2 is outside \[0, 1\]"),
        ([0.1, 0.2, 0.3], [1, 6, 3], (1, 5), r"truth\[1\] = 6.0 is outside the scale \[1, 5\]"),
        ([0.1, 0.2, 0.3], [1, 2, 3], (1, 4.5), "scale bound hi must be an integer, got 4.5"),
        ([0.1, 0.2, 0.3], [1, 2, 3], (True, 5), "scale bound lo must be an integer"),
        ([0.1, 0.2, 0.3], [1, 2, 3], (5, 1), r"needs lo < hi"),
        ([0.1, 0.2, 0.3], [1, 2, 3], (1,), "scale must be a pair"),
        ([[0.1], [0.2]], [1, 2], (1, 5), "pred must be one-dimensional"),
    ],
)
def test_bad_ratings_name_what_and_where(pred, truth, scale, message):
    with pytest.raises(ValueError, match=message):
        rating_agreement(pred, truth, scale=scale)


def test_bad_preferences_name_what_and_where():
    with pytest.raises(ValueError, match=r"winner\[1\] is 'A': expected 'a', 'b' or 'tie'"):
        preference_agreement([0.1, 0.2], [0.3, 0.4], ["a", "A"])
    with pytest.raises(ValueError, match=r"winner\[0\] is None"):
        preference_agreement([0.1], [0.3], [None])
    with pytest.raises(ValueError, match="pred_a has 2 items, pred_b has 1 items, winner has 2 items"):
        preference_agreement([0.1, 0.2], [0.3], ["a", "b"])
    with pytest.raises(ValueError, match=r"pred_b\[0\] is nan"):
        preference_agreement([0.1], [float("nan")], ["a"])
    with pytest.raises(ValueError, match="tie_margin must be a finite number >= 0, got -0.1"):
        preference_agreement([0.1], [0.2], ["a"], tie_margin=-0.1)


def test_bad_bootstrap_and_difference_arguments():
    with pytest.raises(ValueError, match=r"groups\[1\] is 3: a group must be a string"):
        GroupBootstrap(["a", 3], 10, seed=0)
    with pytest.raises(ValueError, match="resamples must be a non-negative integer, got -1"):
        GroupBootstrap(["a"], -1, seed=0)
    with pytest.raises(ValueError, match="at least one item"):
        GroupBootstrap([], 10, seed=0)
    boot = GroupBootstrap(["a", "b"], 10, seed=0)
    with pytest.raises(ValueError, match="the bootstrap was built on 2 items but pred has 3"):
        rating_agreement([0.1, 0.2, 0.3], [1, 2, 3], (1, 5), boot)
    with pytest.raises(ValueError, match="ci must be a number strictly between 0 and 1, got 95"):
        rating_agreement([0.1, 0.2], [1, 2], (1, 5), boot, ci=95)
    with pytest.raises(ValueError, match="unknown rating metric 'accuracy'"):
        difference("accuracy", [0.1, 0.2], [0.1, 0.2], [1, 2], boot, scale=(1, 5))
    with pytest.raises(ValueError, match="needs the scale"):
        difference("qwk", [0.1, 0.2], [0.1, 0.2], [1, 2], boot)
    with pytest.raises(ValueError, match=r"y\[1\] = 1.5 is outside \[0, 1\]"):
        difference("qwk", [0.1, 0.2], [0.1, 1.5], [1, 2], boot, scale=(1, 5))
    with pytest.raises(ValueError, match="unknown preference metric 'qwk'"):
        difference("qwk", ([0.1], [0.2]), ([0.1], [0.2]), ["a"], None, kind="preferences")
    with pytest.raises(ValueError, match=r"x must be a pair \(pred_a, pred_b\)"):
        difference("accuracy", [0.1], ([0.1], [0.2]), ["a"], None, kind="preferences")
    with pytest.raises(ValueError, match="kind must be 'ratings' or 'preferences'"):
        difference("mae", [0.1], [0.1], [1], None, scale=(1, 5), kind="pairs")
