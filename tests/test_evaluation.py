"""Evaluation (explainft.evaluation) and the report (explainft.report): values, baselines, bad input, determinism."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT

from explainft.config import evaluate_config, golden_path, split_sets  # noqa: E402
from explainft.errors import ConfigError
from explainft.evaluation import load_test_sets
from explainft.provenance import Provenance
from explainft.records import Prediction, read_jsonl, write_jsonl
from explainft.report import Grid, build_report, paper_wins, row_label

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


# --------------------------------------------------------------------------- config and test sets


@pytest.mark.parametrize(
    "change, key",
    [
        ({"batch": 8}, "evaluate.batch"),
        ({"batch_size": 0}, "evaluate.batch_size"),
        ({"ci": 1.5}, "evaluate.ci"),
        ({"ci": "95%"}, "evaluate.ci"),
        ({"bootstrap": 10}, "evaluate.bootstrap"),
    ],
)
def test_evaluate_config_errors_name_the_key(change, key):
    p = copy.deepcopy(PARAMS)
    p["evaluate"].update(change)
    with pytest.raises(ConfigError) as e:
        evaluate_config(p)
    assert e.value.key == key


def test_empty_or_wrong_dimension_test_split_is_an_error(tmp_path):
    from test_training_stages import DIMS, ex

    p = copy.deepcopy(PARAMS)
    p["split"]["mixed"] = False
    for s in ("chatterbot", "chatterbot_perturbed"):
        for dim in DIMS:
            write_jsonl(tmp_path / "data/splits" / s / dim / "test.jsonl", [ex(i, dim, None) for i in range(3)])
    assert {k: len(v) for k, v in load_test_sets(split_sets(p), golden_path(p), "on_topic", tmp_path).items()} == {
        "chatterbot": 3,
        "chatterbot_perturbed": 3,
    }
    write_jsonl(tmp_path / "data/splits/chatterbot_perturbed/on_topic/test.jsonl", [])
    with pytest.raises(ConfigError, match="is empty"):
        load_test_sets(split_sets(p), golden_path(p), "on_topic", tmp_path)
    write_jsonl(tmp_path / "data/splits/chatterbot_perturbed/on_topic/test.jsonl", [ex(1, "naturalness", None)])
    with pytest.raises(ConfigError, match="rated on 'naturalness'"):
        load_test_sets(split_sets(p), golden_path(p), "on_topic", tmp_path)


# --------------------------------------------------------------------------- evaluate and baselines, for real


@pytest.fixture
def trained(tmp_path):
    """A tiny student and one fine-tuned cell, as the stages leave them."""
    from test_training_stages import make_project

    from explainft.stages.finetune import run as run_finetune
    from explainft.stages.student import run as run_student

    params = make_project(tmp_path, n_test=5)
    run_student(params, tmp_path)
    run_finetune(params, "chatterbot", "on_topic", "assessment", 0, tmp_path)
    return tmp_path, params


def test_analyse_compares_the_explanation_and_score_only_models(trained, monkeypatch, capsys):
    from explainft.config import analysis_config
    from explainft.stages.analyse import run as run_analyse
    from explainft.stages.finetune import run as run_finetune

    root, params = trained
    run_finetune(params, "chatterbot", "on_topic", "none", 0, root)
    params["analysis"] = {"lens_items": 3, "batch_size": 2, "heatmaps": "chatterbot"}
    monkeypatch.setenv("EXPLAINFT_PROGRESS", "plain")
    capsys.readouterr()
    m = run_analyse(params, root)
    # progress in a log: plain lines, ending with the count of models (the pair's two) and the last one's name
    err = capsys.readouterr().err
    assert "analyse: done, 2 models in" in err and "model=chatterbot/on_topic/none/seed_0" in err
    assert m["pairs"] == 1 and m["blocks"] == ["block_1"]  # a one-block student: the last block alone
    w = m["weights"]["chatterbot/on_topic/seed_0"]
    assert max(w.values()) == pytest.approx(1.0) and set(w) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert abs(m["entropy"]["chatterbot/on_topic/seed_0"]["block_1"]) == pytest.approx(1.0)
    # the lens's cost against plain scoring is a timing: in timings/analysis.json, never in the metrics
    assert "lens_cost_vs_scoring" not in m and "lens_cost_vs_scoring" not in json.loads(
        (root / "metrics/analysis.json").read_text()
    )
    t = json.loads((root / "timings/analysis.json").read_text())
    assert set(t) == {"lens_seconds", "scoring_seconds", "lens_cost_vs_scoring"}
    assert t["lens_seconds"] > 0 and t["scoring_seconds"] > 0
    assert abs(t["lens_cost_vs_scoring"] - t["lens_seconds"] / t["scoring_seconds"]) < 0.006  # rounded to 2 places
    out = root / "plots/analysis"
    assert (out / "weights_chatterbot_on_topic.png").is_file() and (
        out / "ranks_chatterbot_on_topic_none.png"
    ).is_file()
    rows = (out / "entropy_by_block.csv").read_text().splitlines()
    assert rows[0] == "dimension,set,seed,variant,block,entropy,mean_rank" and len(rows) == 3
    with pytest.raises(ConfigError) as e:
        analysis_config({"analysis": {"lens_item": 3}})
    assert e.value.key == "analysis.lens_item"


def test_evaluate_and_baselines_write_predictions_and_metrics(trained):
    from explainft.stages.baselines import run as run_baselines
    from explainft.stages.evaluate import run as run_evaluate

    root, params = trained
    m = run_evaluate(params, "chatterbot", "on_topic", "assessment", 0, root)
    assert set(m["test"]) == {"chatterbot", "chatterbot_perturbed"}
    preds = list(
        read_jsonl(
            root / "data/predictions/finetuned/chatterbot/on_topic/assessment/seed_0/chatterbot.jsonl", Prediction
        )
    )
    assert len(preds) == 5 and all(abs(sum(p.probs) - 1) < 1e-6 for p in preds)
    assert m["test"]["chatterbot"]["mse"] == pytest.approx(
        np.mean([(p.expected - p.target) ** 2 for p in preds]), abs=1e-6
    )
    saved = json.loads((root / "metrics/evaluate/finetuned/chatterbot/on_topic/assessment/seed_0.json").read_text())
    assert saved["test"]["chatterbot"]["n"] == 5
    assert "rationales_incomplete" not in saved["test"]["chatterbot"]  # layout "after": the metrics as they were
    b = run_baselines(params, "on_topic", root)
    train_mean = np.mean([(5 - 1) / 4 if i % 2 == 0 else 0.0 for i in range(8)])  # GOOD=5 on even ids, BAD=1
    assert b["prior_value"]["chatterbot"] == pytest.approx(train_mean)
    prior = list(read_jsonl(root / "data/predictions/baselines/on_topic/prior/chatterbot.jsonl", Prediction))
    assert all(p.expected == pytest.approx(train_mean) for p in prior)
    # targets alternate 1 and 0 around a prior of 0.5: squared error 0.25 each
    assert b["prior"]["chatterbot"]["mse"] == pytest.approx(0.25)
    assert set(b["untuned"]) == {"chatterbot", "chatterbot_perturbed"}
    with pytest.raises(ConfigError) as e:
        run_evaluate(params, "chatterbot", "on_topic", "shuffle", 0, root)
    assert e.value.key == "train.variants"


@pytest.fixture
def one_thread():
    """One intra-op thread: the tiny model's small ops are much slower with 2 spinning OpenMP threads on 2 cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_before_layout_is_scored_after_the_models_own_rationale_in_every_stage(tmp_path, one_thread):
    """train.explanation_position: before reaches scoring in finetune (validation), evaluate, baselines and
    analyse: each reads the score after the model's own greedy rationale, where training put it."""
    from test_scoring import before_by_hand
    from test_training_stages import make_project

    from explainft.analysis.logit_lens import logit_lens
    from explainft.records import Example
    from explainft.scoring import load_rater
    from explainft.stages.analyse import run as run_analyse
    from explainft.stages.baselines import run as run_baselines
    from explainft.stages.evaluate import run as run_evaluate
    from explainft.stages.finetune import run as run_finetune
    from explainft.stages.student import run as run_student

    root = tmp_path
    params = make_project(root, n_test=3)
    # room for the untuned student's 128 tokens of noise (its cut multi-byte characters re-tokenise to 3 tokens
    # each), so that no rationale has to be cut to fit (that is tests/test_scoring.py's)
    params["train"].update(explanation_position="before", max_length=1000)
    params["analysis"] = {"lens_items": 2, "batch_size": 2, "heatmaps": "chatterbot"}
    run_student(params, root)
    for v in ("assessment", "none"):
        run_finetune(params, "chatterbot", "on_topic", v, 0, root)
    student = str(root / "models/student")
    test = list(read_jsonl(root / "data/splits/chatterbot/on_topic/test.jsonl", Example))

    def check(preds, model, tok):
        complete = []
        for p, ex in zip(preds, test, strict=True):
            _, done, _, probs = before_by_hand(model, tok, ex, 128)
            assert p.id == ex.id and list(p.probs) == pytest.approx(probs, abs=1e-5)
            complete.append(done)
        return sum(not c for c in complete)

    cell = root / "models/finetuned/chatterbot/on_topic/assessment/seed_0/model"
    model, tok = load_rater(cell, base=student)
    # finetune: the validation scores (what settings are chosen on) follow the model's rationale
    val = list(read_jsonl(root / "data/splits/chatterbot/on_topic/validation.jsonl", Example))
    expected = [(sum(k * q for k, q in enumerate(before_by_hand(model, tok, e, 128)[3], 1)) - 1) / 4 for e in val]
    trained = json.loads((root / "metrics/train/chatterbot/on_topic/assessment/seed_0.json").read_text())
    by_hand = np.mean([(x - e.score) ** 2 for x, e in zip(expected, val)])
    assert trained["validation_mse"] == pytest.approx(by_hand, abs=1e-6)  # (rounded to 6 places)

    m = run_evaluate(params, "chatterbot", "on_topic", "assessment", 0, root)
    preds = list(
        read_jsonl(
            root / "data/predictions/finetuned/chatterbot/on_topic/assessment/seed_0/chatterbot.jsonl", Prediction
        )
    )
    assert m["test"]["chatterbot"]["rationales_incomplete"] == check(preds, model, tok)

    b = run_baselines(params, "on_topic", root)
    preds = list(read_jsonl(root / "data/predictions/baselines/on_topic/untuned/chatterbot.jsonl", Prediction))
    assert b["untuned"]["chatterbot"]["rationales_incomplete"] == check(preds, *load_rater(student))

    run_analyse(params, root)
    rows = list(csv.DictReader((root / "plots/analysis/entropy_by_block.csv").open()))
    items = list(read_jsonl(root / "data/splits/chatterbot/on_topic/validation.jsonl", Example))[:2]
    for v in ("assessment", "none"):
        model, tok = load_rater(cell.parents[2] / v / "seed_0" / "model", base=student)
        lens = logit_lens(model, tok, items, max_length=params["train"]["max_length"], position="before")
        (row,) = [r for r in rows if r["variant"] == v]
        assert float(row["entropy"]) == pytest.approx(float(lens.entropy[0]), abs=2e-6)


def test_the_stages_that_score_track_the_training_settings_scoring_reads():
    """evaluate (and evaluate_ablation, its YAML merge), baselines and analyse rerun when the layout or the way
    the base is loaded changes."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["evaluate_ablation"]["params"] == stages["evaluate"]["params"]
    for name in ("evaluate", "evaluate_ablation", "baselines", "analyse"):
        params = stages[name].get("do", stages[name])["params"]
        for key in ("train.max_length", "train.explanation_position", "train.method", "train.quantization"):
            assert key in params or "train" in params, f"dvc.yaml stage {name}: params lack {key}"


# --------------------------------------------------------------------------- the report, from synthetic outputs


def _preds(root: Path, cell: str, test_set: str, errors: np.ndarray, targets: np.ndarray) -> None:
    rows = []
    for i, (e, t) in enumerate(zip(errors, targets)):
        x = float(np.clip(t + e, 0, 1))
        rows.append(
            Prediction(
                id=f"{test_set}/{i}",
                model=cell,
                test_set=test_set,
                dimension="on_topic",
                probs=(0.2, 0.2, 0.2, 0.2, 0.2),
                expected=x,
                argmax=3,
                target=float(t),
            )
        )
    write_jsonl(root / "data" / "predictions" / cell / f"{test_set}.jsonl", rows)


def synthetic(root: Path, seeds=(0,)) -> Grid:
    """Two sets, one dimension; (E) predicts with error 0.1, score-only with 0.2, on 200 items."""
    rng = np.random.default_rng(0)
    sets = ("alpha", "beta")
    targets = rng.uniform(0.3, 0.7, size=200)
    for s in sets:
        for v, err in (("none", 0.2), ("assessment", 0.1)):
            for k in seeds:
                cell = f"{s}/on_topic/{v}/seed_{k}"
                e = err + 0.01 * k
                _preds(root, f"finetuned/{cell}", s, np.full(200, e), targets)
                test = {t: {"mse": e**2 + (0.001 if t != s else 0.0), "mae": e} for t in sets}
                (root / "metrics/evaluate/finetuned" / s / "on_topic" / v).mkdir(parents=True, exist_ok=True)
                (root / "metrics/evaluate/finetuned" / f"{cell}.json").write_text(json.dumps({"test": test}))
    base = {
        "untuned": {t: {"mse": 0.3, "mae": 0.5} for t in sets},
        "prior": {t: {"mse": 0.05, "mae": 0.2} for t in sets},
        "prior_value": {t: 0.5 for t in sets},
    }
    (root / "metrics/evaluate/baselines").mkdir(parents=True, exist_ok=True)
    (root / "metrics/evaluate/baselines/on_topic.json").write_text(json.dumps(base))
    (root / "paper").mkdir()
    for f in (ROOT / "paper").glob("*.csv"):
        (root / "paper" / f.name).write_text(f.read_text())
    return Grid(
        sets=sets,
        dimensions=("on_topic",),
        variants=("none", "assessment"),
        seeds=tuple(seeds),
        test_sets={"on_topic": sets},
    )


def test_report_values_wins_and_byte_identical_regeneration(tmp_path):
    grid = synthetic(tmp_path)
    params = {"profile": "default", "train": {"student": "tiny", "method": "full"}}
    prov = Provenance(commit="abc123" * 6 + "abcd", dirty=False, profile="default", inputs_sha256="f" * 64)
    m = build_report(tmp_path, params, grid, n_boot=500, ci=0.95, seed=0, provenance=prov)
    assert m["explanations_win"] == 2 and m["cells"] == 2
    # (E): error 0.1 -> MSE 0.01; score only: 0.2 -> 0.04; every item differs by exactly -0.03
    for cell in ("alpha/on_topic", "beta/on_topic"):
        r = m["with_vs_without"][cell]
        assert r["diff"] == pytest.approx(-0.03, abs=1e-9) and r["low"] == pytest.approx(-0.03, abs=1e-9)
    assert m["beat_both_baselines"] == 4 and m["models"] == 4  # score-only (0.04) beats the prior (0.05) too
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "Explanations win in 2 of 2 cells" in md and "A demonstration, not a replication" in md
    assert md.split("\n")[2].startswith(
        f"Profile **default**, inputs at commit `{'abc123' * 6}abcd` (clean), "
        f"dvc.lock inputs sha256 `{'f' * 64}`; student `tiny` (full), seeds [0]."
    )
    assert m["provenance"] == {
        "commit": "abc123" * 6 + "abcd",
        "dirty": False,
        "profile": "default",
        "inputs_sha256": "f" * 64,
    }
    assert "seconds" not in md and "plain scoring" not in md  # no timing in the report
    assert "This profile trains a tiny student built here" in md
    table = (tmp_path / "reports/tables/on_topic_mse.csv").read_text().splitlines()
    assert table[0] == "trained on,alpha,beta"
    assert table[1] == "Untuned,0.300000,0.300000" and table[3] == "alpha,0.040000,0.041000"
    assert table[4] == "alpha (E),0.010000,0.011000"
    before = {p: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    build_report(tmp_path, params, grid, n_boot=500, ci=0.95, seed=0, provenance=prov)
    after = {p: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    assert before == after and any(p.suffix == ".png" for p in after)


def test_seed_variance_widens_the_interval(tmp_path):
    grid = synthetic(tmp_path, seeds=(0, 1, 2))
    params = {"profile": "smollm2", "train": {"student": "smollm2", "method": "lora"}}
    m = build_report(tmp_path, params, grid, n_boot=500, ci=0.95, seed=0)
    r = m["with_vs_without"]["alpha/on_topic"]
    assert r["low"] < r["diff"] < r["high"]  # seeds disagree: no longer a point
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "This profile trains SmolLM2-135M-Instruct" in md and "seeds [0, 1, 2]" in md


def test_a_losing_model_is_flagged_against_the_baselines(tmp_path):
    grid = synthetic(tmp_path)
    path = tmp_path / "metrics/evaluate/baselines/on_topic.json"
    base = json.loads(path.read_text())
    base["prior"]["alpha"]["mse"] = 0.02  # between (E) 0.01 and score-only 0.04
    path.write_text(json.dumps(base))
    # beta's score-only model: errors of +-0.25 around the labels (no offset) and a prior that beats it
    targets = np.random.default_rng(0).uniform(0.3, 0.7, size=200)  # synthetic()'s labels
    _preds(
        tmp_path, "finetuned/beta/on_topic/none/seed_0", "beta", np.where(np.arange(200) % 2 == 0, 0.25, -0.25), targets
    )
    base["prior"]["beta"]["mse"] = 0.02
    path.write_text(json.dumps(base))
    m = build_report(tmp_path, {"profile": "default", "train": {"student": "tiny"}}, grid, n_boot=200, ci=0.9, seed=0)
    assert m["beat_both_baselines"] == 2
    # alpha's score-only model is off by a constant +0.2: bias 0.2, nothing left once it is removed, so it loses
    # on its offset alone; beta's has no offset and an error variance of 0.0625, above the labels' (~0.0133)
    assert m["lose_on_offset_only"] == 1
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "Of the 2 models that do not beat both, 1 have MSE − bias² below the label variance" in md
    label_var = f"{targets.var():.5f}"
    assert f"| alpha | on_topic | none | 0.04000 | 0.30000 | 0.02000 | **no** | +0.2000 | 0.00000 | {label_var} |" in md
    assert f"| beta | on_topic | none | 0.04000 | 0.30000 | 0.02000 | **no** | +0.0000 | 0.06250 | {label_var} |" in md
    assert (
        f"| alpha | on_topic | assessment | 0.01000 | 0.30000 | 0.02000 | yes | +0.1000 | 0.00000 | {label_var} |" in md
    )
    # the offset's likely cause depends on the training target the profile used
    assert "trained on rounded 1–5 labels" in md and "score target" not in md.split("\n")[2]
    build_report(
        tmp_path,
        {
            "profile": "default",
            "train": {"student": "tiny", "method": "full", "score_target": "soft", "score_weight": 5.0},
        },
        grid,
        n_boot=200,
        ci=0.9,
        seed=0,
    )
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "student `tiny` (full), score target soft, score weight 5 (README" in md
    assert "so this offset is not rounding's" in md and "trained on rounded 1–5 labels" not in md
    # without alpha's loser, no loser is offset-only
    base["prior"]["alpha"]["mse"] = 0.05
    path.write_text(json.dumps(base))
    m = build_report(tmp_path, {"profile": "default", "train": {"student": "tiny"}}, grid, n_boot=200, ci=0.9, seed=0)
    assert m["beat_both_baselines"] == 3 and m["lose_on_offset_only"] == 0
    assert (
        "None of the models that do not beat both (1) has MSE − bias² below the label variance"
        in (tmp_path / "reports/REPORT.md").read_text()
    )


def test_paper_wins_are_counted_from_the_paper_tables():
    wins, total = paper_wins(ROOT, ("naturalness", "comprehensiveness", "on_topic"))
    assert total == 18  # six datasets x three dimensions (Mixed has no column of its own)
    # Table 3: CoQA (E) 0.0211 ties CoQA 0.0211 on the CoQA test set, so at most 17 strict wins
    assert wins <= 17 and wins >= 15


def test_row_labels():
    assert row_label("coqa", "none") == "coqa" and row_label("coqa", "assessment") == "coqa (E)"
    assert row_label("mixed", "length_25") == "mixed [length_25]"


def _ablation_grid(root: Path) -> Grid:
    """synthetic() plus an ablation grid on alpha: two types, two lengths, two random kinds, each with a known error."""
    grid = synthetic(root)
    rng = np.random.default_rng(1)
    targets = rng.uniform(0.3, 0.7, size=200)
    errors = {
        "confidence": 0.12,
        "both": 0.11,
        "length_5": 0.18,
        "length_10": 0.15,
        "shuffle": 0.17,
        "fully_random": 0.25,
    }
    for v, err in errors.items():
        cell = f"alpha/on_topic/{v}/seed_0"
        _preds(root, f"finetuned/{cell}", "alpha", np.full(200, err), targets)
        (root / "metrics/evaluate/finetuned/alpha/on_topic" / v).mkdir(parents=True, exist_ok=True)
        test = {t: {"mse": err**2 + (0.002 if t != "alpha" else 0.0), "mae": err} for t in ("alpha", "beta")}
        (root / "metrics/evaluate/finetuned" / f"{cell}.json").write_text(json.dumps({"test": test}))
    (root / "metrics/variants.json").write_text(
        json.dumps(
            {
                "cells": {
                    "alpha/on_topic/assessment": {"mean_words": 20.0},
                    "alpha/on_topic/confidence": {"mean_words": 12.5},
                    "alpha/on_topic/both": {"mean_words": 32.5},
                }
            }
        )
    )
    return Grid(
        sets=grid.sets,
        dimensions=grid.dimensions,
        variants=grid.variants,
        seeds=grid.seeds,
        test_sets=grid.test_sets,
        ablation=tuple(("alpha", "on_topic", v) for v in errors),
    )


def test_report_ablation_tables_plots_and_metrics(tmp_path):
    grid = _ablation_grid(tmp_path)
    m = build_report(tmp_path, {"profile": "default", "train": {"student": "tiny"}}, grid, n_boot=200, ci=0.95, seed=0)
    # every model of both grids is checked against the baselines: 4 main + 6 ablation; fully_random (0.0625) loses
    # to the prior (0.05)
    assert m["models"] == 10 and m["beat_both_baselines"] == 9
    assert m["ablation"]["type"] == {
        "alpha/on_topic/none": 0.04,
        "alpha/on_topic/assessment": 0.01,
        "alpha/on_topic/confidence": 0.0144,
        "alpha/on_topic/both": 0.0121,
    }
    assert m["ablation"]["length"] == {
        "alpha/on_topic/none": 0.04,
        "alpha/on_topic/length_5": 0.0324,
        "alpha/on_topic/length_10": 0.0225,
        "alpha/on_topic/assessment": 0.01,
    }
    assert set(m["ablation"]["random"]) == {
        f"alpha/on_topic/{v}" for v in ("none", "assessment", "fully_random", "shuffle")
    }
    length = (tmp_path / "reports/tables/ablation_length.csv").read_text().splitlines()
    # ordered by words: none (0), length_5, length_10, assessment at its mean length (20)
    assert length[0] == "set,dimension,variant,words,mse,mae"
    assert [r.split(",")[2:4] for r in length[1:]] == [
        ["none", "0.000000"],
        ["length_5", "5.000000"],
        ["length_10", "10.000000"],
        ["assessment", "20.000000"],
    ]
    typ = (tmp_path / "reports/tables/ablation_type.csv").read_text().splitlines()
    assert typ[3] == "alpha,on_topic,confidence,12.500000,0.014400,0.120000"
    random_rows = (tmp_path / "reports/tables/ablation_random.csv").read_text().splitlines()
    assert "alpha,on_topic,shuffle,beta,0.030900,0.170000" in random_rows  # every test set, not only its own
    for png in ("ablation_type.png", "ablation_length.png", "ablation_random_alpha_on_topic.png"):
        assert (tmp_path / "reports/figures" / png).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "### Random words instead of explanations (paper Table 4)" in md and "W-Associated" in md
    assert "| alpha [fully_random] |" in md  # ablation rows join the cross-dataset matrices


def test_report_without_an_ablation_grid_says_so(tmp_path):
    grid = synthetic(tmp_path)
    m = build_report(tmp_path, {"profile": "default", "train": {"student": "tiny"}}, grid, n_boot=200, ci=0.95, seed=0)
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "no ablation grid" in md and "No random-word variant" in md
    assert "length" not in m["ablation"] and "random" not in m["ablation"]
    assert (tmp_path / "reports/tables/ablation_random.csv").read_text() == "set,dimension,variant,test_set,mse,mae\n"


def test_report_states_the_settings_chosen_on_validation(tmp_path):
    """selection/*.json: the report names the choice, whether the profile uses it, and whether it is current."""
    from explainft.selection import inputs_digest

    grid = synthetic(tmp_path)
    params = {"profile": "default", "train": {"student": "tiny", "method": "full", "score_target": "soft"}}
    m = build_report(tmp_path, params, grid, n_boot=200, ci=0.95, seed=0)
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "## How the settings were chosen" in md and "No setting of the **default** profile was chosen" in md
    assert m["selection"] == {}
    cell = ("alpha", "on_topic", "none", 0)
    for rel in (
        "data/variants/alpha/on_topic/none.jsonl",
        "data/splits/alpha/on_topic/validation.jsonl",
        "models/student/STUDENT.json",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel + "\n")
    cand = [
        {
            "params": {"train.score_target": t},
            "mean_validation_mse": v,
            "mean_validation_prior_mse": 0.05,
            "beats_prior": int(v < 0.05),
            "cells": {},
        }
        for t, v in (("hard", 0.061), ("soft", 0.042))
    ]
    rec = {
        "name": "objective",
        "profile": "default",
        "grid": {"train.score_target": ["hard", "soft"]},
        "cells": ["alpha/on_topic/none/seed_0"],
        "inputs": inputs_digest(tmp_path, [cell]),
        "candidates": cand,
        "chosen": {"train.score_target": "soft"},
    }
    (tmp_path / "selection").mkdir()
    (tmp_path / "selection/objective.json").write_text(json.dumps(rec))
    m = build_report(tmp_path, params, grid, n_boot=200, ci=0.95, seed=0)
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "Chosen: `train.score_target: soft`, over 2 candidates on 1 cells" in md
    assert "This profile uses the chosen values." in md and "are the ones the selection read" in md
    assert "| soft | 0.04200 | 0.05000 | 1 of 1 |\n| hard | 0.06100 | 0.05000 | 0 of 1 |" in md  # best first
    assert m["selection"] == {
        "objective": {
            "chosen": {"train.score_target": "soft"},
            "in_profile": True,
            "current": True,
            "mean_validation_mse": 0.042,
        }
    }
    # the profile moved away from the choice, and the validation data changed since: both said plainly
    params["train"]["score_target"] = "hard"
    (tmp_path / "data/splits/alpha/on_topic/validation.jsonl").write_text("changed\n")
    m = build_report(tmp_path, params, grid, n_boot=200, ci=0.95, seed=0)
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert "**This profile does not use the chosen values** (`train.score_target` is 'hard', chosen 'soft')" in md
    assert "**Stale:**" in md
    assert m["selection"]["objective"]["in_profile"] is False and m["selection"]["objective"]["current"] is False
    # a record made for another profile is named, never applied to this one
    m = build_report(tmp_path, {**params, "profile": "smollm2"}, grid, n_boot=200, ci=0.95, seed=0)
    md = (tmp_path / "reports/REPORT.md").read_text()
    assert (
        "No setting of the **smollm2** profile was chosen on data" in md
        and "Records made for other profiles, not applied here: `selection/objective.json` (default)." in md
    )
    assert m["selection"] == {} and "Chosen:" not in md
