"""Rating metrics and bootstrap intervals against hand-computed values (explainft.metrics)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from explainft.metrics import (
    ece,
    gold_labels,
    label_prior,
    mae,
    mae_1to5,
    mse,
    paired_bootstrap,
    prior_predictions,
    prior_probs,
    qwk,
    rank_average,
    seed_bootstrap,
    spearman,
    summary,
)
from explainft.records import Example, Prediction, Turn

# --------------------------------------------------------------------------- point metrics


def test_mae_mse_by_hand():
    pred, target = [0.0, 0.5, 1.0], [0.25, 0.5, 0.5]
    # |errors| = .25, 0, .5 -> mae .25; squares .0625, 0, .25 -> mse .3125 / 3
    assert mae(pred, target) == pytest.approx(0.25)
    assert mse(pred, target) == pytest.approx(0.3125 / 3)
    assert mae_1to5(pred, target) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal lengths"):
        mae([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="no items"):
        mse([], [])


def test_spearman_with_ties_by_hand():
    # ranks x = 1, 2.5, 2.5, 4 and y = 1, 3, 2, 4; centred: (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5)
    # sxy = 4.5, sxx = 4.5, syy = 5 -> rho = 4.5 / sqrt(22.5) = sqrt(0.9)
    assert rank_average([1, 2, 2, 3]).tolist() == [1, 2.5, 2.5, 4]
    assert rank_average([3, 1, 3, 3, 2]).tolist() == [4, 1, 4, 4, 2]
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([0.5, 0.5, 0.5], [1, 2, 3]) is None  # constant
    assert spearman([1], [2]) is None


def test_spearman_matches_scipy_or_pandas_on_tied_data():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 200), rng.integers(0, 4, 200) + 0.5 * rng.integers(0, 2, 200)
    if importlib.util.find_spec("scipy") is not None:
        from scipy.stats import spearmanr

        ref = spearmanr(x, y).statistic
    else:  # golden.spearman ranks with pandas (average ties)
        from explainft.golden import spearman as ref_spearman

        ref = ref_spearman(x.tolist(), y.tolist())
    assert spearman(x, y) == pytest.approx(ref, abs=1e-12)


def test_qwk_by_hand():
    # O has (1,1), (2,2), (3,4): sum w*O = (3-4)^2/16 = 1/16
    # E = 1/3 on rows {1,2,3} x cols {1,2,4}: sum (i-j)^2 = 10 + 5 + 6 = 21 -> sum w*E = 21/48
    # kappa = 1 - (1/16) / (21/48) = 1 - 1/7 = 6/7
    assert qwk([1, 2, 3], [1, 2, 4]) == pytest.approx(6 / 7)
    assert qwk([1, 3, 5, 2, 2], [1, 3, 5, 2, 2]) == pytest.approx(1.0)
    assert qwk([3, 3, 3], [1, 3, 5]) == pytest.approx(0.0)  # a constant rater agrees only by chance
    assert qwk([2, 2], [2, 2]) is None  # undefined
    assert qwk([1, 5], [5, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="1..5"):
        qwk([0, 1], [1, 1])


def test_ece_on_a_constructed_case():
    conf = [0.95, 0.95, 0.55, 0.55, 0.25]
    correct = [1, 0, 1, 1, 0]
    # bin (.9, 1]: acc .5 vs conf .95 -> .45 * 2/5 = .18; bin (.5, .6]: 1 vs .55 -> .45 * 2/5 = .18;
    # bin (.2, .3]: 0 vs .25 -> .25 * 1/5 = .05; total .41
    assert ece(conf, correct) == pytest.approx(0.41)
    assert ece([0.8] * 5, [1, 1, 1, 1, 0]) == pytest.approx(0.0)  # calibrated
    # 0.3 lies in (.2, .3] together with .25 (not alone in (.3, .4]): |0 - .275| = .275
    assert ece([0.3, 0.25], [0, 0]) == pytest.approx(0.275)


def test_gold_labels_round_half_up_like_merge():
    from explainft.merge import to_label

    grid = [i / 48 for i in range(49)] + [0.125, 0.375, 0.625, 0.875, 0.37499999999999994]
    assert gold_labels(grid).tolist() == [to_label(t) for t in grid]
    assert gold_labels([0.0, 0.125, 0.375, 1.0]).tolist() == [1, 2, 3, 5]


def pred(i, expected, target, probs=None, argmax=None, **kw):
    if probs is None:
        probs = [0.0] * 5
        probs[round(expected * 4)] = 1.0
    if argmax is None:
        argmax = int(np.argmax(probs)) + 1
    base = dict(
        id=f"t/{i}",
        model="m",
        test_set="test",
        dimension="on_topic",
        probs=probs,
        expected=expected,
        argmax=argmax,
        target=target,
    )
    base.update(kw)
    return Prediction(**base)


def test_summary_rounds_and_uses_gold_labels_from_targets():
    preds = [
        pred(0, 0.5, 0.5, probs=[0, 0.1, 0.8, 0.1, 0]),  # argmax 3, gold 3, conf .8
        pred(1, 0.75, 1.0, probs=[0, 0, 0.2, 0.6, 0.2]),  # argmax 4, gold 5, conf .6
        pred(2, 0.25, 0.125, probs=[0.3, 0.4, 0.3, 0, 0]),  # argmax 2, gold 2 (0.125 rounds up), conf .4
    ]
    s = summary(preds)
    assert s["n"] == 3
    # errors .0, .25, .125
    assert s["mae"] == round(0.375 / 3, 6) and s["mse"] == round((0.0625 + 0.015625) / 3, 6)
    assert s["mae_1to5"] == round(0.5, 6)
    assert s["accuracy"] == round(2 / 3, 6)
    # bins: .4 -> (.3,.4] acc 1; .6 -> (.5,.6] acc 0; .8 -> (.7,.8] acc 1: (.6 + .6 + .2) / 3
    assert s["ece"] == round(1.4 / 3, 6)
    assert s["qwk"] == round(qwk([3, 4, 2], [3, 5, 2]), 6)
    assert s["spearman"] == 1.0
    assert all(isinstance(v, float) and v == round(v, 6) for k, v in s.items() if k != "n" and v is not None)
    # explicit labels win over the targets
    assert summary(preds, labels=[3, 4, 2])["accuracy"] == 1.0


def test_summary_refuses_mixed_or_unlabelled_predictions():
    with pytest.raises(ValueError, match="no predictions"):
        summary([])
    with pytest.raises(ValueError, match="'t/1' has model 'other'"):
        summary([pred(0, 0.5, 0.5), pred(1, 0.5, 0.5, model="other")])
    with pytest.raises(ValueError, match="'t/0' has no target"):
        summary([pred(0, 0.5, None)])
    with pytest.raises(ValueError, match="twice"):
        summary([pred(0, 0.5, 0.5), pred(0, 0.5, 0.5)])


# --------------------------------------------------------------------------- bootstrap


def test_paired_bootstrap_uses_the_same_items_for_both():
    rng = np.random.default_rng(1)
    err_a = rng.random(300) * 0.2
    # a constant shift: every paired resample differs by exactly the shift, so the interval collapses onto it
    r = paired_bootstrap(err_a, err_a + 0.05, n_boot=500)
    assert r["diff"] == pytest.approx(-0.05)
    assert r["low"] == pytest.approx(-0.05) and r["high"] == pytest.approx(-0.05)
    assert r["p_a_better"] == 1.0


def test_paired_bootstrap_interval_covers_a_known_difference_and_narrows_with_less_noise():
    rng = np.random.default_rng(2)
    err_a = rng.random(2000) * 0.2
    small = paired_bootstrap(err_a, err_a + 0.05 + rng.normal(0, 0.01, 2000), n_boot=1000)
    big = paired_bootstrap(err_a, err_a + 0.05 + rng.normal(0, 0.3, 2000), n_boot=1000)
    for r in (small, big):
        assert r["low"] <= r["diff"] <= r["high"]
    assert small["low"] < -0.05 < small["high"]
    assert small["high"] - small["low"] < 0.002  # ~ 2 * 1.96 * 0.01 / sqrt(2000) = 0.0009
    assert big["high"] - big["low"] > 10 * (small["high"] - small["low"])
    assert small["p_a_better"] == 1.0
    # reproducible, and the seed matters
    assert paired_bootstrap(err_a, err_a + 0.01, n_boot=200, seed=3) == paired_bootstrap(
        err_a, err_a + 0.01, n_boot=200, seed=3
    )


def test_paired_bootstrap_no_difference_is_a_coin_flip():
    rng = np.random.default_rng(4)
    a = rng.random(500)
    b = a[::-1].copy()  # the same errors on other items: equal means
    r = paired_bootstrap(a, b, n_boot=1000)
    assert r["diff"] == pytest.approx(0.0, abs=1e-12)
    assert r["low"] < 0 < r["high"]
    assert 0.35 < r["p_a_better"] < 0.65
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap(a, b[:-1])
    with pytest.raises(ValueError, match="ci"):
        paired_bootstrap(a, b, ci=1.5)


def test_seed_bootstrap_one_seed_equals_paired_and_disagreeing_seeds_widen_it():
    rng = np.random.default_rng(5)
    base = rng.random(400) * 0.2
    b = base + 0.02 + rng.normal(0, 0.02, 400)
    a = base + rng.normal(0, 0.02, 400)
    assert seed_bootstrap([a], [b], n_boot=300, seed=7) == paired_bootstrap(a, b, n_boot=300, seed=7)
    assert seed_bootstrap(a, b, n_boot=300, seed=7) == paired_bootstrap(a, b, n_boot=300, seed=7)  # 1-D = one seed
    # three seeds of A that disagree by +-0.03 (their mean is a): the interval must widen
    seeds_a = [a - 0.03, a, a + 0.03]
    seeds_b = [b, b + 0.001, b - 0.001]
    two = seed_bootstrap(seeds_a, seeds_b, n_boot=1000)
    one = paired_bootstrap(np.mean(seeds_a, axis=0), np.mean(seeds_b, axis=0), n_boot=1000)
    assert two["diff"] == pytest.approx(one["diff"])
    assert (two["high"] - two["low"]) > 3 * (one["high"] - one["low"])
    assert two["low"] <= two["diff"] <= two["high"]
    with pytest.raises(ValueError, match="same items"):
        seed_bootstrap([a], [b[:-1]])


# --------------------------------------------------------------------------- the prior baseline


def test_label_prior_and_prior_predictions():
    assert label_prior([0.0, 0.25, 1.0]) == pytest.approx(0.4166666667)
    with pytest.raises(ValueError):
        label_prior([])
    assert prior_probs(0.375) == (0.0, 0.5, 0.5, 0.0, 0.0)  # E = 2.5
    assert prior_probs(1.0) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert prior_probs(0.0) == (1.0, 0.0, 0.0, 0.0, 0.0)
    for p in (0.1, 0.3, 0.62, 0.9):
        probs = prior_probs(p)
        assert sum(probs) == pytest.approx(1) and (sum(k * q for k, q in enumerate(probs, 1)) - 1) / 4 == pytest.approx(
            p
        )
    exs = [
        Example(
            id=f"x/{i}",
            dataset="d",
            dimension="on_topic",
            turns=(Turn("user", "hi"), Turn("assistant", "hello")),
            score=s,
            label=1 + round(4 * s),
            assessment="",
            confidence="",
        )
        for i, s in enumerate([0.0, 0.5, 1.0])
    ]
    preds = prior_predictions(exs, 0.6, test_set="test")
    assert [p.expected for p in preds] == [0.6] * 3 and {p.argmax for p in preds} == {3}
    s = summary(preds)
    assert s["mae"] == round((0.6 + 0.1 + 0.4) / 3, 6) and s["qwk"] == 0.0
