"""Frobenius norms of weight-update differences between two fine-tunes (explainft.analysis.lora_diff, Table 5)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from explainft.analysis.lora_diff import (  # noqa: E402
    TABLE5_COLUMNS,
    WeightDiffError,
    heatmap,
    table_row,
    weight_differences,
)
from explainft.architecture import MODULE_TYPES, layer_index, module_type  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def base(hidden: int = 16, layers: int = 2, seed: int = 0):
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(
        vocab_size=40,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        sliding_window=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return MistralForCausalLM(cfg)


def adapter(
    out: Path,
    *,
    seed: int,
    r: int = 2,
    alpha: int = 4,
    rslora: bool = False,
    rank_pattern=None,
    alpha_pattern=None,
    targets=MODULE_TYPES,
    hidden: int = 16,
):
    """Save a LoRA adapter with random non-zero A and B (init_lora_weights=False); return {(layer, type): ΔW}."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        use_rslora=rslora,
        rank_pattern=rank_pattern or {},
        alpha_pattern=alpha_pattern or {},
        target_modules=list(targets),
        init_lora_weights=False,
    )
    model = base(hidden=hidden)
    torch.manual_seed(seed)
    model = get_peft_model(model, cfg)
    model.save_pretrained(out)
    deltas = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "get_delta_weight") and "default" in getattr(mod, "lora_A", {}):
            # in float64 from peft's own factors and scaling (its get_delta_weight is float32; checked to agree)
            a, b = mod.lora_A["default"].weight.double(), mod.lora_B["default"].weight.double()
            delta = mod.scaling["default"] * (b @ a)
            assert torch.allclose(delta.float(), mod.get_delta_weight("default"), rtol=1e-5, atol=1e-6)
            deltas[(layer_index(name), module_type(name))] = delta
    return deltas


def reference(da: dict, db: dict) -> dict:
    return {k: float(torch.linalg.norm(da[k] - db[k])) for k in da}


def check(result: dict, ref: dict) -> None:
    assert result["n_modules"] == len(ref)
    for (i, t), v in ref.items():
        assert result["per_layer"][t][i] == pytest.approx(v, rel=1e-9, abs=1e-12)
    for t in result["module_types"]:
        assert result["per_type"][t] == pytest.approx(math.fsum(v for (i, tt), v in ref.items() if tt == t), rel=1e-9)
    assert max(result["normalised"].values()) == 1.0
    assert all(0 <= v <= 1 for v in result["normalised"].values())


@pytest.mark.parametrize("rslora", [False, True])
@pytest.mark.parametrize("ranks", ["equal", "different"])
def test_lora_norms_equal_the_materialised_difference(tmp_path, rslora, ranks):
    kw_b = {"r": 2, "alpha": 4} if ranks == "equal" else {"r": 4, "alpha": 3}
    if ranks == "different" and not rslora:  # per-module ranks and alphas too (peft warns about them with rslora)
        kw_b["rank_pattern"] = {"q_proj": 3, "model.layers.1.mlp.down_proj": 1}
        kw_b["alpha_pattern"] = {"up_proj": 7}
    da = adapter(tmp_path / "a", seed=1, rslora=rslora)
    db = adapter(tmp_path / "b", seed=2, rslora=rslora, **kw_b)
    if "rank_pattern" in kw_b:  # the patterns really took effect
        assert db[(0, "q_proj")].shape == (16, 16) and torch.linalg.matrix_rank(db[(0, "q_proj")]) == 3
    ref = reference(da, db)
    assert all(v > 0 for v in ref.values())
    fast = weight_differences(tmp_path / "a", tmp_path / "b")
    assert fast["kind"] == "lora" and fast["n_layers"] == 2
    assert fast["module_types"] == list(TABLE5_COLUMNS)
    check(fast, ref)
    brute = weight_differences(tmp_path / "a", tmp_path / "b", brute_force=True)
    for t in TABLE5_COLUMNS:
        assert brute["per_layer"][t] == pytest.approx(fast["per_layer"][t], rel=1e-9)


def test_identical_adapters_differ_by_zero(tmp_path):
    adapter(tmp_path / "a", seed=5)
    adapter(tmp_path / "b", seed=5)
    res = weight_differences(tmp_path / "a", tmp_path / "b")
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in res["per_type"].values())
    assert set(res["normalised"].values()) == {0.0}


def test_a_training_run_folder_is_accepted(tmp_path):
    adapter(tmp_path / "a" / "model", seed=1)
    adapter(tmp_path / "b" / "model", seed=2)
    assert weight_differences(tmp_path / "a", tmp_path / "b")["kind"] == "lora"


def test_full_fine_tunes_compare_weights_directly(tmp_path):
    ma, mb = base(seed=1), base(seed=2)
    ma.save_pretrained(tmp_path / "a")
    mb.save_pretrained(tmp_path / "b")
    res = weight_differences(tmp_path / "a", tmp_path / "b")
    assert res["kind"] == "full" and res["n_modules"] == 2 * 7
    sa, sb = ma.state_dict(), mb.state_dict()
    ref = {
        (layer_index(k), module_type(k)): float(torch.linalg.norm(sa[k].double() - sb[k].double()))
        for k in sa
        if module_type(k) and layer_index(k) is not None
    }
    check(res, ref)
    assert "model.embed_tokens.weight" in res["skipped"] and "lm_head.weight" in res["skipped"]


def test_mismatched_modules_are_an_error_naming_the_module(tmp_path):
    adapter(tmp_path / "a", seed=1)
    adapter(tmp_path / "b", seed=2, targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"))
    with pytest.raises(WeightDiffError, match=r"only in .*a: model\.layers\.0\.mlp\.down_proj"):
        weight_differences(tmp_path / "a", tmp_path / "b")


def test_mismatched_shapes_are_an_error_naming_the_module(tmp_path):
    adapter(tmp_path / "a", seed=1)
    adapter(tmp_path / "b", seed=2, hidden=32)
    with pytest.raises(WeightDiffError, match=r"module model\.layers\.0\.[\w.]+_proj: .* not of the same base"):
        weight_differences(tmp_path / "a", tmp_path / "b")


def test_lora_against_full_and_missing_folders_are_errors(tmp_path):
    adapter(tmp_path / "a", seed=1)
    base().save_pretrained(tmp_path / "b")
    with pytest.raises(WeightDiffError, match="like with like"):
        weight_differences(tmp_path / "a", tmp_path / "b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightDiffError, match="neither a LoRA adapter"):
        weight_differences(tmp_path / "a", tmp_path / "empty")


def test_table_row_follows_the_paper_columns_and_heatmap_is_reproducible(tmp_path):
    with open(ROOT / "paper" / "table5_lora_weight_differences.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header[2:]) == TABLE5_COLUMNS
    res = {"normalised": {t: i / 10 for i, t in enumerate(MODULE_TYPES)}}
    assert table_row(res) == [res["normalised"][t] for t in header[2:]]

    per_layer = {t: [0.1 * (i + 1) * (j + 1) for i in range(3)] for j, t in enumerate(MODULE_TYPES)}
    per_layer["q_proj"][1] = None  # a block without that adapter: drawn blank
    p1, p2 = heatmap(per_layer, tmp_path / "x" / "h1.png", "ΔW"), heatmap(per_layer, tmp_path / "h2.png", "ΔW")
    b1 = p1.read_bytes()
    assert b1[:8] == b"\x89PNG\r\n\x1a\n" and b1 == p2.read_bytes()
    assert b"Software" not in b1
