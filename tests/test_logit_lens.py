"""Logit lens at the score position, Table 6's grouping, entropy differences (explainft.analysis.logit_lens)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from explainft.analysis.logit_lens import (  # noqa: E402
    LensError,
    LensResult,
    entropy_difference,
    group_blocks,
    logit_lens,
    rank_heatmap,
)
from explainft.encode import encode_example  # noqa: E402
from explainft.records import Example, Turn  # noqa: E402
from explainft.scoring import score_examples, score_prefixes  # noqa: E402
from explainft.targets import student_prompt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the river city north bank old bridge market square museum".split()
LAYERS = 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def example(i: int, label: int = 4) -> Example:
    """Examples of different lengths (so batches pad): 3·i extra words in the question."""
    question = "Where is Paris? " + " ".join(WORDS[j % len(WORDS)] for j in range(3 * i))
    return Example(
        id=f"d/{i}",
        dataset="d",
        dimension="on_topic",
        turns=(Turn("user", question), Turn("assistant", "In France, on the Seine.")),
        score=(label - 1) / 4,
        label=label,
        assessment="a",
        confidence="c",
    )


EXAMPLES = [example(i, label=1 + i % 5) for i in (3, 0, 5, 1, 4)]


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [student_prompt(e) + f" {k}\nSome explanation." for e in EXAMPLES for k in range(1, 6)]
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    t.train_from_iterator(texts * 3 + ["x 1 y 2 z 3 w 4 v 5"] * 100, trainer)
    t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", t.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=t, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_model(tok, seed: int = 0):
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        sliding_window=None,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(cfg).eval()
    with torch.no_grad():  # a non-trivial final norm, so normalising twice would show
        model.model.norm.weight.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok)


def reference(model, tok, ex: Example):
    """Per-block (entropy, rank of the output argmax) the slow way: unpadded prefix, hidden_states, full logits."""
    e = encode_example(tok, ex.with_target("none", ""), 512)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([e.input_ids[: e.score_index]]), output_hidden_states=True)
        own = out.logits[0, -1].double()
        hs = out.hidden_states  # embeddings, block 1 .. block L-1 raw, block L already final-normalised
        per_block = [model.lm_head(model.model.norm(hs[i][0, -1])) for i in range(1, LAYERS)]
        per_block.append(model.lm_head(hs[-1][0, -1]))  # not normalised again
    target = int(own.argmax())
    ent, rank = [], []
    for z in per_block:
        lp = torch.log_softmax(z.double(), -1)
        ent.append(float(-(lp.exp() * lp).sum()))
        rank.append(int((z > z[target]).sum()))
    own_lp = torch.log_softmax(own, -1)
    return ent, rank, target, float(-(own_lp.exp() * own_lp).sum())


def test_last_hidden_state_is_already_normalised_in_this_transformers(model, tok):
    """Why the lens captures raw block outputs: hidden_states[-1] has the final norm applied, once."""
    ids = torch.tensor([[1, 40, 50, 60]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
        assert len(out.hidden_states) == LAYERS + 1
        assert torch.allclose(model.lm_head(out.hidden_states[-1]), out.logits, atol=1e-5)
        twice = model.lm_head(model.model.norm(out.hidden_states[-1]))
        assert not torch.allclose(twice, out.logits, atol=1e-3)


def test_lens_matches_the_slow_reference_and_the_models_own_output(model, tok):
    res = logit_lens(model, tok, EXAMPLES, max_length=512, batch_size=4)
    assert res.ids == tuple(e.id for e in EXAMPLES)
    assert res.entropies.shape == res.ranks.shape == (len(EXAMPLES), LAYERS) and res.n_blocks == LAYERS
    for j, ex in enumerate(EXAMPLES):
        ent, rank, target, own_entropy = reference(model, tok, ex)
        assert res.predicted[j] == target
        assert res.entropies[j, -1] == pytest.approx(own_entropy, abs=1e-5)  # the model's own distribution
        assert res.ranks[j, -1] == 0  # its argmax is the top of the last block's lens
        assert res.entropies[j] == pytest.approx(ent, abs=1e-5)
        assert list(res.ranks[j]) == rank
        e = encode_example(tok, ex.with_target("none", ""), 512)
        assert res.n_tokens[j] == e.score_index
    # the position scoring reads (explainft.scoring): same prefix lengths
    assert [s.n_tokens for s in score_examples(model, tok, EXAMPLES, max_length=512)] == list(res.n_tokens)
    assert res.entropy == pytest.approx(res.entropies.mean(axis=0))
    assert res.mean_rank == pytest.approx(res.ranks.mean(axis=0))
    assert all(0 < h < np.log(len(tok)) + 1e-9 for h in res.entropy)
    d = res.to_dict()
    assert d["n_examples"] == len(EXAMPLES) and len(d["entropy"]) == LAYERS


def test_batch_size_does_not_change_the_result(model, tok):
    one = logit_lens(model, tok, EXAMPLES, max_length=512, batch_size=1)
    four = logit_lens(model, tok, EXAMPLES, max_length=512, batch_size=4)
    np.testing.assert_allclose(one.entropies, four.entropies, atol=1e-5)
    np.testing.assert_array_equal(one.ranks, four.ranks)
    np.testing.assert_array_equal(one.predicted, four.predicted)


def test_lens_through_a_peft_model_reads_the_adapted_model(tok):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    peft_model = get_peft_model(
        tiny_model(tok), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "up_proj"], init_lora_weights=False)
    ).eval()
    res = logit_lens(peft_model, tok, EXAMPLES[:2], max_length=512, batch_size=2)
    for j, ex in enumerate(EXAMPLES[:2]):
        _, _, target, own_entropy = reference(peft_model.get_base_model(), tok, ex)  # LoRA layers are live inside
        assert res.predicted[j] == target
        assert res.entropies[j, -1] == pytest.approx(own_entropy, abs=1e-5)
        assert res.ranks[j, -1] == 0


def test_before_lens_reads_the_prefix_scoring_reads_prompt_rationale_and_cue(model, tok):
    """Layout "before": the lens reads at the score position after the model's own rationale, as scoring does."""
    res = logit_lens(model, tok, EXAMPLES, max_length=512, batch_size=2, position="before", generate_tokens=6)
    prefixes, _ = score_prefixes(model, tok, EXAMPLES, max_length=512, position="before", generate_tokens=6)
    scored = score_examples(model, tok, EXAMPLES, max_length=512, position="before", generate_tokens=6)
    assert list(res.n_tokens) == [s.n_tokens for s in scored] == [p.encoded.score_index for p in prefixes]
    after = logit_lens(model, tok, EXAMPLES, max_length=512, batch_size=2)
    assert all(b > a for a, b in zip(after.n_tokens, res.n_tokens))  # the rationale is in the prefix
    for j, (ex, p) in enumerate(zip(EXAMPLES, prefixes)):
        row = p.encoded.input_ids[: p.encoded.score_index]
        text = tok.decode(row, skip_special_tokens=True)
        assert text.endswith(f"Explanation: {p.rationale}\nScore:") and p.rationale  # hand-checked layout
        with torch.no_grad():
            own = model(input_ids=torch.tensor([row])).logits[0, -1].double()
        lp = torch.log_softmax(own, -1)
        assert res.entropies[j, -1] == pytest.approx(float(-(lp.exp() * lp).sum()), abs=1e-5)
        assert res.predicted[j] == int(own.argmax()) and res.ranks[j, -1] == 0


# --------------------------------------------------------------------------- half precision


@pytest.fixture(scope="module")
def bf16_model(tok):
    return tiny_model(tok).to(torch.bfloat16)


def own_entropy(model, tok, ex: Example) -> float:
    e = encode_example(tok, ex.with_target("none", ""), 512)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([e.input_ids[: e.score_index]])).logits[0, -1].double(), -1)
    return float(-(lp.exp() * lp).sum())


def test_bf16_lens_runs_and_its_last_block_is_the_models_own_distribution(bf16_model, tok):
    res = logit_lens(bf16_model, tok, EXAMPLES, max_length=512, batch_size=4)
    for j, ex in enumerate(EXAMPLES):
        assert res.entropies[j, -1] == pytest.approx(own_entropy(bf16_model, tok, ex), rel=3e-2)


def scale_logits(model, factor: float):
    """A forward hook that scales the model's own output logits (what a different bf16 kernel could do)."""

    def hook(module, args, output):
        output.logits = output.logits * factor
        return output

    return model.register_forward_hook(hook)


def test_bf16_tolerance_is_the_compute_dtypes(bf16_model, tok, model):
    # a bf16-sized difference (1e-2 relative) between the lens and the model's own logits passes in bf16 ...
    handle = scale_logits(bf16_model, 1.01)
    try:
        res = logit_lens(bf16_model, tok, EXAMPLES, max_length=512, batch_size=4)
    finally:
        handle.remove()
    assert res.ranks[:, -1].tolist() == [0] * len(EXAMPLES)
    # ... but a large one still fails, in bf16, and the same 1e-2 fails in fp32 (tolerance 1e-3)
    for m, factor in ((bf16_model, 1.5), (model, 1.01)):
        handle = scale_logits(m, factor)
        try:
            with pytest.raises(LensError, match="does not reproduce the model's own logits"):
                logit_lens(m, tok, EXAMPLES, max_length=512, batch_size=4)
        finally:
            handle.remove()


def test_empty_input_and_bad_batch_size(model, tok):
    with pytest.raises(LensError, match="no examples"):
        logit_lens(model, tok, [], max_length=512)
    with pytest.raises(ValueError, match="batch_size"):
        logit_lens(model, tok, EXAMPLES, max_length=512, batch_size=0)


# --------------------------------------------------------------------------- grouping


def test_32_blocks_give_exactly_the_papers_columns():
    with open(ROOT / "paper" / "table6_entropy_differences.csv", newline="") as fh:
        header = next(csv.reader(fh))
    values = np.arange(1, 33, dtype=float)
    labels, grouped = group_blocks(values)
    assert labels == header[2:]
    assert list(grouped) == [np.mean(np.arange(1, 21)), np.mean(np.arange(21, 26))] + list(range(26, 33))
    assert list(grouped[:2]) == [10.5, 23.0]


@pytest.mark.parametrize(
    "n, labels, expected",
    [
        (1, ["block_1"], [1.0]),
        (2, ["block_1", "block_2"], [1.0, 2.0]),  # round(2·7/32) = 0 -> 1 late block; the 1 early block alone
        (3, ["blocks_1_2", "block_3"], [1.5, 3.0]),  # the tiny student
        (4, ["blocks_1_2", "block_3", "block_4"], [1.5, 3.0, 4.0]),  # 1 late; 3 early split round(2.4) = 2 and 1
        (
            30,
            ["blocks_1_18", "blocks_19_23"] + [f"block_{i}" for i in range(24, 31)],
            [9.5, 21.0] + [float(i) for i in range(24, 31)],
        ),  # SmolLM2-135M
    ],
)
def test_grouping_scales_with_depth(n, labels, expected):
    got_labels, grouped = group_blocks(np.arange(1, n + 1, dtype=float))
    assert got_labels == labels
    assert list(grouped) == pytest.approx(expected)


def test_grouping_options_and_several_rows():
    labels, grouped = group_blocks([1.0, 2.0, 3.0, 4.0], n_late=4)
    assert labels == ["block_1", "block_2", "block_3", "block_4"] and list(grouped) == [1, 2, 3, 4]
    labels, grouped = group_blocks(np.array([[1.0, 3.0, 5.0], [0.0, 0.0, 9.0]]))  # blocks on the last axis
    assert labels == ["blocks_1_2", "block_3"]
    np.testing.assert_array_equal(grouped, [[2.0, 5.0], [0.0, 9.0]])
    with pytest.raises(ValueError, match="n_late"):
        group_blocks([1.0, 2.0], n_late=3)


# --------------------------------------------------------------------------- differences and figure


def lens(ids, entropies) -> LensResult:
    e = np.asarray(entropies, dtype=float)
    return LensResult(
        ids=tuple(ids),
        entropies=e,
        ranks=np.zeros(e.shape, dtype=np.int64),
        predicted=np.zeros(len(ids), dtype=np.int64),
        n_tokens=np.ones(len(ids), dtype=np.int64),
    )


def test_entropy_difference_is_a_minus_b_normalised_by_the_largest_magnitude():
    a = lens(["x", "y"], [[1.0, 2.0, 3.0, 1.0], [1.0, 2.0, 5.0, 1.0]])  # means 1, 2, 4, 1
    b = lens(["x", "y"], [[1.0, 1.0, 1.0, 2.0], [1.0, 1.0, 1.0, 2.0]])  # means 1, 1, 1, 2
    d = entropy_difference(a, b)
    assert d["per_block"] == [0.0, 1.0, 3.0, -1.0]
    assert d["per_block_normalised"] == pytest.approx([0.0, 1 / 3, 1.0, -1 / 3])
    assert max(abs(x) for x in d["per_block_normalised"]) == 1.0
    assert d["labels"] == ["blocks_1_2", "block_3", "block_4"]
    assert d["grouped"] == pytest.approx([0.5, 3.0, -1.0])
    assert d["grouped_normalised"] == pytest.approx([1 / 6, 1.0, -1 / 3])


def test_entropy_difference_grouped_row_and_errors():
    a = lens(["x"], [[2.0, 4.0, 9.0]])
    b = lens(["x"], [[1.0, 1.0, 1.0]])
    d = entropy_difference(a, b)
    assert d["labels"] == ["blocks_1_2", "block_3"]
    assert d["grouped"] == pytest.approx([2.0, 8.0]) and d["grouped_normalised"] == pytest.approx([0.25, 1.0])
    same = entropy_difference(b, b)
    assert same["per_block_normalised"] == [0.0, 0.0, 0.0]
    with pytest.raises(LensError, match="different examples"):
        entropy_difference(a, lens(["z"], [[1.0, 1.0, 1.0]]))
    with pytest.raises(LensError, match="blocks"):
        entropy_difference(a, lens(["x"], [[1.0, 1.0]]))


def test_rank_heatmap_is_a_reproducible_png(tmp_path):
    res = lens(["a", "b", "c"], np.ones((3, 4)))
    res.ranks[:] = [[5, 3, 1, 0], [40, 2, 0, 0], [0, 0, 0, 0]]
    p1 = rank_heatmap(res, tmp_path / "sub" / "r1.png", "ranks")
    p2 = rank_heatmap(res, tmp_path / "r2.png", "ranks")
    data = p1.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == p2.read_bytes() and b"Software" not in data
