"""Expected-score prediction in one forward pass, loading raters, and `explainft rate` (explainft.scoring)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from click.testing import CliRunner  # noqa: E402

from explainft.cli import main as cli  # noqa: E402
from explainft.encode import EncodeError, encode_example  # noqa: E402
from explainft.records import Conversation, Example, Prediction, Turn, read_jsonl, write_jsonl  # noqa: E402
from explainft.scoring import (  # noqa: E402
    RaterNotFound,
    ScoringError,
    example_for,
    load_rater,
    predictions,
    score_examples,
)
from explainft.targets import student_prompt  # noqa: E402

WORDS = "the river city north bank old bridge market square museum".split()


def example(i: int, label: int = 4, dimension: str = "on_topic") -> Example:
    """Examples whose lengths differ (so batches pad): i extra words in the question."""
    question = "Where is Paris? " + " ".join(WORDS[j % len(WORDS)] for j in range(3 * i))
    return Example(
        id=f"d/{i}",
        dataset="d",
        dimension=dimension,
        turns=(Turn("user", question), Turn("assistant", "In France, on the Seine.")),
        score=(label - 1) / 4,
        label=label,
        assessment="a",
        confidence="c",
    )


def examples(n: int) -> list[Example]:
    return [example(i, label=1 + i % 5) for i in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the tiny model's small ops are slower with 2 spinning OpenMP threads on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def corpus() -> list[str]:
    return [student_prompt(e) + f" {k}\nSome explanation." for e in examples(6) for k in range(1, 6)] * 4


def bytelevel_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_model(tok, seed: int = 0):
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
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
    return MistralForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def bytelevel():
    """A tiny ByteLevel BPE (adds a BOS; " 1".." 5" are single tokens) and a random tiny Mistral."""
    hf = bytelevel_tokenizer(corpus() + ["x 1 y 2 z 3 w 4 v 5"] * 300)  # frequent enough to merge each " k"
    assert all(len(hf(f" {k}", add_special_tokens=False)["input_ids"]) == 1 for k in range(1, 6))
    return tiny_model(hf), hf


@pytest.fixture(scope="module")
def sentencepiece_like():
    """A Metaspace BPE with digits split off, like Mistral's SentencePiece: " 4" -> "▁", "4"; no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert hf.convert_ids_to_tokens(hf(" 4", add_special_tokens=False)["input_ids"]) == ["▁", "4"]
    return tiny_model(hf, seed=1), hf


def reference(model, tok, ex: Example, max_length: int = 512):
    """The score distribution computed the slow, obvious way: full logits of the unpadded prefix."""
    e = encode_example(tok, ex.with_target("none", ""), max_length)
    ids = [
        encode_example(tok, dataclasses.replace(ex, label=k).with_target("none", ""), max_length).score_token_id
        for k in range(1, 6)
    ]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([e.input_ids[: e.score_index]])).logits[0, -1].double()
    full = torch.softmax(logits, -1)
    five = full[ids]
    return (five / five.sum()).tolist(), float(five.sum()), int(torch.argmax(logits[ids])) + 1, e


# --------------------------------------------------------------------------- the distribution


def test_expected_score_from_known_logits(bytelevel):
    _, tok = bytelevel
    model = tiny_model(tok)
    ids = [encode_example(tok, example(0, label=k).with_target("none", ""), 512).score_token_id for k in range(1, 6)]
    # a head that ignores the hidden state: logits = bias, so p_k is known at every position
    p = torch.tensor([0.1, 0.2, 0.3, 0.25, 0.15], dtype=torch.float64)
    v = len(tok)
    bias = torch.full((v,), math.log(0.2 / (v - 5)), dtype=torch.float64)
    bias[ids] = torch.log(0.8 * p)
    head = torch.nn.Linear(32, v, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(bias.float())
    model.lm_head = head
    scored = score_examples(model, tok, examples(3), max_length=512)
    for s in scored:
        assert s.probs == pytest.approx(p.tolist(), abs=1e-6)
        # E = .1 + .4 + .9 + 1.0 + .75 = 3.15 -> (3.15 - 1) / 4 = 0.5375
        assert s.expected == pytest.approx(0.5375, abs=1e-6)
        assert s.argmax == 3
        assert s.mass == pytest.approx(0.8, abs=1e-5)
        assert sum(s.probs) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("fixture", ["bytelevel", "sentencepiece_like"])
def test_matches_the_full_logits_and_padding_changes_nothing(fixture, request):
    model, tok = request.getfixturevalue(fixture)
    exs = examples(9)
    one = score_examples(model, tok, exs, max_length=512, batch_size=1)
    eight = score_examples(model, tok, exs, max_length=512, batch_size=8)
    assert [s.id for s in one] == [s.id for s in eight] == [e.id for e in exs]  # input order
    assert len({s.n_tokens for s in eight}) > 3  # the batch really pads
    for a, b, ex in zip(one, eight, exs):
        assert a.probs == pytest.approx(b.probs, abs=1e-5) and a.mass == pytest.approx(b.mass, abs=1e-5)
        assert a.expected == pytest.approx(b.expected, abs=1e-5) and a.argmax == b.argmax
        probs, mass, argmax, enc = reference(model, tok, ex)
        assert b.probs == pytest.approx(probs, abs=1e-5)
        assert b.mass == pytest.approx(mass, rel=1e-4)
        assert b.argmax == argmax
        assert b.expected == pytest.approx((sum(k * q for k, q in enumerate(probs, 1)) - 1) / 4, abs=1e-5)
        assert b.n_tokens == enc.score_index and not b.truncated


def test_sentencepiece_space_token_is_part_of_the_prefix(sentencepiece_like):
    model, tok = sentencepiece_like
    enc = encode_example(tok, example(2).with_target("none", ""), 512)
    prefix = enc.input_ids[: enc.score_index]
    assert tok.convert_ids_to_tokens(prefix[-1]) == "▁"
    assert tok.convert_ids_to_tokens(enc.score_token_id) == "4"
    assert tok.pad_token_id is None  # padded with EOS (pad_id_for); the attention mask makes it harmless
    assert score_examples(model, tok, [example(2)], max_length=512)[0].n_tokens == len(prefix)


@pytest.mark.parametrize("fixture", ["bytelevel", "sentencepiece_like"])
def test_the_prefix_does_not_depend_on_the_label(fixture, request):
    _, tok = request.getfixturevalue(fixture)
    conv = example(3).conversation()
    prefixes = set()
    for k in range(1, 6):
        e = encode_example(
            tok, dataclasses.replace(example_for(conv, "on_topic"), label=k).with_target("none", ""), 512
        )
        prefixes.add(tuple(e.input_ids[: e.score_index]))
    assert len(prefixes) == 1


def test_truncation_is_the_training_one(bytelevel):
    model, tok = bytelevel
    long = example(40)
    full = encode_example(tok, long.with_target("none", ""), 4096)
    short = len(full) - 30
    (s,) = score_examples(model, tok, [long], max_length=short)
    enc = encode_example(tok, long.with_target("none", ""), short)
    assert s.truncated and s.n_tokens == enc.score_index < full.score_index


def test_fallback_when_the_head_trick_does_not_reproduce_the_logits(bytelevel, monkeypatch):
    model, tok = bytelevel
    exs = examples(5)
    good = score_examples(model, tok, exs, max_length=512, batch_size=4)
    wrong = torch.nn.Linear(32, len(tok), bias=False)
    monkeypatch.setattr(model, "get_output_embeddings", lambda: wrong)
    with pytest.warns(RuntimeWarning, match="one unpadded example per forward pass"):
        slow = score_examples(model, tok, exs, max_length=512, batch_size=4)
    for a, b in zip(good, slow):
        assert a.probs == pytest.approx(b.probs, abs=1e-5) and a.argmax == b.argmax


def test_the_head_check_has_the_tolerance_of_the_compute_dtype(bytelevel):
    """A bf16 model whose family returns float32 logits (upcast): its head check still has bf16's tolerance."""
    import warnings

    _, tok = bytelevel
    model = tiny_model(tok).to(torch.bfloat16)
    exs = examples(4)

    def upcast(factor: float):
        def hook(module, args, output):
            output.logits = output.logits.float() * factor  # float32, off by a bf16-sized (or a large) amount
            return output

        return model.register_forward_hook(hook)

    plain = score_examples(model, tok, exs, max_length=512, batch_size=4)
    handle = upcast(1.01)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no fallback to one example per pass
            batched = score_examples(model, tok, exs, max_length=512, batch_size=4)
    finally:
        handle.remove()
    assert flat(batched) == flat(plain)  # read through the head, as without the hook
    handle = upcast(1.5)
    try:
        with pytest.warns(RuntimeWarning, match="one unpadded example per forward pass"):
            score_examples(model, tok, exs, max_length=512, batch_size=4)
    finally:
        handle.remove()


def test_training_mode_is_restored(bytelevel):
    model, tok = bytelevel
    model.train()
    score_examples(model, tok, examples(2), max_length=512)
    assert model.training
    model.eval()
    score_examples(model, tok, examples(2), max_length=512)
    assert not model.training


# --------------------------------------------------------------------------- layout "before": rationale, then score


LABELS = (1, 2, 3, 4, 5)


def greedy_by_hand(model, tok, ids: list[int], budget: int) -> list[int]:
    """Greedy decoding, one full unpadded forward pass per token, until "\nScore:", EOS or the budget."""
    new: list[int] = []
    with torch.no_grad():
        for _ in range(budget):
            nxt = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            new.append(nxt)
            if "\nScore:" in tok.decode(new, skip_special_tokens=True):
                break
    return new


def before_by_hand(model, tok, ex: Example, budget: int):
    """Layout "before" the slow, obvious way: the prompt ending "Explanation:" tokenised alone, greedy decoding
    with one full unpadded forward pass per token, the rationale cut at "\nScore:", then the prefix
    ``prompt + " <rationale>\nScore:"`` (the tokens of that text with " k" after it, less the digit) read once.
    Returns (rationale, complete, prefix ids, the five renormalised probabilities)."""
    prompt = student_prompt(ex)[: -len("Score:")] + "Explanation:"
    new = greedy_by_hand(model, tok, tok(prompt)["input_ids"], budget)
    with torch.no_grad():
        text = tok.decode(new, skip_special_tokens=True)
        complete = "\nScore:" in text
        rationale = text.split("\nScore:")[0].strip()
        head = prompt + (f" {rationale}" if rationale else "") + "\nScore:"
        full = [tok(head + f" {k}")["input_ids"] for k in LABELS]
        prefix = full[0][:-1]
        assert all(f[:-1] == prefix for f in full)
        logits = model(input_ids=torch.tensor([prefix])).logits[0, -1].double()
    five = torch.softmax(logits, -1)[[f[-1] for f in full]]
    return rationale, complete, prefix, (five / five.sum()).tolist()


def before_model(tok, explanations: dict[int, str], steps: int = 80):
    """A tiny model taught layout "before" on ``examples(5)``: the rationale ``explanations[label]``, then the
    score (so greedy decoding reaches "\nScore:")."""
    from explainft.encode import collate, pad_id_for

    model = tiny_model(tok, seed=2)
    enc = [
        encode_example(tok, e.with_target("assessment", explanations[e.label]), 512, position="before")
        for e in examples(5)
    ]
    batch = collate(enc, pad_id_for(tok))
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


TAUGHT = {1: "It ignores the question.", 2: "Off topic.", 3: "Partly.", 4: "It answers.", 5: "It answers it well."}


@pytest.fixture(scope="module")
def taught(bytelevel):
    _, tok = bytelevel
    return before_model(tok, TAUGHT), tok


def test_before_scores_after_the_models_own_rationale(taught):
    model, tok = taught
    exs = examples(5)
    scored = score_examples(model, tok, exs, max_length=512, position="before", generate_tokens=32, batch_size=2)
    assert [s.rationale for s in scored] == [TAUGHT[e.label] for e in exs]  # it learned to write them
    assert all(s.rationale_complete for s in scored)
    for s, ex in zip(scored, exs):
        rationale, complete, prefix, probs = before_by_hand(model, tok, ex, 32)
        assert (s.rationale, s.rationale_complete) == (rationale, complete)
        assert s.n_tokens == len(prefix) and not s.truncated
        assert s.probs == pytest.approx(probs, abs=1e-5)
        assert s.argmax == ex.label  # and the score it was taught after it
    # the "after" reading of the same model is another prefix, so another distribution
    after = score_examples(model, tok, exs, max_length=512)
    assert all(a.rationale is None and a.rationale_complete for a in after)
    assert [a.n_tokens for a in after] != [s.n_tokens for s in scored]


def test_before_a_rationale_cut_by_the_budget_is_scored_and_flagged(taught):
    model, tok = taught
    exs = examples(5)
    scored = score_examples(model, tok, exs, max_length=512, position="before", generate_tokens=2)
    assert not any(s.rationale_complete for s in scored)
    for s, ex in zip(scored, exs):
        rationale, complete, prefix, probs = before_by_hand(model, tok, ex, 2)
        assert not complete and s.rationale == rationale and TAUGHT[ex.label].startswith(rationale)
        assert tok.decode(prefix).endswith(f"Explanation: {rationale}\nScore:")  # the cut rationale, then the cue
        assert s.n_tokens == len(prefix) and s.probs == pytest.approx(probs, abs=1e-5)


@pytest.mark.parametrize("fixture", ["bytelevel", "sentencepiece_like"])
def test_before_on_an_untrained_model_matches_generate_then_forward_by_hand(fixture, request):
    model, tok = request.getfixturevalue(fixture)
    exs = examples(4)
    one = score_examples(model, tok, exs, max_length=512, position="before", generate_tokens=10, batch_size=1)
    three = score_examples(model, tok, exs, max_length=512, position="before", generate_tokens=10, batch_size=3)
    for a, b, ex in zip(one, three, exs):
        rationale, complete, prefix, probs = before_by_hand(model, tok, ex, 10)
        assert a.rationale == b.rationale == rationale and a.rationale_complete == b.rationale_complete == complete
        assert a.n_tokens == b.n_tokens == len(prefix)
        assert a.probs == pytest.approx(probs, abs=1e-5) and b.probs == pytest.approx(probs, abs=1e-5)


def test_before_truncates_the_conversation_as_training_does(taught):
    model, tok = taught
    long = example(40, label=4)
    (s,) = score_examples(model, tok, [long], max_length=4096, position="before", generate_tokens=32)
    full = encode_example(tok, long.with_target("x", s.rationale), 4096, position="before")
    short = len(full) - 30
    (t,) = score_examples(model, tok, [long], max_length=short, position="before", generate_tokens=32)
    enc = encode_example(tok, long.with_target("x", t.rationale), short, position="before")
    assert t.truncated and t.n_tokens == enc.score_index < full.score_index


def test_before_a_rationale_too_long_for_max_length_is_cut_to_fit_and_flagged(bytelevel):
    """Training shortens the conversation, never the explanation: a rationale that does not fit max_length even
    with the shortest conversation is cut to its longest start that does."""
    model, tok = bytelevel
    ex = example(0)
    room = len(encode_example(tok, ex.with_target("none", ""), 512, position="before")) + 4
    (s,) = score_examples(model, tok, [ex], max_length=room, position="before", generate_tokens=40)
    prompt = student_prompt(ex)[: -len("Score:")] + "Explanation:"
    new = greedy_by_hand(model, tok, tok(prompt)["input_ids"], 40)

    def fits(n: int) -> bool:
        try:
            encode_example(tok, ex.with_target("x", tok.decode(new[:n]).strip()), room, position="before")
        except EncodeError:
            return False
        return True

    assert not fits(len(new))  # the whole rationale does not fit, even with the conversation cut
    n = max(k for k in range(len(new) + 1) if fits(k))
    assert 0 < n < len(new) and s.rationale == tok.decode(new[:n]).strip() and not s.rationale_complete
    enc = encode_example(tok, ex.with_target("x", s.rationale), room, position="before")
    assert s.n_tokens == enc.score_index and s.truncated and len(enc) <= room


# --------------------------------------------------------------------------- errors


def test_errors_name_the_set_the_id_and_the_layout(bytelevel):
    model, tok = bytelevel
    with pytest.raises(ScoringError, match="test set 'coqa_test' is empty"):
        score_examples(model, tok, [], max_length=512, test_set="coqa_test")
    with pytest.raises(ValueError, match="empty"):  # a ScoringError is a ValueError
        score_examples(model, tok, [], max_length=512)
    mixed = [example(0), example(1, dimension="naturalness"), example(2)]
    with pytest.raises(ScoringError, match=r"example 'd/1' is rated on naturalness.*'d/0'"):
        score_examples(model, tok, mixed, max_length=512)
    with pytest.raises(ScoringError, match="'d/0' occurs twice"):
        score_examples(model, tok, [example(0), example(0)], max_length=512)
    with pytest.raises(ValueError, match="generate_tokens"):
        score_examples(model, tok, examples(2), max_length=512, position="before", generate_tokens=0)
    with pytest.raises(ValueError, match="unknown explanation position"):
        score_examples(model, tok, examples(2), max_length=512, position="middle")
    with pytest.raises(ValueError, match="batch_size"):
        score_examples(model, tok, examples(2), max_length=512, batch_size=0)


def test_a_tokenizer_that_merges_the_digit_is_refused_by_encode():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    ex = example(0)
    text = student_prompt(ex) + " 4"
    vocab = {"<unk>": 0, "</s>": 1}
    for ch in sorted(set(text) | set("12345")):
        vocab.setdefault(ch, len(vocab))
    merges = [(" ", str(k)) for k in range(1, 6)] + [(":", f" {k}") for k in range(1, 6)]  # ": 4" is one token
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>")),
        eos_token="</s>",
        unk_token="<unk>",
    )
    with pytest.raises(EncodeError, match="example 'd/0'"):
        score_examples(None, tok, [ex], max_length=512)


def test_digits_tokenised_unlike_each_other_are_refused():
    # on the prompts alone, " 1" and " 5" (from "a scale of 1 to 5") merge with their space, " 2".." 4" do not:
    # the five score tokens would follow different prefixes, so one distribution cannot hold them all
    tok = bytelevel_tokenizer(corpus())
    assert len(tok(" 1", add_special_tokens=False)["input_ids"]) == 1
    assert len(tok(" 3", add_special_tokens=False)["input_ids"]) == 2
    with pytest.raises(
        EncodeError,
        match=r"example 'd/0': the five score digits are not tokenised alike "
        r"\(label 1: token 'Ġ1' after \d+ tokens; label 2: token '2'",
    ):
        score_examples(None, tok, examples(2), max_length=512)


def test_predictions_carry_the_target_and_check_the_pairing(bytelevel):
    model, tok = bytelevel
    exs = examples(3)
    scored = score_examples(model, tok, exs, max_length=512)
    preds = predictions(exs, scored, "m", "test")
    assert [p.target for p in preds] == [e.score for e in exs]
    assert all(isinstance(p, Prediction) and p.test_set == "test" and p.dimension == "on_topic" for p in preds)
    assert [p.probs for p in preds] == [s.probs for s in scored]
    assert predictions(exs, scored, "m", "test", with_target=False)[0].target is None
    with pytest.raises(ScoringError, match="paired with"):
        predictions(exs, scored[::-1], "m", "test")
    with pytest.raises(ScoringError, match="test set 'x' is empty"):
        predictions([], [], "m", "x")


# --------------------------------------------------------------------------- loading and the CLI


@pytest.fixture(scope="module")
def rater_dirs(bytelevel, tmp_path_factory):
    """A full-model folder ("student") and a LoRA adapter folder whose base is that student, by relative path."""
    from peft import LoraConfig, get_peft_model

    model, tok = bytelevel
    root = tmp_path_factory.mktemp("raters")
    student = root / "models" / "student"
    model.save_pretrained(student)
    tok.save_pretrained(student)
    cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(3)
    peft_model = get_peft_model(tiny_model(tok), cfg)  # a fresh copy: get_peft_model changes its model
    peft_model.peft_config["default"].base_model_name_or_path = "models/student"  # relative to the project root
    adapter = root / "run" / "model"
    peft_model.save_pretrained(adapter, save_embedding_layers=False)  # no tokenizer here: the base's is used
    return root, student, adapter, peft_model.eval()


def flat(scored) -> list[float]:
    return [p for s in scored for p in s.probs]


def test_load_rater_full_and_adapter(bytelevel, rater_dirs, monkeypatch):
    model, tok = bytelevel
    root, student, adapter, peft_model = rater_dirs
    m, t = load_rater(student)
    assert not m.training and next(m.parameters()).dtype == torch.float32
    a = score_examples(m, t, examples(3), max_length=512)
    b = score_examples(model, tok, examples(3), max_length=512)
    assert flat(a) == pytest.approx(flat(b), abs=1e-6)

    monkeypatch.chdir(root)  # the adapter's base path is relative to the project root
    m, t = load_rater(adapter)
    got = score_examples(m, t, examples(3), max_length=512)
    want = score_examples(peft_model, tok, examples(3), max_length=512)
    assert flat(got) == pytest.approx(flat(want), abs=1e-6)
    assert got[0].probs != pytest.approx(b[0].probs, abs=1e-4)  # the adapter changes the scores


def test_load_rater_errors_name_the_path(rater_dirs, tmp_path, monkeypatch):
    root, student, adapter, _ = rater_dirs
    with pytest.raises(RaterNotFound, match="no such folder"):
        load_rater(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="neither a model"):
        load_rater(tmp_path)
    monkeypatch.chdir(tmp_path)  # models/student is not under this directory
    with pytest.raises(RaterNotFound, match=r"base model 'models/student'.*pass --base"):
        load_rater(adapter)
    with pytest.raises(RaterNotFound, match="base model './missing'"):
        load_rater(adapter, base="./missing")
    m, _ = load_rater(adapter, base=str(student))  # an explicit base works from anywhere
    assert not m.training


def conversations(n: int) -> list[Conversation]:
    return [example(i).conversation() for i in range(n)]


def test_rate_cli_writes_one_prediction_per_conversation(rater_dirs, tmp_path, monkeypatch):
    root, student, adapter, _ = rater_dirs
    inp = tmp_path / "chats.jsonl"
    write_jsonl(inp, conversations(4))
    runner = CliRunner()
    monkeypatch.chdir(root)
    for model_dir, extra in ((student, []), (adapter, ["--model-name", "lora"])):
        out = tmp_path / "preds.jsonl"
        res = runner.invoke(
            cli, ["rate", str(model_dir), str(inp), str(out), "--dimension", "on_topic", "--batch-size", "3", *extra]
        )
        assert res.exit_code == 0, res.output
        assert res.stdout.startswith("rate: 4 conversations of chats on on_topic") and len(res.stdout.splitlines()) == 1
        preds = list(read_jsonl(out, Prediction))
        assert [p.id for p in preds] == [c.id for c in conversations(4)]
        for p in preds:
            assert sum(p.probs) == pytest.approx(1.0, abs=1e-9)
            assert p.target is None and p.test_set == "chats" and p.dimension == "on_topic"
            assert p.model == (Path(model_dir).as_posix() if not extra else "lora")
            assert p.expected == pytest.approx((sum(k * q for k, q in enumerate(p.probs, 1)) - 1) / 4, abs=1e-9)
        raw = json.loads(out.read_text().splitlines()[0])
        assert {f"p{k}" for k in range(1, 6)} <= set(raw) and raw["target"] is None


def test_rate_cli_errors(rater_dirs, tmp_path):
    _, student, _, _ = rater_dirs
    inp = tmp_path / "bad.jsonl"
    inp.write_text(json.dumps(conversations(1)[0].to_dict()) + "\n{not json\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["rate", str(student), str(inp), str(tmp_path / "o.jsonl"), "--dimension", "on_topic"])
    assert res.exit_code == 1 and f"{inp}:2" in res.output and "invalid JSON" in res.output
    assert not (tmp_path / "o.jsonl").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = runner.invoke(cli, ["rate", str(student), str(empty), str(tmp_path / "o.jsonl"), "--dimension", "on_topic"])
    assert res.exit_code == 1 and "test set 'empty' is empty" in res.output
    good = tmp_path / "good.jsonl"
    write_jsonl(good, conversations(1))
    res = runner.invoke(
        cli, ["rate", str(tmp_path / "none"), str(good), str(tmp_path / "o.jsonl"), "--dimension", "on_topic"]
    )
    assert res.exit_code == 1 and "rate: rater" in res.output and "no such folder" in res.output


def test_rate_scores_in_the_layout_the_fine_tune_recorded(rater_dirs, tmp_path, monkeypatch):
    """`explainft rate` on a model trained with position "before" scores after its own rationale (metrics.json's
    training config), not with the "after" prompt; --position overrides; a broken record is an error."""
    import explainft.cli as cli_module

    root, student, _, _ = rater_dirs
    inp = tmp_path / "chats.jsonl"
    write_jsonl(inp, conversations(2))
    model = tmp_path / "model"
    shutil.copytree(student, model)
    seen: list[str] = []
    real = cli_module.score_examples
    monkeypatch.setattr(cli_module, "score_examples", lambda *a, **kw: seen.append(kw["position"]) or real(*a, **kw))
    monkeypatch.chdir(root)
    runner = CliRunner()
    args = ["rate", str(model), str(inp), str(tmp_path / "o.jsonl"), "--dimension", "on_topic"]
    assert runner.invoke(cli, args).exit_code == 0  # no record: after
    (model / "metrics.json").write_text(json.dumps({"config": {"explanation_position": "before"}}))
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert runner.invoke(cli, [*args, "--position", "after"]).exit_code == 0
    assert seen == ["after", "before", "after"]
    (model / "metrics.json").write_text(json.dumps({"config": {}}))
    res = runner.invoke(cli, args)
    assert res.exit_code == 1 and "explanation_position" in res.output and "metrics.json" in res.output
