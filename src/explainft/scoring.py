"""Expected-score prediction in one forward pass (the score token of explainft.targets).

One idea, over 500 lines: a rater's score distribution, read where training put the score token (in either
layout), and loading a rater to read it.

A fine-tuned student is asked for the score the way it was trained to give
it: each example is encoded exactly as training encodes it
(:func:`explainft.encode.encode_example`, same ``max_length``, so the same
truncation), with the score-only target (``ex.with_target("none", "")``;
test-split examples have no variant, and a reference explanation must not
influence a prediction: it could only change how much of the conversation is
truncated). The model reads ``input_ids[:score_index]``: the prompt, any
BOS, and whatever target tokens precede the digit (a SentencePiece-style
tokenizer splits ``" 4"`` into ``"▁"`` and ``"4"``; the space token is part
of the prefix, as it was in training). The next-token distribution at the
last prefix position is read once; no ``generate``, no parsing of text.

From that distribution (a softmax over the full vocabulary):

* ``probs`` = the probabilities of the five score tokens (labels 1..5),
  renormalised to sum to 1;
* ``mass`` = their share of the full-vocabulary probability before
  renormalising (a diagnostic: a well-trained rater puts nearly all its
  mass on them; an untuned one may not);
* ``expected`` = ``(Σ k·p_k − 1) / 4`` in [0, 1] (the pipeline's normalised
  scale), ``argmax`` = the k with the largest ``p_k`` (the lower k on a tie).

The score-token ids are found in context, by character offsets
(:func:`explainft.encode.score_token_ids` on the first example), never by
matching template strings; every example's own score token is checked
against them, and the first example's prefix is checked to be the same for
all five labels (so the nominal label an unlabelled conversation carries
cannot change what the model reads: a tokenizer that merges " 1" and " 5"
with their space but splits " 2" into a space and "2" puts the five behind
different prefixes, and is refused with an :class:`EncodeError` naming the
tokens). A tokenizer that has no single token
for a score digit, because it merges the digit with a neighbour (``" 4\\n"``,
``":4"``, ``"45"``), cannot be scored in one pass: the
:class:`~explainft.encode.EncodeError` that encoding raises names the example
and the merged token; use a tokenizer that splits digits, or another target
layout.

The "before" layout (``position="before"``, ``train.explanation_position``:
the prompt ends ``"Explanation:"``, the target is ``" <explanation>\\nScore: 4"``)
puts the score after a rationale, so the model writes its rationale first:
greedy decoding (``generate``, ``do_sample=False``) from the prompt as training
encodes it with an empty explanation (the same truncation), at most
``generate_tokens`` new tokens, stopping once the decoded text holds
``"\\nScore:"`` (or at EOS). The rationale is the decoded text before
``"\\nScore:"``, stripped; the example is then encoded exactly as training
encodes an example with that explanation (``encode_example(...,
position="before")``, which re-tokenises the text and may truncate the
conversation further), and its score-token prefix ``prompt + " <rationale>\\nScore:"``
is read in one forward pass, as above. A rationale that does not reach
``"\\nScore:"`` within the budget (or ends at EOS) is still scored, with what
was generated as its rationale, and flagged (``ScoredItem.rationale_complete``);
so is one cut because even the shortest conversation does not fit
``max_length`` with it (training shortens the conversation, never the
explanation; here the rationale is cut to the longest start of it that fits).
:func:`score_prefixes` is that first step alone (the logit lens reads the same
prefixes). Generation is batched like scoring (sorted by prompt length,
longest first; left-padded, with an attention mask).

Batching: examples are sorted by prefix length (longest first), right-padded
(``pad_id_for``) with an attention mask, and the results are returned in
input order; padding changes nothing (tests check batch size 1 against 8 to
1e-5). The LM head is applied to one position per row only: the model runs
with ``output_hidden_states=True, logits_to_keep=1``, the final-normalised
last hidden state (``hidden_states[-1]`` in transformers 5) is taken at each
row's last prefix position, and the output embedding is applied to those
rows, so no batch × length × vocabulary tensor is made. Each batch checks
this against the model's own logits for its longest row (which ``logits_to_keep=1``
returns for free: that row has no padding); a model family whose last hidden
state is not the one its head reads (final soft-capping, a non-final norm)
fails the check, and scoring falls back, with a warning, to one unpadded
forward pass per example.

Functions
---------
``score_examples(model, tokenizer, examples, *, max_length, batch_size=32, position="after",
generate_tokens=128, test_set=None, progress=False) -> list[ScoredItem]``
``score_prefixes(model, tokenizer, examples, *, max_length, batch_size=32, position="after", generate_tokens=128,
test_set=None, progress=False) -> (list[ScorePrefix], score token ids)``
``predictions(examples, scored, model_name, test_set, *, with_target=True) -> list[Prediction]``
``example_for(conversation, dimension) -> Example`` (an unlabelled conversation, ready to score)
``load_rater(path, *, base=None, device="auto", dtype="auto", quantization=None, method=None, revision=None)
-> (model, tokenizer)`` (the base loaded as its fine-tune loaded it: ``LOADING.json``, explainft.students)

Heavy imports (torch, transformers, peft) happen inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config.train import POSITIONS
from .devices import COMPUTE_DTYPES, resolve_device
from .encode import IGNORE, Encoded, EncodeError, encode_example, pad_id_for, score_token_ids
from .errors import ExplainftError
from .progress import SilentProgress, quiet_library_bars
from .progress import progress as _reporter
from .records import Conversation, Example, Prediction
from .students import LOADING_FILE, Loading, not_loadable_errors, read_loading, resolve_loading

LABELS = (1, 2, 3, 4, 5)
# the nominal score and label an unlabelled conversation carries: the prefix ends before the digit, so neither
# reaches the model
_NOMINAL_SCORE = 0.5
_NOMINAL_LABEL = 3
GENERATE_TOKENS = 128  # the default budget of a generated rationale (layout "before")
RATIONALE_STOP = "\nScore:"  # what ends a rationale in layout "before" (explainft.encode.target_for)
_GENERATED = "generated"  # the variant name of an example whose explanation the model wrote


class ScoringError(ExplainftError, ValueError):
    """A set of examples cannot be scored as asked (names the test set, the example id or the setting)."""


class RaterNotFound(ExplainftError, FileNotFoundError):
    """A rater folder (or the base model its adapter names) is missing or holds no model."""


@dataclass(frozen=True)
class ScoredItem:
    """One example's score distribution (see the module docstring)."""

    id: str
    probs: tuple[float, float, float, float, float]
    expected: float
    argmax: int
    mass: float
    n_tokens: int  # prefix length read by the model
    truncated: bool
    # layout "before": the rationale the model generated ahead of the score, and whether it reached "\nScore:"
    # within the budget (always None and True in layout "after")
    rationale: str | None = None
    rationale_complete: bool = True


@dataclass(frozen=True)
class ScorePrefix:
    """Where one example's score is read: ``encoded.input_ids[:encoded.score_index]`` (see the module docstring)."""

    encoded: Encoded
    rationale: str | None = None  # layout "before": the generated rationale in the prefix
    complete: bool = True  # layout "before": whether it reached "\nScore:" within the budget


# --------------------------------------------------------------------------- checks and encoding


def _check_set(examples: Sequence[Example], test_set: str | None) -> None:
    name = f"test set {test_set!r}" if test_set else "the example list"
    if not examples:
        raise ScoringError(f"{name} is empty: nothing to score (check the split file)")
    first = examples[0]
    seen: set[str] = set()
    for ex in examples:
        if ex.dimension != first.dimension:
            raise ScoringError(
                f"{name}: example {ex.id!r} is rated on {ex.dimension}, but {first.id!r} (the first) "
                f"on {first.dimension}; score one dimension at a time"
            )
        if ex.id in seen:
            raise ScoringError(f"{name}: example id {ex.id!r} occurs twice; predictions are joined by id")
        seen.add(ex.id)


def _check_settings(position: str, batch_size: int, generate_tokens: int) -> None:
    if position not in POSITIONS:
        raise ValueError(f"unknown explanation position {position!r}; known: {', '.join(POSITIONS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(generate_tokens, bool) or not isinstance(generate_tokens, int) or generate_tokens < 1:
        raise ValueError(
            f"generate_tokens (the rationale's budget) must be a positive integer, got {generate_tokens!r}"
        )


def _score_ids(tokenizer: Any, example: Example, max_length: int, position: str) -> tuple[int, ...]:
    """The five score-token ids in context, after checking that all five follow the same prefix."""
    ids = score_token_ids(tokenizer, example, max_length, position=position)
    encs = [
        encode_example(tokenizer, dataclasses.replace(example, label=k), max_length, position=position) for k in LABELS
    ]
    prefixes = {tuple(e.input_ids[: e.score_index]) for e in encs}
    if len(prefixes) != 1:
        # e.g. a small ByteLevel BPE that learned " 1" and " 5" (from "a scale of 1 to 5") but not " 2".." 4"
        how = "; ".join(
            f"label {k}: token {tokenizer.convert_ids_to_tokens(e.score_token_id)!r} after {e.score_index} tokens"
            for k, e in zip(LABELS, encs)
        )
        raise EncodeError(
            f"example {example.id!r}: the five score digits are not tokenised alike ({how}); one forward pass "
            "reads one next-token distribution, so all five must follow the same prefix: use a tokenizer that "
            "tokenises ' 1'..' 5' alike (each merged with its space, or each split from it)"
        )
    return ids


def _encode(
    tokenizer: Any, targets: Sequence[Example], max_length: int, position: str
) -> tuple[list[Encoded], tuple[int, ...]]:
    """Each example (its target set: score only, or a generated rationale) as training encodes it, checked."""
    ids = _score_ids(tokenizer, targets[0], max_length, position)
    encoded = []
    for ex in targets:
        e = encode_example(tokenizer, ex, max_length, position=position)
        if e.score_token_id != ids[ex.label - 1]:
            raise EncodeError(
                f"example {ex.id!r}: its score token (id {e.score_token_id}) is not the one the first example "
                f"gives label {ex.label} (id {ids[ex.label - 1]}); the tokenizer splits the digit differently "
                "in different contexts, so the five score tokens are not well defined"
            )
        if e.score_index < 1:
            raise EncodeError(f"example {ex.id!r}: the score token is the first token; there is no prefix to read")
        encoded.append(e)
    return encoded, ids


# --------------------------------------------------------------------------- the rationale (layout "before")


def _rationale_prompt(tokenizer: Any, example: Example, max_length: int) -> list[int]:
    """The ids training puts before a "before" target: the prompt (ending "Explanation:"), truncated as for an
    empty explanation, and any BOS."""
    e = encode_example(tokenizer, example.with_target("none", ""), max_length, position="before")
    start = next(i for i, label in enumerate(e.labels) if label != IGNORE)  # the first target token
    if start < 1:
        raise EncodeError(f"example {example.id!r}: the prompt encodes to no tokens; there is nothing to generate from")
    return e.input_ids[:start]


def _rationale(tokenizer: Any, new_ids: list[int]) -> tuple[str, bool]:
    """(the rationale: the decoded text before "\\nScore:", stripped; whether "\\nScore:" was reached)."""
    text = tokenizer.decode(new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    end = text.find(RATIONALE_STOP)
    return (text[:end].strip(), True) if end >= 0 else (text.strip(), False)


def _encodes(tokenizer: Any, example: Example, max_length: int) -> bool:
    try:
        encode_example(tokenizer, example, max_length, position="before")
    except EncodeError:
        return False
    return True


def _fitted(tokenizer: Any, example: Example, new_ids: list[int], max_length: int) -> tuple[str, bool]:
    """(rationale, complete) of the generated ids, cut when need be to the longest start of them that encodes.

    Training shortens the conversation, never the explanation, to fit ``max_length``; a rationale so long (or,
    re-tokenised, so much longer than generated: a cut multi-byte character decodes to U+FFFD) that even the
    shortest conversation does not fit is cut instead, and counted as incomplete. The empty rationale always
    encodes (it is the prompt the rationale was generated from).
    """
    text, complete = _rationale(tokenizer, new_ids)
    if _encodes(tokenizer, example.with_target(_GENERATED, text), max_length):
        return text, complete

    def ok(n: int) -> bool:
        return _encodes(tokenizer, example.with_target(_GENERATED, _rationale(tokenizer, new_ids[:n])[0]), max_length)

    lo, hi = 0, len(new_ids) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return _rationale(tokenizer, new_ids[:lo])[0], False


def _generate_rationales(
    model: Any, tokenizer: Any, prompts: list[list[int]], *, batch_size: int, max_new_tokens: int, bar: Any
) -> list[list[int]]:
    """The greedy continuation of each prompt, up to "\\nScore:" or EOS (batched, left-padded, longest first), as
    token ids without the EOS; results in input order."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    device = _device_of(model)
    pad_id = pad_id_for(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)
    generator = getattr(model, "module", model)  # DDP-wrapped

    class StopAtScore(StoppingCriteria):
        """Done once a row's generated text holds "\\nScore:" (each row stops on its own; generate pads it after)."""

        def __init__(self, start: int):
            self.start = start

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [
                RATIONALE_STOP
                in tokenizer.decode(row[self.start :], skip_special_tokens=True, clean_up_tokenization_spaces=False)
                for row in input_ids.tolist()
            ]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    out: list[list[int] | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = len(prompts[batch[0]])
        input_ids = torch.tensor(
            [[pad_id] * (width - len(prompts[i])) + prompts[i] for i in batch], dtype=torch.long, device=device
        )
        mask = torch.tensor(
            [[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch], dtype=torch.long, device=device
        )
        seqs = generator.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            stopping_criteria=StoppingCriteriaList([StopAtScore(width)]),
            pad_token_id=pad_id,
            eos_token_id=eos,
        )
        for j, i in enumerate(batch):
            new = seqs[j, width:].tolist()
            out[i] = new[: new.index(eos)] if eos in new else new  # (generate pads a row after its EOS)
        bar.update(len(batch))
    return out  # type: ignore[return-value]


@contextlib.contextmanager
def _eval_mode(model: Any):
    """The model in eval mode (no dropout) for the block, its training mode restored after."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def score_prefixes(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_length: int,
    batch_size: int = 32,
    position: str = "after",
    generate_tokens: int = GENERATE_TOKENS,
    test_set: str | None = None,
    progress: bool = False,
) -> tuple[list[ScorePrefix], tuple[int, ...]]:
    """Where each example's score is read (input order), and the five score-token ids (see the module docstring).

    Layout "after" reads no model (``model`` may be None); layout "before" generates each rationale first
    (``generate_tokens`` new tokens at most, ``batch_size`` prompts per ``generate`` call).
    """
    _check_settings(position, batch_size, generate_tokens)
    examples = list(examples)
    _check_set(examples, test_set)
    if position == "after":
        encoded, ids = _encode(tokenizer, [ex.with_target("none", "") for ex in examples], max_length, position)
        return [ScorePrefix(e) for e in encoded], ids
    import torch

    prompts = [_rationale_prompt(tokenizer, ex, max_length) for ex in examples]
    bar = _reporter(len(examples), f"generate {test_set or ''}".strip(), "items") if progress else SilentProgress()
    with bar, _eval_mode(model), torch.inference_mode():
        generated = _generate_rationales(
            model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=generate_tokens, bar=bar
        )
    written = [_fitted(tokenizer, ex, new, max_length) for ex, new in zip(examples, generated)]
    targets = [ex.with_target(_GENERATED, text) for ex, (text, _) in zip(examples, written)]
    encoded, ids = _encode(tokenizer, targets, max_length, position)
    return [ScorePrefix(e, text, done) for e, (text, done) in zip(encoded, written)], ids


# --------------------------------------------------------------------------- the forward pass


def _device_of(model: Any) -> Any:
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def _head(model: Any) -> Any:
    m = getattr(model, "module", model)  # DDP-wrapped
    head = m.get_output_embeddings()
    if head is None:
        raise ScoringError(f"{type(m).__name__} has no output embeddings (LM head); a causal LM is needed")
    return head


def _compute_dtype(module: Any) -> Any:
    """The dtype a module computes in: that of its first floating-point parameter (float32 if it has none)."""
    import torch

    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _close(a: Any, b: Any, dtype: Any) -> bool:
    """Whether two logit rows agree, computed in ``dtype``: fp32/fp64 to 1e-3 of their scale, half precision to
    3e-2 (the tensors may have been cast to float32 since: the tolerance is the compute dtype's)."""
    import torch

    rel = 1e-3 if dtype in (torch.float32, torch.float64) else 3e-2
    a, b = a.float(), b.float()
    scale = max(1.0, float(b.abs().max()))
    return bool(torch.isfinite(a).all()) and float((a - b).abs().max()) <= rel * scale


def _batch_logits(model: Any, rows: list[list[int]], pad_id: int, state: dict[str, Any]) -> Any:
    """Next-token logits (n_rows × vocab, float32) at the end of each row; rows sorted longest first."""
    import torch

    device = _device_of(model)
    lengths = [len(r) for r in rows]
    width = lengths[0]
    assert width == max(lengths), "rows must be sorted longest first"
    if state.get("fallback"):
        return _row_by_row(model, rows, device)
    input_ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths], dtype=torch.long, device=device)
    out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, logits_to_keep=1, use_cache=False)
    last = torch.tensor(lengths, device=device) - 1
    hidden = out.hidden_states[-1][torch.arange(len(rows), device=device), last]
    head = _head(model)
    logits = head(hidden).float()
    # the longest row has no padding: the model's own logit at its end is the one the head trick must give
    if not _close(logits[0], out.logits[0, -1], _compute_dtype(head)):
        warnings.warn(
            f"{type(getattr(model, 'module', model)).__name__}: applying the LM head to the last hidden "
            "state does not reproduce the model's logits (a final soft-cap or a non-final norm?); "
            "scoring one unpadded example per forward pass instead (slower)",
            RuntimeWarning,
            stacklevel=3,
        )
        state["fallback"] = True
        return _row_by_row(model, rows, device)
    return logits


def _row_by_row(model: Any, rows: list[list[int]], device: Any) -> Any:
    import torch

    out = [
        model(input_ids=torch.tensor([r], dtype=torch.long, device=device), logits_to_keep=1, use_cache=False)
        .logits[0, -1]
        .float()
        for r in rows
    ]
    return torch.stack(out)


def _distribution(logits: Any, ids: tuple[int, ...]) -> tuple[Any, Any]:
    """(renormalised five-way probabilities, share of the full-vocabulary mass on the five), float64 numpy."""
    import torch

    lse_all = torch.logsumexp(logits, dim=-1)
    five = logits[:, list(ids)]
    lse_five = torch.logsumexp(five, dim=-1)
    probs = torch.softmax(five.double(), dim=-1)
    mass = torch.exp((lse_five - lse_all).double()).clamp(max=1.0)
    return probs.cpu().numpy(), mass.cpu().numpy()


def _item(prefix: ScorePrefix, probs: Any, mass: float) -> ScoredItem:
    e = prefix.encoded
    p = tuple(float(x) for x in probs)
    e_1to5 = math.fsum(k * pk for k, pk in zip(LABELS, p))
    expected = min(1.0, max(0.0, (e_1to5 - 1.0) / 4.0))
    argmax = LABELS[max(range(5), key=lambda i: (p[i], -i))]
    return ScoredItem(
        id=e.id,
        probs=p,
        expected=expected,
        argmax=argmax,
        mass=float(mass),  # type: ignore[arg-type]
        n_tokens=e.score_index,
        truncated=e.truncated,
        rationale=prefix.rationale,
        rationale_complete=prefix.complete,
    )


def score_examples(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_length: int,
    batch_size: int = 32,
    position: str = "after",
    generate_tokens: int = GENERATE_TOKENS,
    test_set: str | None = None,
    progress: bool = False,
    prefixes: tuple[list[ScorePrefix], tuple[int, ...]] | None = None,
) -> list[ScoredItem]:
    """Score each example in one forward pass per batch; results in input order (see the module docstring).

    ``position`` is the layout the model was trained on (``train.explanation_position``); in layout "before"
    each rationale is generated first, ``generate_tokens`` new tokens at most. ``test_set`` names the set in
    error messages and progress. ``progress`` reports the examples scored (:func:`explainft.progress.progress`:
    a bar in a terminal, plain lines otherwise, on stderr). ``prefixes``: what :func:`score_prefixes` returned
    for these examples with this tokenizer, ``max_length`` and layout "after" (it reads no model), so that
    raters sharing a tokenizer encode a set once; one per example, in order, else a ScoringError.
    """
    import torch

    if prefixes is None:
        prefixes = score_prefixes(
            model,
            tokenizer,
            examples,
            max_length=max_length,
            batch_size=batch_size,
            position=position,
            generate_tokens=generate_tokens,
            test_set=test_set,
            progress=progress,
        )
    elif position != "after" or [p.encoded.id for p in prefixes[0]] != [ex.id for ex in examples]:
        raise ScoringError(
            "precomputed prefixes are read in layout 'after' only, one per example in the examples' order"
        )
    prefixes, ids = prefixes
    encoded = [p.encoded for p in prefixes]
    pad_id = pad_id_for(tokenizer)

    order = sorted(range(len(encoded)), key=lambda i: (-encoded[i].score_index, i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    results: list[ScoredItem | None] = [None] * len(encoded)
    state: dict[str, Any] = {}
    bar = _reporter(len(encoded), f"score {test_set or ''}".strip(), "items") if progress else SilentProgress()
    with _eval_mode(model), bar, torch.inference_mode():
        for batch in batches:
            rows = [encoded[i].input_ids[: encoded[i].score_index] for i in batch]
            probs, mass = _distribution(_batch_logits(model, rows, pad_id, state), ids)
            for j, i in enumerate(batch):
                results[i] = _item(prefixes[i], probs[j], mass[j])
            bar.update(len(batch))
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- records


def predictions(
    examples: Sequence[Example],
    scored: Sequence[ScoredItem],
    model_name: str,
    test_set: str,
    *,
    with_target: bool = True,
) -> list[Prediction]:
    """Prediction records (``target`` = the example's score, or null when ``with_target`` is false)."""
    examples, scored = list(examples), list(scored)
    if not examples:
        raise ScoringError(f"test set {test_set!r} is empty: no predictions to write")
    if len(examples) != len(scored):
        raise ScoringError(f"test set {test_set!r}: {len(examples)} examples but {len(scored)} scored items")
    out = []
    for ex, s in zip(examples, scored):
        if ex.id != s.id:
            raise ScoringError(
                f"test set {test_set!r}: scored item {s.id!r} is paired with example {ex.id!r}; "
                "pass the scores in the examples' order"
            )
        out.append(
            Prediction(
                id=ex.id,
                model=model_name,
                test_set=test_set,
                dimension=ex.dimension,
                probs=s.probs,
                expected=s.expected,
                argmax=s.argmax,
                target=ex.score if with_target else None,
            )
        )
    return out


def example_for(conversation: Conversation, dimension: str) -> Example:
    """An Example of an unlabelled conversation on ``dimension`` (a nominal score and label; see below).

    Neither reaches the model: the scored prefix ends before the
    score digit, and :func:`score_examples` checks that it is the same for
    every label.
    """
    return Example(
        id=conversation.id,
        dataset=conversation.dataset,
        dimension=dimension,
        turns=conversation.turns,
        score=_NOMINAL_SCORE,
        label=_NOMINAL_LABEL,
        assessment="",
        confidence="",
        context=conversation.context,
        group=conversation.group,
    )


# --------------------------------------------------------------------------- loading a rater


def _rater_loading(
    folder: Path,
    is_adapter: bool,
    device: str,
    *,
    dtype: str,
    quantization: str | None,
    method: str | None,
    revision: str | None,
) -> Loading:
    """How to load the rater in ``folder`` (its base, for an adapter): as its ``LOADING.json`` records, when it has
    one (an explicit request that contradicts the record is a :class:`ScoringError`: the model measured would not
    be the model trained); else as :func:`explainft.students.resolve_loading` resolves the request (``quantization``
    None: ``none``; ``method`` None: ``lora`` for an adapter, else ``full``; ``dtype`` ``auto``: the device's)."""
    if dtype != "auto" and dtype not in COMPUTE_DTYPES:
        raise ScoringError(f"dtype {dtype!r} is not one of auto, {', '.join(COMPUTE_DTYPES)}")
    record = read_loading(folder)
    if record is None:
        return resolve_loading(
            quantization=quantization or "none",
            method=method or ("lora" if is_adapter else "full"),
            device=device,
            dtype=None if dtype == "auto" else dtype,
            revision=revision,
            device_key="device",
        )
    path = folder / LOADING_FILE
    asked: dict[str, Any] = {}
    if method is not None:
        asked["method"] = method
    if quantization is not None:
        asked["quantization"] = resolve_loading(
            quantization=quantization, method=method or record["method"], device=device, device_key="device"
        ).quantization
    if dtype != "auto":
        asked["compute_dtype"] = dtype
    if revision is not None:
        asked["revision"] = revision
    for key, value in asked.items():
        if value != record[key]:
            raise ScoringError(
                f"{path}: the model was trained with {key} {record[key]!r}, but {value!r} was asked for; a rater is "
                f"measured on the base it was trained on: drop the request, or fine-tune again with {key} {value!r}"
            )
    return Loading(
        method=record["method"],
        quantization=record["quantization"],
        compute_dtype=record["compute_dtype"],
        device=device,
        student=record["student"],
        revision=record["revision"],
    )


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def _base_folder(adapter: Path, base: str | None) -> str:
    """The base model an adapter applies to: ``base``, else its adapter_config's, relative to the current directory."""
    cfg_path = adapter / "adapter_config.json"
    if base is None:
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RaterNotFound(f"{cfg_path}: cannot read the adapter config ({e})") from None
        base = cfg.get("base_model_name_or_path")
        if not base:
            raise RaterNotFound(f"{cfg_path} names no base_model_name_or_path; pass the base model with --base")
        source = f"named by {cfg_path}"
    else:
        source = "given as base"
    candidate = Path(os.path.expanduser(str(base)))
    if candidate.is_dir():
        if not (candidate / "config.json").is_file():
            raise RaterNotFound(f"base model {str(candidate)!r} ({source}) has no config.json")
        return str(candidate)
    looks_like_path = str(base).startswith((".", "/", "~")) or candidate.is_absolute() or str(base).count("/") > 1
    if looks_like_path:
        raise RaterNotFound(
            f"base model {str(base)!r} ({source}) not found (relative paths are read from "
            f"{Path.cwd()}); run from the project root or pass --base PATH"
        )
    return str(base)  # maybe a Hub id; loading says if it is not


@quiet_library_bars()  # transformers' "Loading weights" bar only in a terminal
def load_rater(
    path: str | Path,
    *,
    base: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    quantization: str | None = None,
    method: str | None = None,
    revision: str | None = None,
):
    """Load a rater for inference: ``(model, tokenizer)``, eval mode, its base loaded the way training loaded it.

    ``path`` holds either a full model (``config.json``) or a peft adapter
    (``adapter_config.json``; the base is ``base`` if given, else the
    adapter's ``base_model_name_or_path``, relative paths read from the
    current directory). The tokenizer is the folder's own when it has one,
    else the base's. A missing folder or base is :class:`RaterNotFound`
    (a ``FileNotFoundError``) naming the path.

    How the model (an adapter's base) is loaded: a fine-tune's ``LOADING.json``
    (explainft.students: ``quantization`` nf4 or none, ``compute_dtype``, the
    student's ``revision``) when the folder has one, so that a QLoRA adapter is
    measured on the NF4 base it was trained on (the same BitsAndBytesConfig,
    its other weights cast to float32 as ``prepare_model_for_kbit_training``
    cast them); ``quantization``, ``method``, ``dtype`` and ``revision`` asked
    for here must then agree with it (else :class:`ScoringError`). Without one
    (a student folder: the untuned baseline; a model fine-tuned before the
    record) they are resolved as :func:`explainft.students.resolve_loading`
    resolves training's: pass ``train.quantization`` and ``train.method`` to load
    an untuned student the way its fine-tunes load it. Errors other than
    "not found / not loadable" (CUDA out of memory above all) propagate as they are.
    """
    import torch  # noqa: F401  (fail early if torch is missing)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(os.path.expanduser(str(path)))
    if not folder.is_dir():
        raise RaterNotFound(f"rater {str(path)!r}: no such folder")
    is_adapter = (folder / "adapter_config.json").is_file()
    if not is_adapter and not (folder / "config.json").is_file():
        raise RaterNotFound(
            f"rater {str(path)!r} holds neither a model (config.json) nor a peft adapter "
            "(adapter_config.json); point at a fine-tune's model/ folder or a student folder"
        )
    dev = resolve_device(device, key="device")
    loading = _rater_loading(
        folder, is_adapter, dev, dtype=dtype, quantization=quantization, method=method, revision=revision
    )
    model_src = _base_folder(folder, base) if is_adapter else str(folder)
    tok_src = str(folder) if _has_tokenizer(folder) else model_src
    try:
        tok = AutoTokenizer.from_pretrained(tok_src, **loading.tokenizer_kwargs(tok_src))
        model = AutoModelForCausalLM.from_pretrained(model_src, **loading.model_kwargs(model_src, training=False))
    except ImportError as e:
        raise ScoringError(
            f"rater {str(path)!r}: its base loads as {loading.quantization}, which cannot run here ({e})"
        ) from None
    except not_loadable_errors() as e:  # not found / not loadable; CUDA out of memory and the like propagate
        if isinstance(e, ExplainftError):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        if is_adapter:
            raise RaterNotFound(
                f"cannot load the base model {model_src!r} of adapter {str(path)!r} "
                f"({type(e).__name__}: {first}); it is neither a model folder under {Path.cwd()} "
                "nor a loadable Hub id: run from the project root or pass --base PATH"
            ) from None
        raise RaterNotFound(f"cannot load rater {str(path)!r} ({type(e).__name__}: {first})") from None
    if loading.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        # as load_student prepared the base for QLoRA: frozen, every weight that is not 4-bit in float32
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    if loading.quantization != "nf4":  # an NF4 model is placed by its device_map
        model.to(dev)
    model.eval()
    return model, tok


def trained_position(model_dir: Path) -> str:
    """The explanation position a fine-tune's ``model/`` folder was trained with (its ``metrics.json`` records the
    training config); ``after`` for a folder without one (an untuned student). An unreadable record is an error."""
    path = Path(model_dir) / "metrics.json"
    if not path.is_file():
        return "after"
    try:
        position = json.loads(path.read_text(encoding="utf-8"))["config"]["explanation_position"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ScoringError(f"{path}: cannot read the training config's explanation_position ({e!r})") from None
    if position not in POSITIONS:
        raise ScoringError(f"{path}: explanation_position {position!r} is not one of {', '.join(POSITIONS)}")
    return position
