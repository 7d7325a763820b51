"""Token-level encoding of one training example (the training target of explainft.targets).

``encode_example`` turns an :class:`~explainft.records.Example` of a variant
file into input ids and two label rows:

* ``labels`` (training): -100 on every prompt token (and on a BOS the
  tokenizer adds), the target tokens and the appended EOS supervised;
* ``eval_labels`` (evaluation): -100 everywhere except the one token that
  holds the score digit, so ``eval_loss`` is the score-only loss.

Layouts (``position``):

* ``"after"`` (the paper's, the default): prompt = ``student_prompt(example)``
  (ends ``"Score:"``), target = ``student_target(example)`` =
  ``" 4"`` or ``" 4\\n<explanation>"``. The digit is character
  ``len(prompt) + 1`` of the full text.
* ``"before"`` (rationale, then answer; for comparison): the prompt's final
  ``"Score:"`` becomes ``"Explanation:"``, target =
  ``" <explanation>\\nScore: 4"``; for the ``none`` variant (empty
  explanation) the target is just ``"\\nScore: 4"`` (the explanation slot is
  left empty rather than dropped, so the prompt is the same for every variant).
  The digit is the last character of the target. Note that its eval loss is
  teacher-forced on the reference explanation: it is the loss of the digit
  given the gold rationale, not what a one-pass scorer sees.

Locating the score token. The full text (prompt + target) is tokenised once
with ``add_special_tokens=True`` (a BOS the tokenizer adds is kept, and
masked) and ``return_offsets_mapping=True``; the score token is the token
whose character span covers the digit's known position. Template tokens are
never matched: SentencePiece-style tokenizers (Mistral, and SmolLM2, whose
ByteLevel vocabulary splits every digit off) give ``" 4"`` as a space token
then ``"4"``; a tiny ByteLevel BPE may give one token ``" 4"``. Both are
accepted: the score token's text (its span, and its decoded form) must be
the digit, optionally after whitespace, and must end with it. If the digit
is merged with a neighbour (``" 4\\n"``, ``":4"``, ``"45"``) there is no single token whose
probability is the score's, so :class:`EncodeError` (a ``ValueError``) is
raised naming the example id and the token; use another tokenizer or layout.

Label boundary. A token whose span starts at or after ``len(prompt)`` is a
target token (supervised); one that ends at or before it is a prompt token.
A token straddling the boundary (``": "`` or ``"Score: 4"`` fused) is an
error, not a guess: supervising it would train the model to emit prompt text,
masking it would drop target text, and either way the prompt tokenised alone
(what a scorer feeds) would differ from the training prefix. Every tokenizer
measured (tiny ByteLevel, SmolLM2, Mistral) splits at ``"Score:"|" 4"``.
Special tokens the tokenizer inserts (zero-width spans) are never supervised;
an EOS id is appended after tokenising unless the tokenizer already ended the
sequence with one.

Truncation. The target and the rubric are never cut; when the encoded length
(with EOS) exceeds ``max_length`` the conversation is shortened, step by step,
each step only if the previous ones were not enough, re-rendering the prompt
from a shortened Example (``student_prompt``) each time:

1. drop whole turns, oldest first: every turn except the last user turn and
   the response (assistant turns between those two go last);
2. cut the context from its end (keep its start), dropping it altogether
   if need be;
3. cut the last user turn from its start (keep its end: the question is
   usually last), marked by a leading ``"…"``;
4. cut the response from its end (keep its start), marked by a trailing
   ``"…"``; at least one character of each survives.

Each step keeps as much as fits (a binary search over turns or characters,
assuming fewer characters never give more tokens; what is returned was
checked to fit). If even the shortest conversation does not fit (droppable
turns and context gone, the user turn and the response each cut to one
character or kept whole, whichever gives fewer tokens, since the ``"…"``
marker costs tokens), :class:`EncodeError` names the example id,
``max_length`` and that shortest length, which is enough: raise
``max_length`` to it (or shorten the explanations). An example without a
supervised token is never returned (asserted).
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .config.train import POSITIONS
from .errors import ExplainftError
from .records import Example
from .targets import student_prompt, student_target

IGNORE = -100
ELLIPSIS = "…"
_SCORE_CUE = "Score:"
_EXPLANATION_CUE = "Explanation:"


class EncodeError(ExplainftError, ValueError):
    """An example cannot be encoded as asked (names the example id and what to change)."""


@dataclass(frozen=True)
class Encoded:
    """One tokenised example (see the module docstring for the label rules)."""

    id: str
    input_ids: list[int]
    attention_mask: list[int]
    labels: list[int]
    eval_labels: list[int]
    score_index: int
    score_token_id: int
    n_turns_dropped: int = 0
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


# --------------------------------------------------------------------------- text layout


def prompt_for(example: Example, position: str = "after") -> str:
    """The student's prompt in layout ``position``: ``student_prompt``, its final ``Score:`` → ``Explanation:`` for "before"."""
    _check_position(position)
    prompt = student_prompt(example)
    if position == "after":
        return prompt
    if not prompt.endswith(_SCORE_CUE):
        raise EncodeError(f"example {example.id!r}: the student prompt does not end with {_SCORE_CUE!r}")
    return prompt[: -len(_SCORE_CUE)] + _EXPLANATION_CUE


def target_for(example: Example, position: str = "after") -> tuple[str, int]:
    """The target text in layout ``position`` and the index of the score digit in it."""
    _check_position(position)
    if position == "after":
        target = student_target(example)  # " 4" or " 4\n<explanation>"
        digit = 1
    else:
        if example.variant is None:
            raise ValueError(f"example {example.id!r} has no variant: targets are built from variant files")
        expl = f" {example.explanation}" if example.explanation else ""
        target = f"{expl}\n{_SCORE_CUE} {example.label}"
        digit = len(target) - 1
    assert target[digit] == str(example.label), (target, digit)
    return target, digit


def _check_position(position: str) -> None:
    if position not in POSITIONS:
        raise ValueError(f"unknown explanation position {position!r}; known: {', '.join(POSITIONS)}")


# --------------------------------------------------------------------------- one text → ids and labels


def _eos_id(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise EncodeError("the tokenizer has no eos_token_id: the target must end with an EOS token")
    return int(eos)


def _encode_text(tokenizer: Any, example_id: str, prompt: str, target: str, digit: int) -> Encoded:
    """Tokenise prompt + target once and derive both label rows from character offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise EncodeError("a fast tokenizer (with offset mappings) is needed to locate the score token")
    text = prompt + target
    boundary = len(prompt)
    digit_pos = boundary + digit
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True)
    ids = [int(i) for i in enc["input_ids"]]
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    special = list(enc.get("special_tokens_mask") or [0] * len(ids))

    labels = [IGNORE] * len(ids)
    score_index = None
    for i, ((start, end), sp) in enumerate(zip(offsets, special)):
        if sp:  # BOS/EOS the tokenizer inserts: never supervised (the EOS is appended below)
            continue
        # (a non-special token with trimmed, zero-width offsets, e.g. a lone space, is placed by its start)
        if start < boundary < end:
            raise EncodeError(
                f"example {example_id!r}: token {i} {_tok(tokenizer, ids[i])} spans the prompt/target boundary "
                f"(characters {start}-{end}, boundary {boundary}: {text[start:end]!r}); the prompt must end on a "
                "token boundary so that masking is exact"
            )
        if start >= boundary:
            labels[i] = ids[i]
        if start <= digit_pos < end:
            score_index = i
    if score_index is None:
        raise EncodeError(f"example {example_id!r}: no token covers the score digit at character {digit_pos}")
    start, end = offsets[score_index]
    span = text[start:end]
    decoded = tokenizer.decode([ids[score_index]], clean_up_tokenization_spaces=False)
    want = text[digit_pos]
    # the digit, optionally after whitespace (ByteLevel " 4"); nothing may follow it ("4\n" is a merge)
    if end != digit_pos + 1 or span.lstrip() != want or decoded.lstrip() != want:
        raise EncodeError(
            f"example {example_id!r}: the score digit {want!r} is not a token of its own: it is merged into token "
            f"{_tok(tokenizer, ids[score_index])} (text {span!r}); the one-pass scorer needs a single-token digit "
            "- use a tokenizer that splits digits, or another target layout"
        )

    eos = _eos_id(tokenizer)
    if not (ids and ids[-1] == eos and special[-1]):
        ids.append(eos)
        labels.append(eos)
    else:  # the tokenizer already appended EOS: supervise it
        labels[-1] = eos
    eval_labels = [IGNORE] * len(ids)
    eval_labels[score_index] = ids[score_index]
    assert any(l != IGNORE for l in labels), f"example {example_id!r} has no supervised token"
    return Encoded(
        id=example_id,
        input_ids=ids,
        attention_mask=[1] * len(ids),
        labels=labels,
        eval_labels=eval_labels,
        score_index=score_index,
        score_token_id=ids[score_index],
    )


def _tok(tokenizer: Any, token_id: int) -> str:
    try:
        return f"{tokenizer.convert_ids_to_tokens(token_id)!r} (id {token_id})"
    except Exception:  # pragma: no cover - a tokenizer without the method
        return f"id {token_id}"


# --------------------------------------------------------------------------- truncation


def _largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """The largest n in [lo, hi] with fits(n), assuming fits is monotone (true up to some n); None if none."""
    if lo > hi or not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def encode_example(tokenizer: Any, example: Example, max_length: int, *, position: str = "after") -> Encoded:
    """Encode one variant-file example; shortens the conversation (never the target) to fit ``max_length``."""
    _check_position(position)
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length!r}")
    target, digit = target_for(example, position)
    cache: dict[Example, Encoded] = {}

    def enc(ex: Example) -> Encoded:
        if ex not in cache:
            cache[ex] = _encode_text(tokenizer, example.id, prompt_for(ex, position), target, digit)
        return cache[ex]

    def ok(ex: Example) -> bool:
        return len(enc(ex)) <= max_length

    def finish(ex: Example, dropped: int) -> Encoded:
        return dataclasses.replace(enc(ex), n_turns_dropped=dropped, truncated=ex != example)

    if ok(example):
        return finish(example, 0)

    # 1. drop turns, oldest first; the last user turn and the response stay
    turns = example.turns
    last_user = _last_user(example)
    order = [i for i in range(len(turns) - 1) if i < last_user] + [i for i in range(len(turns) - 1) if i > last_user]

    def keep_turns(n: int) -> Example:  # keep the n newest droppable turns
        gone = set(order[: len(order) - n])
        return dataclasses.replace(example, turns=tuple(t for i, t in enumerate(turns) if i not in gone))

    n = _largest(0, len(order), lambda n: ok(keep_turns(n)))
    dropped = len(order) - (n or 0)
    ex = keep_turns(n or 0)
    if n is not None:
        return finish(ex, dropped)

    # 2. the context, cut from its end (its start is kept); dropped when not even one character fits
    if ex.context is not None:
        ctx, base = ex.context.strip(), ex

        def with_ctx(n: int) -> Example:
            return dataclasses.replace(base, context=ctx if n >= len(ctx) else ctx[:n].rstrip() + ELLIPSIS)

        n = _largest(1, len(ctx), lambda n: ok(with_ctx(n)))
        ex = with_ctx(n) if n is not None else dataclasses.replace(base, context=None)
        if n is not None or ok(ex):
            return finish(ex, dropped)

    # 3. the last user turn, cut from its start (its end is kept)
    ex = _cut_turn(ex, _last_user(ex), keep="end", ok=ok, length=lambda e: len(enc(e)))
    if ok(ex):
        return finish(ex, dropped)

    # 4. the response, cut from its end (its start is kept)
    ex = _cut_turn(ex, len(ex.turns) - 1, keep="start", ok=ok, length=lambda e: len(enc(e)))
    if ok(ex):
        return finish(ex, dropped)
    need = len(enc(ex))
    raise EncodeError(
        f"example {example.id!r} does not fit max_length={max_length} even with the conversation cut to a minimum: "
        f"the rubric, the target and the shortest conversation tried need {need} tokens; raise max_length to at "
        f"least {need} (or shorten the explanations)"
    )


def _cut_turn(
    ex: Example, index: int, *, keep: str, ok: Callable[[Example], bool], length: Callable[[Example], int]
) -> Example:
    """``ex`` with turn ``index`` cut to its longest fitting start or end (at least one character, marked "…")."""
    text = ex.turns[index].text.strip()

    def shorten(n: int) -> Example:
        if n >= len(text):
            cut = text
        elif keep == "end":
            cut = ELLIPSIS + text[len(text) - n :].lstrip()
        else:
            cut = text[:n].rstrip() + ELLIPSIS
        turns = list(ex.turns)
        turns[index] = dataclasses.replace(turns[index], text=cut)
        return dataclasses.replace(ex, turns=tuple(turns))

    n = _largest(1, len(text), lambda n: ok(shorten(n)))
    if n is not None:
        return shorten(n)
    # nothing fits: keep the shorter in tokens of the one-character cut and the whole text (the "…" marker
    # can make a cut text longer than a short uncut one); the caller reports the length
    return min(shorten(1), shorten(len(text)), key=lambda e: (ok(e), length(e)))


def _last_user(ex: Example) -> int:
    return max(i for i, t in enumerate(ex.turns) if t.role == "user")


# --------------------------------------------------------------------------- many examples, batches


def encode_all(
    tokenizer: Any, examples: Iterable[Example], max_length: int, position: str = "after"
) -> tuple[list[Encoded], dict[str, Any]]:
    """Encode every example; stats = n, truncated, turns_dropped, max_length, mean_length (lengths with EOS)."""
    out = [encode_example(tokenizer, ex, max_length, position=position) for ex in examples]
    lengths = [len(e) for e in out]
    stats = {
        "n": len(out),
        "truncated": sum(e.truncated for e in out),
        "turns_dropped": sum(e.n_turns_dropped for e in out),
        "max_length": max(lengths, default=0),
        "mean_length": statistics.fmean(lengths) if lengths else 0.0,
    }
    return out, stats


def pad_id_for(tokenizer: Any) -> int:
    """The id to pad with: the pad token, else EOS, else UNK (Mistral has no pad token; masks make it harmless)."""
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise EncodeError("the tokenizer has no pad, eos or unk token to pad with")


def score_token_ids(tokenizer: Any, example: Example, max_length: int, *, position: str = "after") -> tuple[int, ...]:
    """The ids of the score tokens for labels 1..5, found in context (as ``encode_example`` finds them)."""
    ids = tuple(
        encode_example(tokenizer, dataclasses.replace(example, label=k), max_length, position=position).score_token_id
        for k in range(1, 6)
    )
    if len(set(ids)) != 5:
        raise EncodeError(f"the five score labels do not map to five distinct tokens: {ids}")
    return ids


def collate(batch: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into torch tensors.

    Returns ``input_ids`` (padded with ``pad_id``), ``attention_mask`` (0 on
    padding), ``labels`` and ``eval_labels`` (-100 on padding) and
    ``score_index``. Pass only the first three to a model's forward (use
    ``eval_labels`` as ``labels`` for the score-only loss).
    """
    import torch

    if not batch:
        raise ValueError("cannot collate an empty batch")
    if pad_id is None:
        raise ValueError("pad_id is None: pass pad_id_for(tokenizer) (pad, else eos, else unk)")
    width = max(len(e) for e in batch)

    def pad(rows: list[list[int]], value: int) -> "torch.Tensor":
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    return {
        "input_ids": pad([e.input_ids for e in batch], int(pad_id)),
        "attention_mask": pad([e.attention_mask for e in batch], 0),
        "labels": pad([e.labels for e in batch], IGNORE),
        "eval_labels": pad([e.eval_labels for e in batch], IGNORE),
        "score_index": torch.tensor([e.score_index for e in batch], dtype=torch.long),
    }
