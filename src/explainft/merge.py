"""Merge stage: the 12 teacher ratings of one item × dimension become one :class:`Item`.

One idea, over 500 lines: every score and explanation merge method, and the llm judge's fallbacks.

Scores
------
Every valid rating (``status == "ok"``) is put on one scale first::

    normalise(raw, scale) = (raw - 1) / (scale - 1)        # 1..4 or 1..5  ->  [0, 1]
    to_label(s)           = 1 + round_half_up(4 * s)       # [0, 1]        ->  1..5

``round_half_up`` rounds .5 up (0.125 -> 2, 0.375 -> 3, 0.625 -> 4, 0.875 -> 5),
not to the even neighbour as Python's ``round`` does. ``4 * s`` is first rounded
to 9 decimals so that a mean that is mathematically on a half (0.375) but a
hair below it in binary floating point still rounds up.

Score methods (``merge.score``):

``average``
    The mean of the valid normalised scores (the paper's choice: best against
    its golden set). ``label = to_label(score)``.
``most_frequent``
    Each valid rating is mapped to a label, ``to_label(normalise(raw, scale))``
    (a 1-4 rating of 3 is 2/3 and so label 4), and the most frequent label wins.
    Ties: among the tied labels the one whose normalised value ``(label-1)/4``
    is closest to the mean normalised score; if still tied, the lower label.
    ``score = (label - 1) / 4``.
``llm``
    A judge :class:`~explainft.annotate.base.Backend` reads the valid ratings
    (scores and explanations; chat built by :func:`judge_messages`) and replies
    with exactly one JSON object ``{"score": <int 1..5>, "reason": <str>}``;
    ``label = score``, ``score = (label - 1) / 4``. The reply is parsed strictly
    (:func:`parse_judge_reply`: no prose around the object, no code fences, no
    extra keys, an integer score). An unparsable reply or a ``BackendError``
    falls back to ``average`` for that item, logged and counted in
    ``stats["llm_fallbacks"]["judge"]`` (reasons in ``llm_fallback_reasons``).

Explanations (``merge.explanation``):

``extractive``
    For the offline teachers. The valid rating whose normalised score is
    closest to the merged score gives the assessment; ties go to the rating
    that comes first in the fixed rating order (below). The confidence is
    chosen by the same rule, separately, so a rating with an empty confidence
    is passed over for the next closest (and likewise for an empty
    assessment); if every valid text is empty the result is ``""``. With
    ``dedupe_sentences=True`` a sentence repeated inside the chosen text is
    kept once (sentences split after ``.``, ``!`` or ``?`` followed by
    whitespace; compared case- and whitespace-insensitively).
``llm``
    A summariser Backend combines the valid ratings' non-empty assessments into
    one text, and separately their confidences (chat from
    ``explainft.annotate.prompts.build_summary_prompt(dimension, texts, kind)``,
    ``kind`` ``"assessment"`` or ``"confidence"``), replying with exactly
    ``{"text": "<non-empty str>"}``. A failure falls back to ``extractive`` for
    that item and that kind, counted in ``llm_fallbacks["summary_<kind>"]``.

Rating order
------------
``order`` (a list of strings) fixes the order of the ratings of one item: it
breaks extractive ties and is the order in which ratings are summed and shown to
the judge and summariser. An entry is a teacher name (all of that teacher's
prompts, in the order ``scale4, scale4_examples, scale5, scale5_examples``) or
a ``"teacher/prompt"`` pair; a rating takes the position of the first entry
that names it. Ratings that no entry names come after, by teacher name, then
prompt in the same order. The stage passes ``annotate.teachers`` in params
order, so the first-listed teacher wins ties.

Everything that is not used is counted: ratings by status per dimension,
items dropped for having fewer than ``min_valid`` valid ratings, every LLM
fallback. Items come out sorted by (id, dimension name) whatever the input order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .annotate.base import Backend, BackendError
from .annotate.prompts import build_judge_prompt, build_summary_prompt
from .config.annotate import EXPLANATION_METHODS, PROMPT_VARIANTS, SCORE_METHODS
from .errors import ConfigError, RecordError
from .records import DIMENSIONS, Item, Rating

log = logging.getLogger(__name__)

SUMMARY_KINDS = ("assessment", "confidence")
FALLBACK_KINDS = ("judge", "summary_assessment", "summary_confidence")
LABELS = (1, 2, 3, 4, 5)


# --------------------------------------------------------------------------- scales


def normalise(raw: int, scale: int) -> float:
    """``(raw - 1) / (scale - 1)``: a 1..scale score on [0, 1]."""
    if isinstance(raw, bool) or not isinstance(raw, int) or isinstance(scale, bool) or not isinstance(scale, int):
        raise ValueError(f"normalise needs integers, got raw={raw!r}, scale={scale!r}")
    if scale < 2 or not 1 <= raw <= scale:
        raise ValueError(f"score {raw!r} is outside 1..{scale!r}")
    return (raw - 1) / (scale - 1)


def to_label(score01: float) -> int:
    """``1 + round_half_up(4 * score01)``: a [0, 1] score as a 1..5 label (0.125 -> 2, 0.375 -> 3)."""
    if not (isinstance(score01, (int, float)) and math.isfinite(score01) and 0.0 <= score01 <= 1.0):
        raise ValueError(f"score {score01!r} is outside [0, 1]")
    # round to 9 decimals first: a mean that is 0.375 on paper may be 0.37499999999999994 in binary
    return 1 + math.floor(round(4.0 * score01, 9) + 0.5)


def label_score(label: int) -> float:
    """The normalised value of a 1..5 label: ``(label - 1) / 4``."""
    return (label - 1) / 4


def mean_score(ratings: Sequence[Rating]) -> float:
    """The ``average`` method: the mean normalised score of (valid) ratings, summed in the given order."""
    if not ratings:
        raise ValueError("no valid ratings to average")
    return math.fsum(normalise(r.raw_score, r.scale) for r in ratings) / len(ratings)  # type: ignore[arg-type]


def most_frequent_label(ratings: Sequence[Rating]) -> int:
    """The ``most_frequent`` method: the modal label; ties -> closest to the mean normalised score, then lower."""
    if not ratings:
        raise ValueError("no valid ratings to take the most frequent label of")
    counts = Counter(to_label(normalise(r.raw_score, r.scale)) for r in ratings)  # type: ignore[arg-type]
    top = max(counts.values())
    tied = [lab for lab in LABELS if counts.get(lab) == top]
    mean = mean_score(ratings)
    # distances rounded so that two labels equally far from the mean (0.25 and 0.5 around 0.375) really tie
    return min(tied, key=lambda lab: (round(abs(label_score(lab) - mean), 9), lab))


# --------------------------------------------------------------------------- rating order


def rating_order_key(order: Sequence[str] | None):
    """A sort key for ratings of one item following ``order`` (see the module docstring)."""
    order = list(order or [])
    first: dict[str, int] = {}
    for i, entry in enumerate(order):
        first.setdefault(entry, i)
    n = len(order)

    def prompt_rank(prompt: str) -> int:
        return PROMPT_VARIANTS.index(prompt) if prompt in PROMPT_VARIANTS else len(PROMPT_VARIANTS)

    def key(r: Rating) -> tuple[int, str, int, str]:
        cands = []
        pair = f"{r.teacher}/{r.prompt}"
        if pair in first:
            cands.append((first[pair], "", -1, ""))
        if r.teacher in first:
            cands.append((first[r.teacher], "", prompt_rank(r.prompt), r.prompt))
        if cands:
            return min(cands)
        return (n, r.teacher, prompt_rank(r.prompt), r.prompt)

    return key


# --------------------------------------------------------------------------- explanations


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def dedupe_sentences(text: str) -> str:
    """Keep the first of sentences that repeat (case- and whitespace-insensitive); joined by one space."""
    seen: set[str] = set()
    out = []
    for sentence in _SENTENCE_END.split(text.strip()):
        norm = " ".join(sentence.split()).casefold()
        if not norm or norm in seen:
            continue
        seen.add(norm)
        out.append(sentence.strip())
    return " ".join(out)


def extractive_text(ratings: Sequence[Rating], score: float, kind: str, *, dedupe: bool = False) -> str:
    """The ``kind`` text of the valid rating closest to ``score``; ties: first in the given order; "" if none."""
    best: tuple[float, int] | None = None
    text = ""
    for i, r in enumerate(ratings):
        t = getattr(r, kind)
        if not t.strip():
            continue
        d = round(abs(normalise(r.raw_score, r.scale) - score), 9)  # type: ignore[arg-type]
        if best is None or (d, i) < best:
            best, text = (d, i), t
    return dedupe_sentences(text) if dedupe and text else text.strip()


# --------------------------------------------------------------------------- LLM judge and summariser


class ReplyError(ValueError):
    """A judge or summariser reply that is not the JSON object asked for; ``reason`` is a count key."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def _as_messages(obj: Any, where: str) -> list[dict[str, str]]:
    msgs = obj.messages() if callable(getattr(obj, "messages", None)) else obj
    if (
        not isinstance(msgs, list)
        or not msgs
        or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in msgs
        )
    ):
        raise TypeError(
            f"{where} must return a Prompt or a non-empty list of {{role, content}} messages, got {obj!r:.200}"
        )
    return [dict(m) for m in msgs]


def judge_messages(dimension: str, ratings: Sequence[Rating]) -> list[dict[str, str]]:
    """The judge's chat for one item: ``explainft.annotate.prompts.build_judge_prompt(dimension, ratings)``."""

    return _as_messages(build_judge_prompt(dimension, list(ratings)), "build_judge_prompt")


def summary_messages(dimension: str, texts: Sequence[str], kind: str) -> list[dict[str, str]]:
    """The summariser's chat: ``explainft.annotate.prompts.build_summary_prompt(dimension, texts, kind)``."""

    return _as_messages(build_summary_prompt(dimension, list(texts), kind), "build_summary_prompt")


def _json_object(text: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ReplyError("not_text", f"reply is {type(text).__name__}, not text")
    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError as e:
        raise ReplyError(
            "bad_json", f"reply is not one JSON object: {e.msg} at column {e.colno}: {text[:120]!r}"
        ) from None
    if not isinstance(obj, dict):
        raise ReplyError("not_object", f"reply is JSON {type(obj).__name__}, not an object")
    missing = sorted(keys - set(obj))
    if missing:
        raise ReplyError("missing_key", f"reply lacks key {missing[0]!r}")
    extra = sorted(set(obj) - keys)
    if extra:
        raise ReplyError("unknown_key", f"reply has unexpected key {extra[0]!r}")
    return obj


def parse_judge_reply(text: str) -> tuple[int, str]:
    """``{"score": 1..5, "reason": str}`` -> (score, reason); anything else raises :class:`ReplyError`."""
    obj = _json_object(text, {"score", "reason"})
    score = obj["score"]
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise ReplyError("bad_score", f"score must be an integer 1..5, got {score!r}")
    if not isinstance(obj["reason"], str):
        raise ReplyError("bad_reason", f"reason must be a string, got {type(obj['reason']).__name__}")
    return score, obj["reason"]


def parse_summary_reply(text: str) -> str:
    """``{"text": "<non-empty>"}`` -> the text; anything else raises :class:`ReplyError`."""
    obj = _json_object(text, {"text"})
    if not isinstance(obj["text"], str) or not obj["text"].strip():
        raise ReplyError("bad_text", "text must be a non-empty string")
    return obj["text"].strip()


# --------------------------------------------------------------------------- merge


@dataclass
class _Counts:
    fallbacks: dict[str, Counter]
    reasons: dict[str, Counter]
    calls: Counter

    @classmethod
    def new(cls) -> "_Counts":
        return cls({k: Counter() for k in FALLBACK_KINDS}, {k: Counter() for k in FALLBACK_KINDS}, Counter())

    def fallback(self, kind: str, dimension: str, reason: str, item_id: str, detail: str) -> None:
        self.fallbacks[kind][dimension] += 1
        self.reasons[kind][reason] += 1
        log.warning("merge: %s failed for %s/%s (%s: %s); falling back", kind, item_id, dimension, reason, detail)


def check_merge_params(
    score_method: str,
    explanation_method: str,
    min_valid: Any,
    judge: Backend | None,
    summariser: Backend | None,
    order: Any,
) -> None:
    """Raise ConfigError naming the ``merge.*`` key of the first bad parameter."""
    if score_method not in SCORE_METHODS:
        raise ConfigError("merge.score", f"unknown score method {score_method!r}; known: {', '.join(SCORE_METHODS)}")
    if explanation_method not in EXPLANATION_METHODS:
        raise ConfigError(
            "merge.explanation",
            f"unknown explanation method {explanation_method!r}; known: {', '.join(EXPLANATION_METHODS)}",
        )
    if isinstance(min_valid, bool) or not isinstance(min_valid, int) or min_valid < 1:
        raise ConfigError("merge.min_valid", f"must be an integer >= 1, got {min_valid!r}")
    if score_method == "llm" and judge is None:
        raise ConfigError(
            "merge.judge",
            "score method 'llm' needs a judge backend; configure merge.judge or choose merge.score: average",
        )
    if explanation_method == "llm" and summariser is None:
        raise ConfigError(
            "merge.summariser",
            "explanation method 'llm' needs a summariser backend; configure "
            "merge.summariser or choose merge.explanation: extractive",
        )
    if order is not None and (not isinstance(order, (list, tuple)) or not all(isinstance(o, str) for o in order)):
        raise ConfigError("merge.order", f"must be a list of teacher names or 'teacher/prompt' pairs, got {order!r}")


def _group(ratings: Iterable[Rating]) -> tuple[dict[tuple[str, str], list[Rating]], dict[str, Counter]]:
    groups: dict[tuple[str, str], list[Rating]] = defaultdict(list)
    seen: set[tuple[str, str, str, str]] = set()
    status: dict[str, Counter] = defaultdict(Counter)
    for r in ratings:
        if not isinstance(r, Rating):
            raise TypeError(f"merge_ratings takes Rating records, got {type(r).__name__}")
        k = (r.id, r.dimension, r.teacher, r.prompt)
        if k in seen:
            raise RecordError(
                "duplicate_rating",
                f"a second rating by teacher {r.teacher!r} with prompt {r.prompt!r} "
                f"on {r.dimension}; annotate writes one per teacher and prompt",
                record=r.id,
                field="teacher/prompt",
            )
        seen.add(k)
        groups[(r.id, r.dimension)].append(r)
        status[r.dimension][r.status] += 1
    return groups, status


async def _ask(
    backend: Backend, sem: asyncio.Semaphore, messages: list[dict[str, str]], counts: _Counts, kind: str
) -> str:
    async with sem:
        counts.calls[kind] += 1
        return await backend.acomplete(messages, None)


async def amerge_ratings(
    ratings: Iterable[Rating],
    *,
    score_method: str = "average",
    explanation_method: str = "extractive",
    min_valid: int = 1,
    judge: Backend | None = None,
    summariser: Backend | None = None,
    order: Sequence[str] | None = None,
    dedupe_sentences: bool = False,
) -> tuple[list[Item], dict[str, Any]]:
    """The async form of :func:`merge_ratings` (use it inside a running event loop)."""
    check_merge_params(score_method, explanation_method, min_valid, judge, summariser, order)
    groups, status = _group(ratings)
    dims_seen = sorted({d for _, d in groups}, key=lambda d: DIMENSIONS.index(d))
    key = rating_order_key(order)
    counts = _Counts.new()
    dropped: Counter = Counter()
    # one semaphore per backend object: a judge that is also the summariser shares its bound
    sems: dict[int, asyncio.Semaphore] = {}
    for b in (judge, summariser):
        if b is not None and id(b) not in sems:
            sems[id(b)] = asyncio.Semaphore(max(1, int(getattr(b, "concurrency", 1) or 1)))

    async def merge_one(item_id: str, dim: str, valid: list[Rating]) -> Item:
        if score_method == "average":
            score = mean_score(valid)
            label = to_label(score)
        elif score_method == "most_frequent":
            label = most_frequent_label(valid)
            score = label_score(label)
        else:
            assert judge is not None
            try:
                reply = await _ask(judge, sems[id(judge)], judge_messages(dim, valid), counts, "judge")
                label, _reason = parse_judge_reply(reply)
                score = label_score(label)
            except (BackendError, ReplyError) as e:
                reason = e.reason if isinstance(e, ReplyError) else "backend_error"
                counts.fallback("judge", dim, reason, item_id, str(e))
                score = mean_score(valid)
                label = to_label(score)

        texts: dict[str, str] = {}
        for kind in SUMMARY_KINDS:
            if explanation_method == "llm":
                assert summariser is not None
                parts = [getattr(r, kind).strip() for r in valid if getattr(r, kind).strip()]
                if parts:
                    try:
                        reply = await _ask(
                            summariser,
                            sems[id(summariser)],
                            summary_messages(dim, parts, kind),
                            counts,
                            f"summary_{kind}",
                        )
                        texts[kind] = parse_summary_reply(reply)
                        continue
                    except (BackendError, ReplyError) as e:
                        reason = e.reason if isinstance(e, ReplyError) else "backend_error"
                        counts.fallback(f"summary_{kind}", dim, reason, item_id, str(e))
            texts[kind] = extractive_text(valid, score, kind, dedupe=dedupe_sentences)
        return Item(
            id=item_id,
            dimension=dim,
            score=score,
            label=label,
            assessment=texts["assessment"],
            confidence=texts["confidence"],
            n_valid=len(valid),
        )

    jobs = []
    for item_id, dim in sorted(groups):  # (id, dimension name): the order Items come out in
        valid = sorted((r for r in groups[(item_id, dim)] if r.status == "ok"), key=key)
        if len(valid) < min_valid:
            dropped[dim] += 1
            continue
        jobs.append(merge_one(item_id, dim, valid))
    items = list(await asyncio.gather(*jobs))  # gather keeps job order, whatever order replies arrive in

    by_dim: dict[str, list[Item]] = {d: [] for d in dims_seen}
    for it in items:
        by_dim[it.dimension].append(it)
    n_ratings = sum(sum(c.values()) for c in status.values())
    stats: dict[str, Any] = {
        "score_method": score_method,
        "explanation_method": explanation_method,
        "min_valid": min_valid,
        "n_groups": {d: sum(1 for _, dd in groups if dd == d) for d in dims_seen},
        "n_items": len(items),
        "n_items_by_dimension": {d: len(by_dim[d]) for d in dims_seen},
        "dropped_min_valid": {d: dropped[d] for d in dims_seen},
        "label_distribution": {
            d: {str(lab): sum(1 for it in by_dim[d] if it.label == lab) for lab in LABELS} for d in dims_seen
        },
        "mean_n_valid": {
            d: (sum(it.n_valid for it in by_dim[d]) / len(by_dim[d]) if by_dim[d] else None) for d in dims_seen
        },
        "mean_n_valid_all": (sum(it.n_valid for it in items) / len(items)) if items else None,
        "ratings": {d: {s: status[d][s] for s in ("ok", "unparsable", "failed")} for d in dims_seen},
        "n_ratings": n_ratings,
        "share_unparsable": (sum(c["unparsable"] for c in status.values()) / n_ratings) if n_ratings else 0.0,
        "share_failed": (sum(c["failed"] for c in status.values()) / n_ratings) if n_ratings else 0.0,
        "llm_calls": {k: counts.calls[k] for k in FALLBACK_KINDS},
        "llm_fallbacks": {k: {d: counts.fallbacks[k][d] for d in dims_seen} for k in FALLBACK_KINDS},
        "llm_fallback_reasons": {k: dict(sorted(counts.reasons[k].items())) for k in FALLBACK_KINDS},
    }
    return items, stats


def merge_ratings(
    ratings: Iterable[Rating],
    *,
    score_method: str = "average",
    explanation_method: str = "extractive",
    min_valid: int = 1,
    judge: Backend | None = None,
    summariser: Backend | None = None,
    order: Sequence[str] | None = None,
    dedupe_sentences: bool = False,
) -> tuple[list[Item], dict[str, Any]]:
    """Merge ratings into one Item per (id, dimension) with enough valid ratings; returns (items, stats).

    See the module docstring for the methods, tie rules and the stats keys. Runs
    the LLM calls (if any) on a fresh event loop with at most
    ``backend.concurrency`` requests in flight per backend.
    """
    return asyncio.run(
        amerge_ratings(
            ratings,
            score_method=score_method,
            explanation_method=explanation_method,
            min_valid=min_valid,
            judge=judge,
            summariser=summariser,
            order=order,
            dedupe_sentences=dedupe_sentences,
        )
    )
