"""Fine-tuning with the Trainer: score-only eval loss, whole-target train loss, dvclive, resume (explainft.train)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from explainft.config import TrainConfig, train_config  # noqa: E402
from explainft.encode import IGNORE, Encoded, EncodeError, collate, encode_all, pad_id_for  # noqa: E402
from explainft.errors import ConfigError  # noqa: E402
from explainft.records import Example, Turn  # noqa: E402
from explainft.targets import student_prompt  # noqa: E402
from explainft.train import TIMING_KEYS, finetune, last_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOOD = ("Paris is in France, on the Seine.", 5, "It answers the question directly and correctly.")
BAD = ("I like turtles and green soup.", 1, "It ignores the question entirely.")


def example(i: int, kind=GOOD, question="Where is Paris?") -> Example:
    response, label, expl = kind
    return Example(
        id=f"d/{i}",
        dataset="d",
        dimension="on_topic",
        turns=(Turn("user", f"{question} (#{i})"), Turn("assistant", response)),
        score=(label - 1) / 4,
        label=label,
        assessment="a",
        confidence="c",
    ).with_target("assessment", expl)


def examples(n: int, start: int = 0) -> list[Example]:
    return [example(start + i, GOOD if i % 2 == 0 else BAD) for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread here and in the children: the tiny model's many small ops run 10-50x slower with 2
    OpenMP threads when another process holds one of the 2 cores (spin-waits), and the same thread count in the
    parent and the child keeps the float reductions identical for the resume comparison."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny ByteLevel tokenizer and a tiny Mistral model, saved to a folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [student_prompt(e) + f" {e.label}\n{e.explanation}" for e in examples(6)] * 10
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    cfg = MistralConfig(
        vocab_size=len(hf_tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        sliding_window=None,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def load(tiny_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)


def cfg(**kw) -> TrainConfig:
    base = dict(
        epochs=1,
        learning_rate=1e-3,
        batch_size=4,
        grad_accum=1,
        max_length=512,
        seed=0,
        eval_steps=None,
        logging_steps=1,
        save_total_limit=None,
    )
    base.update(kw)
    return train_config(base)


def score_loss_by_hand(model, tok, exs, max_length=512) -> float:
    """Mean cross-entropy of the score token given its prefix, one unpadded example at a time."""
    enc, _ = encode_all(tok, exs, max_length)
    model.eval()
    losses = []
    with torch.no_grad():
        for e in enc:
            logits = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            i = e.score_index
            losses.append(float(torch.nn.functional.cross_entropy(logits[i - 1], torch.tensor(e.input_ids[i]))))
    return sum(losses) / len(losses)


# --------------------------------------------------------------------------- config


def test_config_defaults_and_paper_lr():
    c = train_config({})
    assert c.learning_rate == 5e-5 and c.explanation_position == "after" and c.group_by_length is True
    assert train_config({"learning_rate": "1e-4"}).learning_rate == 1e-4  # YAML's "1e-4" is a string
    assert train_config({"method": "lora"}, allow=["method"]) == c


@pytest.mark.parametrize(
    "key,value",
    [
        ("epochs", 0),
        ("epochs", 1.5),
        ("epochs", True),
        ("learning_rate", -1),
        ("learning_rate", "fast"),
        ("learning_rate", float("nan")),
        ("batch_size", 0),
        ("grad_accum", "2"),
        ("max_length", 4),
        ("seed", -1),
        ("eval_steps", 0),
        ("explanation_position", "middle"),
        ("group_by_length", "yes"),
        ("save_total_limit", 0),
        ("logging_steps", None),
        ("epoch", 3),
        ("score_target", "fuzzy"),
        ("score_weight", 0),
        ("score_weight", -1.0),
        ("score_weight", "heavy"),
        ("score_weight", float("inf")),
        ("score_weight", True),
    ],
)
def test_config_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as ei:
        train_config({key: value})
    assert ei.value.key == f"train.{key}"


def test_config_rejects_non_mapping():
    with pytest.raises(ConfigError, match="train"):
        train_config([1, 2])


# --------------------------------------------------------------------------- losses


def test_eval_loss_is_score_only_and_metrics_and_live(tiny_dir, tmp_path):
    model, tok = load(tiny_dir)
    train, test = examples(8), examples(6, start=100)
    before = score_loss_by_hand(model, tok, test)
    m = finetune(model, tok, train, {"test": test}, tmp_path, cfg(epochs=2, eval_steps=1))
    ev = m["eval"]["test"]
    # Trainer's eval loss at step 0 and at the end equal the hand-computed score-token cross-entropy
    assert ev["initial"] == pytest.approx(before, abs=1e-5)
    assert ev["final"] == pytest.approx(score_loss_by_hand(model, tok, test), abs=1e-5)
    # evaluated every step (2 per epoch) and once per epoch end
    assert [p["step"] for p in ev["history"]] == [1, 2, 3, 4]
    assert [p["epoch"] for p in ev["per_epoch"]] == [1.0, 2.0]
    saved = json.loads((tmp_path / "model" / "metrics.json").read_text())
    # metrics.json holds what the inputs determine; the timings are returned only (the model folder is a DVC
    # output whose hash must not change from run to run)
    assert set(saved) == {
        "train_loss",
        "train_loss_mean",
        "eval",
        "steps",
        "epochs",
        "supervised_tokens",
        "padding_share",
        "padding_share_batch_mean",
        "padding_share_batch_max",
        "batches",
        "resumed_from",
        "encode",
        "config",
    }
    assert set(TIMING_KEYS) == {"seconds", "train_seconds", "steps_per_second", "supervised_tokens_per_second"}
    assert set(m) == set(saved) | set(TIMING_KEYS)
    assert all(m[k] > 0 for k in TIMING_KEYS) and m["seconds"] >= m["train_seconds"]
    assert {k: m[k] for k in saved} == saved
    assert saved["steps"] == 4 and saved["batches"] == 4 and saved["resumed_from"] is None
    assert 0 <= saved["padding_share"] < 0.5 and saved["supervised_tokens"] > 0
    live = tmp_path / "live"
    train_tsv = (live / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    eval_tsv = (live / "plots" / "metrics" / "eval" / "test" / "loss.tsv").read_text().splitlines()
    assert train_tsv[0].split("\t") == ["step", "loss"] and len(train_tsv) == 1 + 4
    assert [int(r.split("\t")[0]) for r in eval_tsv[1:]] == [0, 1, 2, 3, 4]
    assert json.loads((live / "metrics.json").read_text())["eval"]["test"]["loss"] == pytest.approx(ev["final"])
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "model" / "tokenizer.json").is_file()
    assert last_checkpoint(tmp_path) is not None


def test_train_loss_covers_the_whole_target(tiny_dir, tmp_path):
    model, tok = load(tiny_dir)
    train = examples(4)
    enc, _ = encode_all(tok, train, 512)
    batch = collate(enc, pad_id_for(tok))
    # the target is more than the score: explanation and EOS are supervised too
    assert all(sum(t != IGNORE for t in e.labels) > 3 for e in enc)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        ce = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
        )
        score = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), batch["eval_labels"][:, 1:].reshape(-1), ignore_index=IGNORE
        )
    # one batch holding the whole set: the first logged loss is computed before the first update
    m = finetune(model, tok, train, {}, tmp_path, cfg(batch_size=4, epochs=1))
    assert m["steps"] == 1
    assert m["train_loss"] == pytest.approx(float(ce), abs=1e-4)
    assert abs(float(ce) - float(score)) > 1e-3  # (it is not the score-only loss)
    assert m["supervised_tokens"] == sum(sum(t != IGNORE for t in e.labels) for e in enc)


def test_learnable_pattern_lowers_eval_loss(tiny_dir, tmp_path):
    model, tok = load(tiny_dir)
    m = finetune(
        model,
        tok,
        examples(16),
        {"test": examples(8, start=100)},
        tmp_path,
        cfg(epochs=8, learning_rate=1e-2, logging_steps=4),
    )
    ev = m["eval"]["test"]
    assert len(ev["per_epoch"]) == 8
    print(
        f"learnable: eval {ev['initial']:.3f} -> {ev['final']:.3f}, {m['steps_per_second']:.1f} steps/s, "
        f"{m['supervised_tokens_per_second']:.0f} sup tok/s, padding {m['padding_share']:.3f}"
    )
    assert ev["final"] < ev["initial"] - 1.0, ev
    # ln 2 would be a perfect guess between the two labels given the pattern; the prior alone gives at most ln 2
    assert ev["final"] < 1.5


# --------------------------------------------------------------------------- bad input


def test_unsupervised_example_never_reaches_the_trainer(tiny_dir, tmp_path):
    from explainft import train as train_mod

    model, tok = load(tiny_dir)
    # an example that cannot fit is an error naming the example and max_length, before any training
    with pytest.raises(EncodeError, match="max_length"):
        finetune(model, tok, examples(2), {}, tmp_path, cfg(max_length=20))
    assert not (tmp_path / "checkpoints").exists()
    # an all-masked row (encode never returns one; a hand-made one) is refused by the dataset
    enc, _ = encode_all(tok, examples(1), 512)
    masked = Encoded(**{**enc[0].__dict__, "labels": [IGNORE] * len(enc[0])})
    with pytest.raises(EncodeError, match="no supervised token"):
        train_mod._dataset_cls()([masked], split="train")


# --------------------------------------------------------------------------- resume

CHILD = textwrap.dedent("""
    import sys, time, json
    from pathlib import Path
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    sys.path.insert(0, {tests!r})
    from test_train import examples, cfg
    from explainft.train import finetune

    class Hang(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if {hang}:
                print("saved", state.global_step, flush=True)
                time.sleep(120)

    model = AutoModelForCausalLM.from_pretrained({tiny!r}); tok = AutoTokenizer.from_pretrained({tiny!r})
    finetune(model, tok, examples(12), {{"test": examples(4, start=100)}}, Path({out!r}), cfg(**{kw!r}),
             callbacks=[Hang()])
""")
RESUME_CFG = dict(epochs=2, eval_steps=2, batch_size=4, learning_rate=1e-3)  # 3 steps/epoch, checkpoint every 2


def run_child(tiny_dir, out, hang):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    code = CHILD.format(tests=str(ROOT / "tests"), hang=hang, tiny=str(tiny_dir), out=str(out), kw=RESUME_CFG)
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tiny_dir, tmp_path):
    from safetensors.torch import load_file

    killed = tmp_path / "killed"
    proc = run_child(tiny_dir, killed, hang=True)
    deadline = time.monotonic() + 60
    try:
        while last_checkpoint(killed) is None:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.1)
        time.sleep(0.3)  # on_save runs after the checkpoint is complete; the child now sleeps
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert last_checkpoint(killed).name == "checkpoint-2" and not (killed / "model").exists()

    resumed = run_child(tiny_dir, killed, hang=False)
    log, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, log
    # the uninterrupted run, in this process
    model, tok = load(tiny_dir)
    ref = finetune(model, tok, examples(12), {"test": examples(4, start=100)}, tmp_path / "ref", cfg(**RESUME_CFG))

    got = json.loads((killed / "model" / "metrics.json").read_text())
    assert got["resumed_from"] == 2 and got["steps"] == ref["steps"] == 6
    a = load_file(killed / "model" / "model.safetensors")
    b = load_file(tmp_path / "ref" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"resume: max abs weight diff {diff:g}")
    assert diff < 1e-6, diff  # observed 0.0 on CPU (same data order, RNG states restored)
    # the curves are whole: no step lost or duplicated across the kill
    assert [p["step"] for p in got["eval"]["test"]["history"]] == [p["step"] for p in ref["eval"]["test"]["history"]]
    assert got["eval"]["test"]["final"] == pytest.approx(ref["eval"]["test"]["final"], abs=1e-6)


def test_test_split_examples_without_a_variant_are_evaluated_on_the_score_alone(tiny_dir, tmp_path):
    """Test splits hold plain Examples (no variant): finetune scores them with the score-only target."""
    from dataclasses import replace

    model, tok = load(tiny_dir)
    test = examples(4, start=200)
    plain = [replace(e, variant=None, explanation=None) for e in test]
    before = score_loss_by_hand(model, tok, test)
    m = finetune(model, tok, examples(4), {"test": plain}, tmp_path, cfg(epochs=1))
    # the score-token loss does not depend on what follows the score, so it equals the hand computation
    assert m["eval"]["test"]["initial"] == pytest.approx(before, abs=1e-5)


def test_selected_token_loss_equals_the_models_own_loss(tiny_dir):
    """The LM head applied to supervised positions only gives the stock causal-LM loss (train and eval labels)."""
    from explainft.train import selected_token_loss

    model, tok = load(tiny_dir)
    enc, _ = encode_all(tok, examples(5), 512)
    batch = collate(enc, pad_id_for(tok))
    for labels in (batch["labels"], batch["eval_labels"]):
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
        total, n = selected_token_loss(model, inputs)
        ref = model(**inputs).loss
        assert int(n) == int((labels[:, 1:] != IGNORE).sum())
        assert float(total / n) == pytest.approx(float(ref), rel=1e-5)
    # gradients flow to the body and the head
    total, n = selected_token_loss(model, {**batch})
    (total / n).backward()
    assert model.lm_head.weight.grad is not None and model.model.layers[0].mlp.up_proj.weight.grad is not None


def test_a_model_whose_hidden_states_are_not_final_falls_back_to_the_stock_loss(tiny_dir, tmp_path, monkeypatch):
    """If the selected-token loss disagrees with the model's own on the first batch, training uses the stock loss."""
    import explainft.train as tr

    real = tr.selected_token_loss
    monkeypatch.setattr(tr, "selected_token_loss", lambda m, i: (lambda t, n: (t * 1.5, n))(*real(m, i)))
    model, tok = load(tiny_dir)
    with pytest.warns(RuntimeWarning, match="differs from the model's own"):
        m = finetune(model, tok, examples(4), {"test": examples(2, start=50)}, tmp_path, cfg(epochs=1))
    assert m["train_loss"] is not None and m["eval"]["test"]["final"] is not None


SAME_RUN = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import torch
torch.set_num_threads(1)
from test_train import cfg, examples
from explainft.students import load_student
from explainft.train import finetune
torch.manual_seed(0)
model, tok = load_student({tiny!r}, method="lora", quantization="none", lora={{"r": 4, "dropout": 0.1}})
finetune(model, tok, examples(4), {{"test": examples(2, start=50)}}, Path({out!r}), cfg(epochs=1, batch_size=2))
"""


def test_the_same_lora_run_writes_the_same_model_bytes_whatever_the_hash_seed(tiny_dir, tmp_path):
    """The model folder is a DVC output: the same run in two processes gives the same bytes. peft writes
    target_modules, a set, in the order of Python's per-process string hash seed; finetune sorts it."""
    folders = []
    for seed in ("1", "2"):
        out = tmp_path / f"hashseed_{seed}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONHASHSEED": seed,
        }
        code = SAME_RUN.format(tests=str(ROOT / "tests"), tiny=str(tiny_dir), out=str(out))
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        folders.append({f.name: f.read_bytes() for f in sorted((out / "model").iterdir())})
    assert folders[0] == folders[1]
    assert sorted(folders[0]) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "metrics.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert json.loads(folders[0]["adapter_config.json"])["target_modules"] == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]


def test_checkpoints_of_another_run_are_not_resumed(tiny_dir, tmp_path):
    model, tok = load(tiny_dir)
    c = cfg(epochs=1, batch_size=2)
    m1 = finetune(model, tok, examples(4), {"test": examples(2, start=50)}, tmp_path, c, fingerprint={"lr": 1})
    assert m1["resumed_from"] is None and last_checkpoint(tmp_path) is not None
    assert json.loads((tmp_path / "checkpoints" / "RUN.json").read_text()) == {"lr": 1}
    # same fingerprint: resumes from the finished run's last checkpoint (nothing left to train)
    model, tok = load(tiny_dir)
    m2 = finetune(model, tok, examples(4), {"test": examples(2, start=50)}, tmp_path, c, fingerprint={"lr": 1})
    assert m2["resumed_from"] == m1["steps"]
    # another fingerprint: the old checkpoints are deleted and the run starts from step 0
    model, tok = load(tiny_dir)
    m3 = finetune(
        model,
        tok,
        examples(4),
        {"test": examples(2, start=50)},
        tmp_path,
        c,
        fingerprint={"lr": 2},
        keep_checkpoints=False,
    )
    assert m3["resumed_from"] is None and m3["steps"] == m1["steps"]
    assert last_checkpoint(tmp_path) is None  # removed after success
    assert json.loads((tmp_path / "checkpoints" / "RUN.json").read_text()) == {"lr": 2}
    assert (tmp_path / "checkpoints" / "initial_eval.json").is_file()
    # the Trainer's state (with its run times) stays out of the model folder, a DVC output
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json",
        "generation_config.json",
        "metrics.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_the_first_batch_check_draws_no_random_numbers(tiny_dir):
    """The check runs in eval mode: LoRA dropout draws nothing, so a resumed run replays the same dropout masks."""
    from explainft.students import load_student
    from explainft.train import _matches_stock_loss

    model, tok = load_student(str(tiny_dir), method="lora", quantization="none", lora={"r": 4, "dropout": 0.3})
    model.train()
    enc, _ = encode_all(tok, examples(4), 512)
    batch = collate(enc, pad_id_for(tok))
    state = torch.get_rng_state()
    assert _matches_stock_loss(model, batch)
    assert torch.equal(state, torch.get_rng_state()) and model.training


# --------------------------------------------------------------------------- soft score targets


def test_two_hot_weights_average_to_the_score():
    from explainft.train import two_hot

    assert two_hot(0.0) == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert two_hot(1.0) == (0.0, 0.0, 0.0, 0.0, 1.0)
    assert two_hot(0.75) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert two_hot(0.6) == pytest.approx((0.0, 0.0, 0.6, 0.4, 0.0))  # 3.4 on the 1-5 scale
    assert two_hot(0.9833) == pytest.approx((0.0, 0.0, 0.0, 0.0668, 0.9332))
    for s in (0.0, 0.01, 0.125, 1 / 3, 0.5, 0.874, 0.99, 1.0):
        w = two_hot(s)
        assert sum(w) == pytest.approx(1.0) and min(w) >= 0.0
        assert sum(k * wk for k, wk in enumerate(w, start=1)) == pytest.approx(1 + 4 * s)
        nonzero = [k for k, wk in enumerate(w) if wk > 0]
        assert len(nonzero) <= 2 and (len(nonzero) < 2 or nonzero[1] == nonzero[0] + 1)


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), "0.5", True, None])
def test_two_hot_rejects_what_is_not_a_unit_score(bad):
    from explainft.train import two_hot

    with pytest.raises(ValueError, match="score must be a number in"):
        two_hot(bad)


def test_config_score_target():
    assert train_config({}).score_target == "hard"  # the paper's
    assert train_config({"score_target": "soft"}).score_target == "soft"
    with pytest.raises(ConfigError) as ei:
        train_config({"score_target": "fuzzy"})
    assert ei.value.key == "train.score_target" and "hard, soft" in str(ei.value)


def _soft_batch(tok, exs, weights):
    from explainft.encode import score_token_ids

    enc, _ = encode_all(tok, exs, 512)
    batch = collate(enc, pad_id_for(tok))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
    soft = {"score_index": batch["score_index"], "score_weights": torch.tensor(weights, dtype=torch.float32)}
    return inputs, soft, score_token_ids(tok, exs[0], 512)


def test_soft_loss_by_hand_and_on_both_paths(tiny_dir):
    """One-hot weights give the hard loss; two-hot ones swap each score token's CE for -sum w log p, by hand."""
    from explainft.train import full_logits_loss, selected_token_loss, two_hot

    model, tok = load(tiny_dir)
    model.eval()
    exs = examples(4)  # labels 5, 1, 5, 1
    onehot = [tuple(1.0 if k == ex.label else 0.0 for k in range(1, 6)) for ex in exs]
    inputs, soft, ids = _soft_batch(tok, exs, onehot)
    with torch.no_grad():
        hard, n = selected_token_loss(model, inputs)
        same, n2 = selected_token_loss(model, inputs, score=soft, score_ids=ids)
        assert float(same) == pytest.approx(float(hard), rel=1e-6) and int(n2) == int(n)

        weights = [two_hot(s) for s in (0.9, 0.1, 0.6, 0.0)]
        inputs, soft, ids = _soft_batch(tok, exs, weights)
        got, _ = selected_token_loss(model, inputs, score=soft, score_ids=ids)
        full, _ = full_logits_loss(model, inputs, score=soft, score_ids=ids)
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float()
        expect = float(hard)
        for row, (i, w) in enumerate(zip(soft["score_index"].tolist(), weights)):
            logp = torch.log_softmax(logits[row, i - 1], dim=-1)
            expect -= -float(logp[inputs["labels"][row, i]])  # the hard CE of the score token goes ...
            expect += -sum(wk * float(logp[t]) for wk, t in zip(w, ids))  # ... and the soft one comes in
    assert float(got) == pytest.approx(expect, rel=1e-5)
    assert float(full) == pytest.approx(expect, rel=1e-5)
    assert abs(float(got) - float(hard)) > 1e-3  # the weights matter


def test_score_weight_scales_the_score_tokens_term_by_hand(tiny_dir):
    """score_weight w: the loss is the plain one plus (w - 1) x the score tokens' term, hard or soft."""
    from explainft.train import selected_token_loss, two_hot

    model, tok = load(tiny_dir)
    model.eval()
    exs = examples(4)
    weights = [two_hot(s) for s in (0.9, 0.1, 0.6, 0.0)]
    inputs, soft, ids = _soft_batch(tok, exs, weights)
    hard_only = {"score_index": soft["score_index"]}
    with torch.no_grad():
        plain, _ = selected_token_loss(model, inputs)
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float()
        hard_term = soft_term = 0.0
        for row, (i, w) in enumerate(zip(soft["score_index"].tolist(), weights)):
            logp = torch.log_softmax(logits[row, i - 1], dim=-1)
            hard_term += -float(logp[inputs["labels"][row, i]])
            soft_term += -sum(wk * float(logp[t]) for wk, t in zip(w, ids))
        one, _ = selected_token_loss(model, inputs, score=hard_only, score_ids=ids, score_weight=1.0)
        three, _ = selected_token_loss(model, inputs, score=hard_only, score_ids=ids, score_weight=3.0)
        soft3, _ = selected_token_loss(model, inputs, score=soft, score_ids=ids, score_weight=3.0)
    assert float(one) == pytest.approx(float(plain), rel=1e-6)
    assert float(three) == pytest.approx(float(plain) + 2 * hard_term, rel=1e-5)
    assert float(soft3) == pytest.approx(float(plain) - hard_term + 3 * soft_term, rel=1e-5)


def test_a_soft_target_on_a_masked_position_is_an_error(tiny_dir):
    from explainft.train import selected_token_loss, two_hot

    model, tok = load(tiny_dir)
    exs = examples(2)
    inputs, soft, ids = _soft_batch(tok, exs, [two_hot(0.5)] * 2)
    soft["score_index"] = soft["score_index"] - 3  # a prompt token
    with torch.no_grad(), pytest.raises(RuntimeError, match="masked"):
        selected_token_loss(model, inputs, score=soft, score_ids=ids)


def _expected_scores(model, tok, exs) -> list[float]:
    from explainft.encode import score_token_ids

    ids = score_token_ids(tok, exs[0], 512)
    enc, _ = encode_all(tok, exs, 512)
    model.eval()
    out = []
    with torch.no_grad():
        for e in enc:
            logits = model(input_ids=torch.tensor([e.input_ids[: e.score_index]])).logits[0, -1]
            p = torch.softmax(logits[list(ids)].float(), dim=-1)
            out.append(float(sum((k - 1) / 4 * p[k - 1] for k in range(1, 6))))
    return out


def test_soft_targets_learn_the_unrounded_score(tiny_dir, tmp_path):
    """Every item scores 0.9 (label 5, as 0.9 rounds to 5 on the 1-5 scale). Trained on the label, the expected score
    heads for 1.0; trained two-hot (0.4 on "4", 0.6 on "5"), for 0.9: the rounding bias the soft target removes."""
    import dataclasses

    def data(n, start=0):
        return [dataclasses.replace(example(start + i), score=0.9) for i in range(n)]

    train, test = data(16), data(8, start=100)
    got = {}
    for target in ("hard", "soft"):
        model, tok = load(tiny_dir)
        m = finetune(
            model,
            tok,
            train,
            {"test": test},
            tmp_path / target,
            cfg(epochs=16, learning_rate=1e-2, logging_steps=4, score_target=target),
        )
        assert m["config"]["score_target"] == target
        scores = _expected_scores(model, tok, test)
        got[target] = sum(scores) / len(scores)
    print("mean expected score:", got)
    assert got["hard"] > 0.97
    assert got["soft"] == pytest.approx(0.9, abs=0.01)


def test_a_weighted_score_leaves_the_evaluation_loss_plain(tiny_dir, tmp_path):
    """score_weight weighs the score term in training only: evaluation batches (no score_index) keep the plain,
    unweighted score-token loss, so its curves compare across weights."""
    model, tok = load(tiny_dir)
    test = examples(4, start=200)
    before = score_loss_by_hand(model, tok, test)
    m = finetune(model, tok, examples(4), {"test": test}, tmp_path, cfg(epochs=1, score_weight=3.0))
    assert m["eval"]["test"]["initial"] == pytest.approx(before, abs=1e-5)
    assert m["config"]["score_weight"] == 3.0 and m["eval"]["test"]["final"] is not None


def test_soft_targets_on_the_full_logits_path(tiny_dir, tmp_path, monkeypatch):
    """When the first-batch check sends training to the model's full logits (as under several processes), the soft
    target still applies there: the 0.9 items of the test above still learn 0.9, not the rounded label's 1.0."""
    import dataclasses

    import explainft.train as tr

    calls = []
    real = tr.full_logits_loss
    monkeypatch.setattr(tr, "_matches_stock_loss", lambda *a, **k: False)
    monkeypatch.setattr(tr, "full_logits_loss", lambda *a, **k: calls.append(k) or real(*a, **k))
    train = [dataclasses.replace(example(i), score=0.9) for i in range(16)]
    test = [dataclasses.replace(example(100 + i), score=0.9) for i in range(8)]
    model, tok = load(tiny_dir)
    finetune(
        model,
        tok,
        train,
        {"test": test},
        tmp_path,
        cfg(epochs=16, learning_rate=1e-2, logging_steps=4, score_target="soft"),
    )
    assert calls and all("score_weights" in k["score"] for k in calls)
    scores = _expected_scores(model, tok, test)
    assert sum(scores) / len(scores) == pytest.approx(0.9, abs=0.01)


def test_soft_targets_need_one_token_per_label(tiny_dir, tmp_path, monkeypatch):
    import explainft.train as tr

    model, tok = load(tiny_dir)
    monkeypatch.setattr(tr, "score_token_ids", lambda *a, **k: (11, 12, 13, 14, 15))  # not the examples' tokens
    with pytest.raises(EncodeError, match=r"train: example 'd/0'.*score_target: hard"):
        finetune(model, tok, examples(4), {"test": examples(2, start=50)}, tmp_path, cfg(score_target="soft"))


def test_a_batch_mixing_soft_and_hard_items_is_an_error(tiny_dir):
    from explainft.train import Collator, _dataset_cls, two_hot

    _, tok = load(tiny_dir)
    enc, _ = encode_all(tok, examples(2), 512)
    Dataset = _dataset_cls()
    soft = Dataset(enc, split="train", score_weights=[two_hot(1.0), two_hot(0.0)])
    hard = Dataset(enc, split="train")
    collator = Collator(pad_id_for(tok))
    batch = collator([soft[0], soft[1]])
    assert batch["score_weights"].shape == (2, 5) and batch["score_index"].tolist() == [e.score_index for e in enc]
    assert "score_weights" not in collator([hard[0], hard[1]])
    with pytest.raises(ValueError, match="mixes"):
        collator([soft[0], hard[1]])
    with pytest.raises(ValueError, match="1 score-weight rows for 2 examples"):
        Dataset(enc, split="train", score_weights=[two_hot(1.0)])


# --------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize(
    "dtype, device, flags",
    [
        ("bfloat16", "cuda:0", {"bf16": True, "fp16": False, "use_cpu": False}),
        ("float16", "cuda:0", {"bf16": False, "fp16": True, "use_cpu": False}),  # V100/T4: fp16 + loss scaling
        ("float32", "cpu", {"bf16": False, "fp16": False, "use_cpu": True}),
    ],
)
def test_training_arguments_autocast_in_the_loading_s_compute_dtype(tmp_path, dtype, device, flags):
    from explainft.students import Loading
    from explainft.train import training_arguments, training_kwargs

    loading = Loading("full", "none", dtype, device)
    kw = training_kwargs(cfg(), tmp_path, n_eval=1, loading=loading)
    assert {k: kw[k] for k in flags} == flags
    if device == "cpu":  # (TrainingArguments refuses bf16/fp16 on a machine without CUDA: built on the CPU only)
        args = training_arguments(cfg(), tmp_path, n_eval=1, loading=loading)
        assert (args.bf16, args.fp16, args.use_cpu) == (False, False, True)


def test_a_gpu_without_native_bf16_trains_in_fp16(tmp_path, monkeypatch):
    """torch.cuda.is_bf16_supported() is True on a V100 (bf16 emulated, slowly): the capability decides."""
    from explainft.train import training_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    kw = training_kwargs(cfg(), tmp_path, n_eval=1)  # no loading given: this process's device and its dtype
    assert (kw["fp16"], kw["bf16"], kw["use_cpu"]) == (True, False, False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    kw = training_kwargs(cfg(), tmp_path, n_eval=1)
    assert (kw["fp16"], kw["bf16"]) == (False, True)
