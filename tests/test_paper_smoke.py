"""The paper's path end to end on a CPU: configs/paper-smoke.yaml (the paper profile with only sizes and endpoints
changed) through `dvc repro` in a throwaway project, every stage family of the paper's graph included.

The teachers are tests/paper_smoke.py's scripted server (the OpenAI-compatible protocol over real sockets, with
failures); the student is a tiny Mistral saved as a Hub-format folder, fine-tuned with LoRA on an NF4 base."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from paper_smoke import SMOKE, run, server, setup_project
from test_pipeline import ran

PAPER = ROOT / "configs" / "paper.yaml"
FAMILIES = {
    "download",
    "prepare",
    "annotate",
    "merge",
    "golden",
    "split",
    "variants",
    "explanation_stats",
    "student",
    "finetune",
    "finetune_ablation",
    "evaluate",
    "evaluate_ablation",
    "baselines",
    "human_download",
    "human_eval",
    "analyse",
    "report",
}

# What the smoke profile may change against configs/paper.yaml: sizes and endpoints (and the comments).
# A key path matches when it equals an entry or lies under one ("sources.coqa.fetch" covers its keys).
ALLOWED = {
    "profile",
    "data.per_dataset",
    "annotate.max_failed_share",
    "split.train",
    "split.validation",
    "split.test",
    "stats.tokenizer",
    "stats.tokenizer_revision",
    "stats.context_limit",
    "train.student",
    "train.student_revision",
    "train.sets",
    "train.variants",
    "train.dimensions",
    "train.quantization",
    "train.batch_size",
    "train.grad_accum",
    "train.eval_steps",
    "train.logging_steps",
    "ablation.variants",
    "evaluate.bootstrap",
    "analysis.lens_items",
    "human.bootstrap",
}
ALLOWED |= {f"sources.{d}.fetch" for d in yaml.safe_load(PAPER.read_text())["data"]["datasets"]}
ALLOWED |= {f"human.sets.{s}.fetch" for s in yaml.safe_load(PAPER.read_text())["human"]["sets"]}
TEACHER_ENDPOINT = {"backend", "options"}  # a teacher keeps its name, model and sampling


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(isinstance(x, dict) for x in a + b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def test_the_smoke_profile_changes_only_sizes_and_endpoints():
    paper, smoke = yaml.safe_load(PAPER.read_text()), yaml.safe_load(SMOKE.read_text())
    bad = []
    for d in differences(paper, smoke):
        if d.startswith("annotate.teachers["):
            if d.split("].", 1)[1].split(".")[0] not in TEACHER_ENDPOINT:
                bad.append(d)
        elif not any(d == a or d.startswith(a + ".") for a in ALLOWED):
            bad.append(d)
    assert bad == []
    # the sizes it does change keep the paper's proportions of purpose: headroom over the split, a held-out part
    need = sum(smoke["split"][p] for p in ("train", "validation", "test"))
    assert smoke["data"]["per_dataset"] > need
    assert [t["name"] for t in smoke["annotate"]["teachers"]] == [t["name"] for t in paper["annotate"]["teachers"]]
    assert smoke["variants"] == paper["variants"]


def test_the_comparison_catches_a_change_of_path():
    # a changed learning rate or sampling is not a size or an endpoint
    paper = yaml.safe_load(PAPER.read_text())
    changed = json.loads(json.dumps(paper))
    changed["train"]["learning_rate"] = 1.0
    changed["annotate"]["teachers"][0]["sampling"] = {"temperature": 1.0}
    assert differences(paper, changed) == [
        "annotate.teachers[0].sampling.max_tokens",
        "annotate.teachers[0].sampling.temperature",
        "train.learning_rate",
    ]


@pytest.fixture
def smoke_project(tmp_path: Path):
    srv = server().start()
    try:
        yield setup_project(tmp_path, srv.url), srv
    finally:
        srv.stop()


def _json(path: Path):
    return json.loads(path.read_text())


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_the_paper_profile_runs_end_to_end(smoke_project):
    proj, srv = smoke_project
    check = run(["explainft", "check", "params.yaml"], proj)
    assert "coqa" in check.stdout + check.stderr

    t0 = time.perf_counter()
    first = run(["dvc", "repro"], proj, timeout=900)
    seconds = time.perf_counter() - t0
    stages = {line.split()[0] for line in run(["dvc", "stage", "list"], proj).stdout.splitlines() if line.strip()}
    assert ran(first.stdout) == stages  # every stage of the paper's graph ran
    assert {s.split("@")[0] for s in stages} == FAMILIES
    print(f"paper-smoke dvc repro: {seconds:.0f} s, {len(stages)} stages")

    params = yaml.safe_load((proj / "params.yaml").read_text())
    datasets = params["data"]["datasets"]

    # the teachers: the real protocol, every model of the ensemble asked, the scripted failures retried or counted
    models = {r.body["model"] for r in srv.requests if isinstance(r.body, dict)}
    assert models == {t["model"] for t in params["annotate"]["teachers"]}
    actions = {r.action for r in srv.requests}
    assert {"reply", "status"} <= actions
    dropped, fallbacks, retries = 0, 0, 0
    for d in datasets:
        prep = _json(proj / "metrics" / "prepare" / f"{d}.json")
        assert prep["sampled"] == 24, d
        ann = _json(proj / "metrics" / "annotate" / f"{d}.json")
        ratings = _lines(proj / "data" / "annotated" / f"{d}.jsonl")
        assert len(ratings) == 24 * 3 * 4 * 3, d
        merged = _json(proj / "metrics" / "merge" / f"{d}.json")
        items = _lines(proj / "data" / "merged" / f"{d}.jsonl")
        assert len(items) == merged["n_items"] and all(i["n_valid"] >= 6 for i in items)
        assert sum(merged["dropped_min_valid"].values()) == 24 * 3 - len(items), d
        dropped += 24 * 3 - len(items)
        # refused conversations: every rating of theirs is unparsable, nothing is lost or silently replaced
        assert ann["ok"] + ann["failed"] + ann["unparsable"] == 24 * 3 * 4 * 3, (d, ann)
        retries += ann["parse_retries"]
        # the LLM summariser wrote the explanations; its scripted bad replies fell back, counted
        assert merged["explanation_method"] == "llm" and merged["llm_calls"]["summary_assessment"] > 0, d
        fallbacks += sum(merged["llm_fallbacks"]["summary_assessment"].values())
    # refused conversations (1 in REFUSED_EVERY) are dropped by merge, inside the profile's headroom
    assert dropped > 0 and dropped % 3 == 0
    assert retries > 0 and fallbacks > 0

    split = _json(proj / "metrics" / "split.json")
    assert split["group_overlap_total"] == 0
    for s in datasets + ["mixed"]:
        sizes = {p: split["sets"][f"{s}/naturalness"][p]["n"] for p in ("train", "validation", "test")}
        assert sizes == {"train": 8, "validation": 3, "test": 5}, s

    names = params["variants"]["names"]
    assert len(names) == 17
    for v in names:
        assert (proj / "data" / "variants" / "mixed" / "naturalness" / f"{v}.jsonl").is_file(), v

    # QLoRA: trained on an NF4 base, and measured on the same base
    for cell in (
        "mixed/naturalness/none/seed_0",
        "mixed/naturalness/assessment/seed_0",
        "mixed/naturalness/length_5/seed_0",
    ):
        loading = _json(proj / "models" / "finetuned" / cell / "model" / "LOADING.json")
        assert (loading["method"], loading["quantization"]) == ("lora", "nf4"), cell
        tm = _json(proj / "metrics" / "train" / f"{cell}.json")
        assert tm["quantization"] == "nf4" and tm["steps"] >= 2 and tm["validation_loss_final"] > 0
        ev = _json(proj / "metrics" / "evaluate" / "finetuned" / f"{cell}.json")
        assert set(ev["test"]) == set(datasets) | {"mixed"}
        assert all(r["n"] == 5 for r in ev["test"].values())
    student = _json(proj / "models" / "student" / "STUDENT.json")
    assert student["student"] == "inputs/tiny-mistral" and student["revision"].startswith("sha256:")

    base = _json(proj / "metrics" / "evaluate" / "baselines" / "naturalness.json")
    assert set(base["untuned"]) == set(datasets) | {"mixed"}
    analysis = _json(proj / "metrics" / "analysis.json")
    assert analysis["pairs"] == 1 and set(analysis["weights"]) == {"mixed/naturalness/seed_0"}
    assert all(len(v) == 7 for v in analysis["weights"].values())  # the seven projections, r x r differences
    assert len(analysis["blocks"]) > 0
    # agreement with people: the fixtures' evaluation part, rated by the three teachers, the ensemble, the untuned
    # student, the four fine-tunes on their dimension and the three one-feature baselines
    for name, kind in (("helpsteer", "ratings"), ("arena_human_preference", "preferences")):
        h = _json(proj / "metrics" / "human" / f"{name}.json")
        assert h["kind"] == kind and h["items"] >= 2 and h["design_items"] >= 1, name
        raters = set(h["raters"])
        assert {"teacher/titan", "teacher/mixtral", "teacher/mistral", "ensemble/average", "untuned"} <= raters, name
        assert {f"baseline/{b}" for b in ("length", "distinct", "overlap")} <= raters, name
        assert {r for r in raters if r.startswith("student/")} == {
            "student/mixed/naturalness/none/seed_0",
            "student/mixed/naturalness/assessment/seed_0",
            "student/mixed/naturalness/length_5/seed_0",
            "student/mixed/naturalness/fully_random/seed_0",
        }, name
        assert "mixed/naturalness/assessment/seed_0 - none" in h["differences"], name
    report = _json(proj / "metrics" / "report.json")
    assert report["cells"] >= 1
    assert set(report["human"]) == set(params["human"]["sets"])
    # the paper's own preference pairs: those asking what a training or validation example asked are left out
    for name in ("chatbot_arena_preference", "hh_rlhf_preference"):
        h = _json(proj / "metrics" / "human" / f"{name}.json")
        assert h["kind"] == "preferences" and h["left_out"]["in_training"] > 0 and h["items"] > 0, (name, h["left_out"])
    assert (proj / "reports" / "REPORT.md").read_text().startswith("#")

    # the judge: the paper's third merge method, on one dataset, rerunning that merge alone
    params["merge"]["score"] = "llm"
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    judged = run(["dvc", "repro", "-s", "merge@coqa"], proj)
    assert ran(judged.stdout) == {"merge@coqa"}
    merged = _json(proj / "metrics" / "merge" / "coqa.json")
    assert merged["score_method"] == "llm" and merged["llm_calls"]["judge"] > 0
