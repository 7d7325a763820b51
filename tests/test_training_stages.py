"""The student and finetune stage bodies (explainft.stages.student, explainft.stages.finetune), without DVC: outputs and bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

torch = pytest.importorskip("torch")

from explainft.config import annotate_config, split_sets  # noqa: E402
from explainft.errors import ConfigError  # noqa: E402
from explainft.layout import finetune_dir  # noqa: E402
from explainft.records import Example, Turn, write_jsonl  # noqa: E402
from explainft.stages.finetune import run as run_finetune  # noqa: E402
from explainft.stages.student import run as run_student  # noqa: E402
from explainft.stages.student import student_texts  # noqa: E402
from explainft.students import student_revision  # noqa: E402

DIMS = ("naturalness", "comprehensiveness", "on_topic")
GOOD = ("Paris is in France, on the Seine.", 5, "It answers the question directly.")
BAD = ("I like turtles and green soup.", 1, "It ignores the question.")


def ex(i: int, dim: str, variant: str | None) -> Example:
    response, label, expl = GOOD if i % 2 == 0 else BAD
    e = Example(
        id=f"chatterbot/{i}",
        dataset="chatterbot",
        dimension=dim,
        turns=(Turn("user", f"Where is Paris? ({i})"), Turn("assistant", response)),
        score=(label - 1) / 4,
        label=label,
        assessment=expl,
        confidence="sure",
    )
    return e if variant is None else e.with_target(variant, "" if variant == "none" else expl)


def make_project(root: Path, *, n_test: int = 4) -> dict:
    """Split and variant files for two sets x three dimensions under ``root``, and params for a very small
    student and grid (chatterbot, on-topic); the evaluation tests use it too."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["split"]["mixed"] = False
    params["student"] = {
        "tiny": {
            "seed": 0,
            "vocab_size": 400,
            "hidden": 32,
            "layers": 1,
            "heads": 2,
            "kv_heads": 1,
            "intermediate": 64,
            "max_positions": 1024,
        },
        "pretrain": {"steps": 2, "lr": 2.0e-3, "batch_size": 4, "seq_len": 32, "seed": 0},
    }
    params["train"].update(sets=["chatterbot"], dimensions=["on_topic"], epochs=1, batch_size=4, logging_steps=1)
    params["ablation"] = {"sets": [], "dimensions": [], "variants": []}  # no ablation grid in these small projects
    for s in ("chatterbot", "chatterbot_perturbed"):
        for dim in DIMS:
            base = root / "data" / "splits" / s / dim
            write_jsonl(base / "train.jsonl", [ex(i, dim, None) for i in range(8)])
            write_jsonl(base / "validation.jsonl", [ex(i, dim, None) for i in range(200, 204)])
            write_jsonl(base / "test.jsonl", [ex(i, dim, None) for i in range(100, 100 + n_test)])
            for v in ("none", "assessment"):
                write_jsonl(root / "data" / "variants" / s / dim / f"{v}.jsonl", [ex(i, dim, v) for i in range(8)])
    return params


@pytest.fixture
def proj(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, make_project(tmp_path)


def test_student_corpus_is_train_conversations_and_rubrics(proj):
    root, params = proj
    texts = student_texts(split_sets(params), annotate_config(params), root)
    assert sum("Where is Paris? (0)" in t for t in texts) == 1  # each training conversation once
    assert not any("(100)" in t or "(200)" in t for t in texts)  # never a test or validation conversation
    assert sum(t.startswith("Rate the on-topic relevance") for t in texts) == 50


def test_student_then_finetune_writes_every_output(proj):
    root, params = proj
    m = run_student(params, root)
    assert m["student"] == "tiny" and m["pretrain"]["steps"] == 2
    assert json.loads((root / "models/student/STUDENT.json").read_text()) == {"student": "tiny"}
    assert json.loads((root / "metrics/student.json").read_text())["texts"] == m["texts"]
    # a fine-tune reads the validation split, never the test split
    for dim in DIMS:
        (root / "data/splits/chatterbot" / dim / "test.jsonl").unlink()
    s = run_finetune(params, "chatterbot", "on_topic", "assessment", 0, root)
    assert (s["n_train"], s["n_validation"], s["steps"], s["variant"], s["seed"]) == (8, 4, 2, "assessment", 0)
    assert s["validation_loss_initial"] > 0 and s["best_epoch"] == 1
    # the validation scores are the trained model's expected scores against the merged scores, by hand
    from explainft.records import read_jsonl
    from explainft.scoring import load_rater, score_examples

    cell = finetune_dir(root, "chatterbot", "on_topic", "assessment", 0)
    val = list(read_jsonl(root / "data/splits/chatterbot/on_topic/validation.jsonl", Example))
    model, tok = load_rater(cell / "model", base=str(root / "models/student"))
    pred = [x.expected for x in score_examples(model, tok, val, max_length=params["train"]["max_length"])]
    by_hand = sum((p - e.score) ** 2 for p, e in zip(pred, val)) / len(val)
    assert s["validation_mse"] == pytest.approx(by_hand, abs=1e-6)
    # the prior is the training mean (4 GOOD at 1.0, 4 BAD at 0.0: 0.5), against 2 GOOD and 2 BAD: 0.25
    assert s["validation_prior_mse"] == pytest.approx(0.25)
    saved = json.loads((root / "metrics/train/chatterbot/on_topic/assessment/seed_0.json").read_text())
    assert saved == s
    assert (cell / "model" / "model.safetensors").is_file()
    # how the base was loaded, beside the model (the default: a full fine-tune in float32 on the CPU)
    assert json.loads((cell / "model" / "LOADING.json").read_text()) == {
        "method": "full",
        "quantization": "none",
        "compute_dtype": "float32",
        "student": "tiny",
        "revision": None,
    }
    assert (s["quantization"], s["compute_dtype"]) == ("none", "float32")
    assert json.loads((cell / "checkpoints" / "RUN.json").read_text())["config"]["epochs"] == 1
    assert (root / "plots/train/chatterbot/on_topic/assessment/seed_0/plots/metrics/eval/validation/loss.tsv").is_file()


def test_lora_cell_saves_an_adapter(proj):
    root, params = proj
    run_student(params, root)
    params = copy.deepcopy(params)
    params["train"].update(method="lora", lora={"r": 4, "alpha": 8})
    run_finetune(params, "chatterbot", "on_topic", "none", 0, root)
    cell = finetune_dir(root, "chatterbot", "on_topic", "none", 0) / "model"
    assert (cell / "adapter_model.safetensors").is_file() and not (cell / "model.safetensors").exists()
    assert json.loads((cell / "adapter_config.json").read_text())["r"] == 4


def test_bad_input_fails_before_training_naming_the_param(proj):
    root, params = proj
    with pytest.raises(ConfigError) as e:  # no student built yet
        run_finetune(params, "chatterbot", "on_topic", "none", 0, root)
    assert e.value.key == "train.student" and "dvc repro student" in str(e.value)
    run_student(params, root)
    for args, key in (
        (("coqa", "on_topic", "none"), "train.sets"),
        (("chatterbot", "naturalness", "none"), "train.dimensions"),
        (("chatterbot", "on_topic", "shuffle"), "train.variants"),
    ):
        with pytest.raises(ConfigError) as e:
            run_finetune(params, *args, 0, root)
        assert e.value.key == key
    for seed in (1, 7):
        with pytest.raises(ConfigError) as e:
            run_finetune(params, "chatterbot", "on_topic", "none", seed, root)
        assert e.value.key == "train.seeds"
    short = copy.deepcopy(params)
    short["train"]["max_length"] = 40  # the rubric alone is longer: the target cannot fit
    with pytest.raises(ConfigError) as e:
        run_finetune(short, "chatterbot", "on_topic", "assessment", 0, root)
    assert e.value.key == "train.max_length" and "raise train.max_length" in str(e.value)
    assert not (finetune_dir(root, "chatterbot", "on_topic", "assessment", 0) / "model").exists()
    lora = copy.deepcopy(params)
    lora["train"].update(method="lora", lora={"target_modules": ["c_attn"]})
    with pytest.raises(ConfigError) as e:
        run_finetune(lora, "chatterbot", "on_topic", "none", 0, root)
    assert e.value.key == "train.lora.target_modules" and "q_proj" in str(e.value)
    swapped = copy.deepcopy(params)
    swapped["train"]["student"] = "smollm2"  # params changed, the student stage not rerun
    with pytest.raises(ConfigError, match="holds 'tiny'"):
        run_finetune(swapped, "chatterbot", "on_topic", "none", 0, root)


SHA = "0123456789abcdef0123456789abcdef01234567"


def hub(monkeypatch) -> list[tuple[str, str]]:
    """The Hub's model_info answered here (no network): every revision of every model is commit SHA."""
    from huggingface_hub import HfApi

    asked: list[tuple[str, str]] = []

    class Info:
        sha = SHA

    def model_info(self, repo_id, revision=None, **kw):
        asked.append((repo_id, revision))
        return Info()

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "model_info", model_info)
    return asked


def test_a_hub_student_gets_a_marker_only(proj, monkeypatch):
    root, params = proj
    asked = hub(monkeypatch)
    params["train"]["student"] = "mistralai/Mistral-7B-v0.1"
    m = run_student(params, root)
    assert m["source"] == "mistralai/Mistral-7B-v0.1"
    assert sorted(p.name for p in (root / "models/student").iterdir()) == ["STUDENT.json"]
    # the commit main is now, pinned in the marker (a DVC output: dvc.lock records it)
    marker = json.loads((root / "models/student/STUDENT.json").read_text())
    assert marker == {"student": "mistralai/Mistral-7B-v0.1", "source": "mistralai/Mistral-7B-v0.1", "revision": SHA}
    assert asked == [("mistralai/Mistral-7B-v0.1", "main")] and student_revision(root) == SHA
    params["train"]["student_revision"] = "v0.1"  # a tag: resolved to its commit
    run_student(params, root)
    assert asked[-1] == ("mistralai/Mistral-7B-v0.1", "v0.1")


def test_a_hub_student_offline_without_a_commit_is_a_clear_error(proj, monkeypatch):
    root, params = proj
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params["train"]["student"] = "mistralai/Mistral-7B-v0.1"
    with pytest.raises(ConfigError) as e:
        run_student(params, root)
    assert e.value.key == "train.student_revision" and "HF_HUB_OFFLINE=1" in str(e.value)
    params["train"]["student_revision"] = SHA  # a commit pins itself: nothing to ask the Hub
    run_student(params, root)
    assert student_revision(root) == SHA


def test_a_folder_student_is_pinned_by_its_content(proj):
    import shutil

    root, params = proj
    run_student(params, root)  # the tiny student, copied out as a plain folder student
    folder = root / "inputs" / "mine"
    shutil.copytree(root / "models" / "student", folder)
    (folder / "STUDENT.json").unlink()
    params["train"]["student"] = "inputs/mine"
    m = run_student(params, root)
    first = json.loads((root / "models/student/STUDENT.json").read_text())
    assert first["revision"].startswith("sha256:") and m["revision"] == first["revision"]
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    run_student(params, root)
    assert json.loads((root / "models/student/STUDENT.json").read_text())["revision"] != first["revision"]
    params["train"]["student_revision"] = SHA
    with pytest.raises(ConfigError) as e:
        run_student(params, root)
    assert e.value.key == "train.student_revision" and "local folder" in str(e.value)


@pytest.mark.parametrize(
    "value, message",
    [("", "must be null or a revision"), (7, "must be null or a revision"), ("a b", "must be null or a revision")],
)
def test_student_revision_param_is_checked(proj, value, message):
    from explainft.config import finetune_config

    _, params = proj
    params["train"].update(student="owner/model", student_revision=value)
    with pytest.raises(ConfigError, match=message) as e:
        finetune_config(params)
    assert e.value.key == "train.student_revision"
    params["train"].update(student="tiny", student_revision=SHA)
    with pytest.raises(ConfigError, match="tiny is built by the student stage") as e:
        finetune_config(params)
    params["train"].update(student="owner/model", student_revision=SHA)
    assert finetune_config(params).student_revision == SHA
    params["train"]["student_revision"] = None
    assert finetune_config(params).student_revision is None


def test_a_qlora_cell_is_evaluated_and_its_baseline_taken_on_the_nf4_base(proj, monkeypatch):
    """train.quantization nf4 + LoRA: the fine-tune records the NF4 base beside the adapter, and evaluation and the
    untuned baseline load that base (before: a float32 base, i.e. another model than the one trained)."""
    import bitsandbytes as bnb

    import explainft.stages.baselines as baselines
    import explainft.stages.evaluate as evaluate

    root, params = proj
    # (bitsandbytes' CPU inference kernel fails on a 16-wide projection: the widths of tests/test_students.py)
    params["student"]["tiny"].update(hidden=64, heads=4, kv_heads=2, intermediate=128)
    run_student(params, root)
    params["train"].update(method="lora", quantization="nf4", lora={"r": 4, "alpha": 8})
    s = run_finetune(params, "chatterbot", "on_topic", "assessment", 0, root)
    assert (s["quantization"], s["compute_dtype"]) == ("nf4", "float32")
    model_dir = finetune_dir(root, "chatterbot", "on_topic", "assessment", 0) / "model"
    assert json.loads((model_dir / "LOADING.json").read_text()) == {
        "method": "lora",
        "quantization": "nf4",
        "compute_dtype": "float32",
        "student": "tiny",
        "revision": None,
    }
    loaded = []

    def spy(real):
        def load(*a, **k):
            model, tok = real(*a, **k)
            loaded.append(model)
            return model, tok

        return load

    monkeypatch.setattr(evaluate, "load_rater", spy(evaluate.load_rater))
    monkeypatch.setattr(baselines, "load_rater", spy(baselines.load_rater))
    evaluate.run(params, "chatterbot", "on_topic", "assessment", 0, root)
    baselines.run(params, "on_topic", root)
    rater, untuned = loaded
    assert isinstance(rater.get_base_model().model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    assert isinstance(untuned.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(proj):
    """train.num_processes: 2 relaunches the stage under `accelerate launch` (DDP over gloo on this CPU)."""
    import os
    import subprocess
    import sys

    root, params = proj
    run_student(params, root)
    params["train"].update(num_processes=2, batch_size=2)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "finetune.py"), "chatterbot", "on_topic", "none", "0"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "accelerate.commands.launch --num_processes 2 --multi_gpu" in p.stdout
    s = json.loads((root / "metrics/train/chatterbot/on_topic/none/seed_0.json").read_text())
    assert s["steps"] == 2  # 8 examples, batch 2 per process, 2 processes: 2 optimizer steps per epoch
    assert (finetune_dir(root, "chatterbot", "on_topic", "none", 0) / "model" / "model.safetensors").is_file()
