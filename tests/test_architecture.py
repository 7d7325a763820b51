"""Module-name lookups for every supported family, through peft and DDP wrappers (explainft.architecture)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from explainft.architecture import (  # noqa: E402
    FAMILIES,
    MODULE_TYPES,
    ArchitectureError,
    layer_index,
    model_parts,
    module_type,
    unwrap,
)
from explainft.config.train import PROJECTIONS  # noqa: E402


def tiny(family: str, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    cfg_cls, model_cls = {"mistral": (MistralConfig, MistralForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}[
        family
    ]
    cfg = cfg_cls(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return model_cls(cfg).eval()


def fake_ddp(module):
    """A DistributedDataParallel object holding ``module`` without a process group (only ``.module`` is read)."""
    ddp = torch.nn.parallel.DistributedDataParallel.__new__(torch.nn.parallel.DistributedDataParallel)
    torch.nn.Module.__init__(ddp)
    ddp.module = module
    return ddp


def test_module_types_are_the_projections_the_students_adapt():
    assert set(MODULE_TYPES) == set(PROJECTIONS) and len(MODULE_TYPES) == 7


@pytest.mark.parametrize("family", ["mistral", "llama"])
def test_parts_of_a_plain_model(family):
    model = tiny(family, layers=3)
    parts = model_parts(model)
    assert parts.family == family
    assert parts.body is model.model
    assert parts.layers is model.model.layers and parts.n_layers == 3
    assert parts.final_norm is model.model.norm
    assert parts.lm_head is model.lm_head is model.get_output_embeddings()
    # the parts compose to the model's own logits: head(norm(last block)) at every position
    ids = torch.tensor([[1, 5, 7, 9]])
    with torch.no_grad():
        h = model.model(input_ids=ids).last_hidden_state  # already normed
        assert torch.allclose(parts.lm_head(h), model(input_ids=ids).logits, atol=1e-6)


@pytest.mark.parametrize("wrap", ["peft", "ddp", "dataparallel", "ddp+peft"])
def test_parts_through_wrappers(wrap):
    from peft import LoraConfig, get_peft_model

    model = tiny("mistral")
    inner = model
    wrapped = model
    if "peft" in wrap:
        wrapped = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=list(PROJECTIONS)))
    if "ddp" in wrap:
        wrapped = fake_ddp(wrapped)
    if wrap == "dataparallel":
        wrapped = torch.nn.DataParallel(wrapped)
    assert unwrap(wrapped) is inner
    parts = model_parts(wrapped)
    assert parts.family == "mistral"
    assert parts.layers is inner.model.layers and parts.lm_head is inner.lm_head
    if "peft" in wrap:  # the live (LoRA-wrapped) projections, so hooks see the adapters
        assert type(parts.layers[0].self_attn.q_proj).__module__.startswith("peft")


def test_unknown_family_names_the_class_and_the_known_ones():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_positions=32, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ArchitectureError) as err:
        model_parts(model)
    msg = str(err.value)
    assert "GPT2LMHeadModel" in msg and "'gpt2'" in msg
    assert all(f in msg for f in FAMILIES) and "FAMILIES" in msg


@pytest.mark.parametrize(
    "name, mtype, layer",
    [
        ("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight", "q_proj", 3),
        ("base_model.model.model.layers.12.mlp.down_proj.lora_B.default.weight", "down_proj", 12),
        ("model.layers.3.mlp.up_proj.weight", "up_proj", 3),
        ("model.layers.0.self_attn.o_proj.base_layer.weight", "o_proj", 0),
        ("model.layers.31.mlp.gate_proj", "gate_proj", 31),
        ("model.layers.7.self_attn.k_proj.bias", "k_proj", 7),
        ("layers.2.self_attn.v_proj.weight", "v_proj", 2),
        ("model.layers.4.input_layernorm.weight", None, 4),
        ("model.norm.weight", None, None),
        ("model.embed_tokens.weight", None, None),
        ("lm_head.weight", None, None),
        ("base_model.model.lm_head.modules_to_save.default.weight", None, None),
        ("model.sublayers.3.q_proj.weight", "q_proj", None),  # "sublayers" is not the block list
        ("model.layers.x.q_projection.weight", None, None),
    ],
)
def test_name_parsing(name, mtype, layer):
    assert module_type(name) == mtype
    assert layer_index(name) == layer


def test_every_parameter_name_of_a_peft_model_parses():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny("llama", layers=2), LoraConfig(r=2, lora_alpha=4, target_modules=list(PROJECTIONS)))
    lora = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert len(lora) == 2 * 7 * 2
    assert {(layer_index(n), module_type(n)) for n in lora} == {(i, t) for i in range(2) for t in MODULE_TYPES}
