"""The human_eval stage's two costs: the group-bootstrap intervals and scoring one set with several fine-tunes.

Reproduce (from the repository root)::

    .venv/bin/python -m pytest -q benchmarks/test_bench_human_eval.py --benchmark-only \\
        --benchmark-columns=min,mean,median,stddev,rounds

``agreement_bootstrap``: the five agreement statistics of one rater with their 95% group-bootstrap intervals
(1000 resamples, seed 0) on the shape of the stage's HelpSteer slice: the first 363 responses of
``human/helpsteer/nvidia_HelpSteer_sample.jsonl`` (101 prompts, mostly 3-4 responses each), truth = their
``coherence`` (0-4, what ``naturalness`` maps to), groups = the prompt text, pred = a noisy function of the truth
on [0, 1] (fixed numpy seed).

* project: :func:`explainft.agreement.rating_agreement` with a :class:`~explainft.agreement.GroupBootstrap`
  (every resample at once, as weighted statistics of the resample counts);
* baseline ``textbook_bootstrap``: a Python loop over the same 1000 resamples (``boot.samples``) calling
  ``scipy.stats.spearmanr``, ``kendalltau`` and ``pearsonr`` and computing quadratic weighted kappa and MAE
  with numpy on each, then ``numpy.percentile``.

Both give the same intervals (checked once before timing, to 1e-9, for all five statistics).

``human_eval_prefixes``: scoring one human-rated set (naturalness) with the four fine-tunes of one cell family
that share the student's tokenizer, ``models/finetuned/mixed/naturalness/{none,assessment,confidence,both}/
seed_0/model`` (built by the pipeline; skipped with the reason when missing), on the first
``EXPLAINFT_BENCH_HUMAN_N`` (default 120) HelpSteer responses as conversations: long answers (56 to 607 student
tokens among the first 30, half over 200), each conversation encoded to fit ``max_length`` 640.

* project: :func:`explainft.stages.human_eval.model_scores` for each fine-tune with one shared
  :class:`~explainft.stages.human_eval.PrefixCache` created inside the timed function (the first fine-tune pays
  for encoding the set, the next three reuse it);
* baseline ``no_prefix_cache``: the same four calls with ``cache=None`` (each fine-tune re-encodes the set).

Both give identical scores (checked once before timing). Model loading is inside both timings, as in the stage.

The ratio is project time / baseline time (< 1: the project's way is faster).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import record as record_mean  # noqa: E402

from explainft.agreement import GroupBootstrap, rating_agreement  # noqa: E402
from explainft.human import load_human_set  # noqa: E402
from explainft.stages.human_eval import PrefixCache, model_scores, tokenizer_key  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELPSTEER = ROOT / "human" / "helpsteer"
SCALE = (0, 4)
N_RATINGS = 363
RESAMPLES = 1000
METRICS = ("spearman", "kendall", "pearson", "qwk", "mae")

STUDENT = ROOT / "models" / "student"
VARIANTS = ("none", "assessment", "confidence", "both")
FINETUNES = [ROOT / "models" / "finetuned" / "mixed" / "naturalness" / v / "seed_0" / "model" for v in VARIANTS]
N_HUMAN = int(os.environ.get("EXPLAINFT_BENCH_HUMAN_N", "120"))
MAX_LENGTH = 640
BATCH = 32


def record(benchmark, group: str, role: str) -> None:
    """conftest's record, except under ``--benchmark-disable`` (each function runs once, untimed: no stats)."""
    if benchmark.stats is not None:
        record_mean(benchmark, group, role)


# --------------------------------------------------------------------------- agreement_bootstrap


def _half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(np.round(x, 9) + 0.5).astype(np.int64)


def qwk(p: np.ndarray, t: np.ndarray, lo: int, hi: int) -> float:
    """Quadratic weighted kappa on the categories lo..hi (pred mapped to the scale, both rounded half up)."""
    k = hi - lo + 1
    observed = np.zeros((k, k))
    np.add.at(observed, (_half_up(lo + p * (hi - lo)) - lo, _half_up(t) - lo), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / p.size
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    den = (w * expected).sum()
    return float("nan") if den == 0 else 1 - (w * observed).sum() / den


def textbook_bootstrap(pred: np.ndarray, truth: np.ndarray, boot: GroupBootstrap) -> dict[str, tuple[float, float]]:
    """The baseline: each resample expanded and handed to scipy / numpy, then the 2.5 and 97.5 percentiles."""
    from scipy import stats

    lo, hi = SCALE
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    for idx in boot.samples:
        p, t = pred[idx], truth[idx]
        values["spearman"].append(stats.spearmanr(p, t)[0])
        values["kendall"].append(stats.kendalltau(p, t)[0])
        values["pearson"].append(stats.pearsonr(p, t)[0])
        values["qwk"].append(qwk(p, t, lo, hi))
        values["mae"].append(float(np.mean(np.abs(p - (t - lo) / (hi - lo)))))
    out = {}
    for m, v in values.items():
        a = np.asarray(v, dtype=np.float64)
        low, high = np.percentile(a[~np.isnan(a)], [2.5, 97.5])
        out[m] = (float(low), float(high))
    return out


@pytest.fixture(scope="module")
def ratings():
    """(pred, truth, boot) on the HelpSteer slice's shape; the two methods' intervals checked equal once."""
    lines = (HELPSTEER / "nvidia_HelpSteer_sample.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()][:N_RATINGS]
    truth = np.array([r["coherence"] for r in rows], dtype=np.float64)
    rng = np.random.default_rng(0)
    pred = np.clip(0.15 + 0.7 * truth / SCALE[1] + rng.normal(0.0, 0.15, truth.size), 0.0, 1.0)
    boot = GroupBootstrap([r["prompt"] for r in rows], RESAMPLES, 0)
    project = rating_agreement(pred, truth, scale=SCALE, boot=boot)
    baseline = textbook_bootstrap(pred, truth, boot)
    for m in METRICS:
        assert "undefined_resamples" not in project[m], m
        got = (project[m]["low"], project[m]["high"])
        assert got == pytest.approx(baseline[m], abs=1e-9, rel=0), (m, got, baseline[m])
    return pred, truth, boot


def test_agreement_bootstrap_project(benchmark, ratings):
    pred, truth, boot = ratings
    benchmark.pedantic(lambda: rating_agreement(pred, truth, scale=SCALE, boot=boot), rounds=5, warmup_rounds=1)
    record(benchmark, "agreement_bootstrap", "project")


def test_agreement_bootstrap_textbook(benchmark, ratings):
    pred, truth, boot = ratings
    benchmark.pedantic(lambda: textbook_bootstrap(pred, truth, boot), rounds=3, warmup_rounds=0)
    record(benchmark, "agreement_bootstrap", "baseline")


# --------------------------------------------------------------------------- human_eval_prefixes


def score_all(convs, shared: bool) -> dict[str, dict]:
    """The four fine-tunes' naturalness scores of ``convs``; with ``shared``, one PrefixCache made here."""
    cache = PrefixCache(convs, MAX_LENGTH, "after") if shared else None
    return {
        str(d): model_scores(
            d,
            convs,
            ["naturalness"],
            max_length=MAX_LENGTH,
            batch_size=BATCH,
            position="after",
            desc="bench",
            cache=cache,
            base=str(STUDENT),
        )
        for d in FINETUNES
    }


@pytest.fixture(scope="module")
def human_convs():
    """The first N_HUMAN HelpSteer responses as conversations; both ways checked to give identical scores once."""
    missing = [str(d.relative_to(ROOT)) for d in FINETUNES if not (d / "config.json").is_file()]
    if any((d / "adapter_config.json").is_file() for d in FINETUNES) and not STUDENT.is_dir():
        missing.append(str(STUDENT.relative_to(ROOT)) + " (the adapters' base)")
    if missing:
        pytest.skip(f"missing: {', '.join(missing)}; build them with `dvc repro` (the student and train stages)")
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer

    torch.set_num_threads(2)
    keys = {tokenizer_key(AutoTokenizer.from_pretrained(str(d))) for d in FINETUNES}
    assert len(keys) == 1, "the fine-tunes' tokenizers differ: a shared PrefixCache would encode once per tokenizer"
    human = load_human_set("helpsteer", HELPSTEER, "helpsteer")
    convs = [r.conversation for r in human.ratings[:N_HUMAN]]
    with_cache, without = score_all(convs, True), score_all(convs, False)
    assert with_cache == without
    assert all(len(s) == len(convs) for s in with_cache.values())
    return convs


def test_human_eval_prefixes_project(benchmark, human_convs):
    benchmark.pedantic(lambda: score_all(human_convs, True), rounds=2, iterations=1)
    record(benchmark, "human_eval_prefixes", "project")


def test_human_eval_prefixes_no_prefix_cache(benchmark, human_convs):
    benchmark.pedantic(lambda: score_all(human_convs, False), rounds=2, iterations=1)
    record(benchmark, "human_eval_prefixes", "baseline")
