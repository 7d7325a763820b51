"""Chatbot Arena Conversations (``lmsys/chatbot_arena_conversations``) -> a preference set.

Raw files (option ``files``, default ``["**/*.parquet", "**/*.jsonl"]``): the Hub's parquet
(``data/train-*.parquet``), read in record batches, or JSON lines with the same columns. Each row is one
battle: ``conversation_a`` and ``conversation_b`` (lists of ``{role, content}``) put the same user turns to
``model_a`` and ``model_b``, and ``winner`` is the crowd user's vote. Only ``question_id``, ``model_a``,
``model_b``, ``winner`` and the two conversations are read; the dataset's other published columns (judge,
language, moderation tags ...) are not used.

The turns of each side are parsed by :func:`explainft.datasets.arena.parse_side`, the Arena dataset loader's
own parser (roles ``user``/``assistant``, the last message the assistant's response, at least one user turn),
and two consecutive messages of one role are joined with a blank line (``policy.merged_consecutive_turns``).

Ids: pair ``<name>/<question_id>``, sides ``<name>/<question_id>/a`` and ``.../b``. Group:
``<name>/p<sha256 of the user turns>``, shared by both sides and by every battle with the same user turns.
Meta of each side: ``model``, ``opponent``, ``side``. Winner: ``model_a`` -> ``a``, ``model_b`` -> ``b``,
``tie`` and ``tie (bothbad)`` -> ``tie`` (the second is also counted as ``policy.tie_bothbad``).

Provenance in errors: the JSON line, or for parquet the 0-based row of the file (in the error's ``line`` and
as ``row N`` in its message), as the Arena dataset loader does.

Errors (RecordError; raised or counted under ``skipped.<reason>``): bad JSON or bytes not UTF-8 in a JSON line,
a row that is not an object, a missing or mistyped column (``missing_field``, ``wrong_type``), a ``winner``
outside the four published values or a ``question_id`` empty or with ``/`` (``bad_value``), a message that is
not an object or has a role other than user/assistant (``bad_role``), a side that does not end with the
assistant's response (``last_turn_not_response``) or has no user turn (``no_request``), two sides whose user
turns differ (``prompt_mismatch``), a ``question_id`` used before (``duplicate_id``). An unreadable parquet file
is an error for the whole file (``bad_file``).

Policies (counted): a side that is null or an empty list, or has a message whose content is null or blank, has
no response to compare, so the pair is dropped, counted once per pair under ``dropped.<reason>`` with the
Arena loader's reasons (``empty_conversation``, ``null_content``, ``empty_content``; side ``a``'s reason when
both sides have one).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from ..datasets.arena import WINNERS, parse_side
from ..datasets.base import LoadContext, RecordScope, merge_consecutive, parquet_rows, require
from ..errors import RecordError
from ..records import Conversation, Turn
from .base import RecordCounts, check_not_empty, group_of, human_files, rel, summary
from .records import HumanSet, PreferencePair, Scale

KIND = "preferences"
OPTIONS: dict[str, tuple[Any, Any]] = {"files": (list, ["**/*.parquet", "**/*.jsonl"])}
WINNER = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "tie"}
QUALITIES = {"preference": Scale(0, 1)}
BATCH_ROWS = 1024


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching parquet or JSON-lines file of ``raw_dir`` into the preference set ``name``."""
    pairs: list[PreferencePair] = []
    values_skipped: Counter = Counter()
    seen: dict[str, str] = {}
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        before = ctx.source_records
        parquet = path.suffix == ".parquet"
        rows = _parquet_rows(path, ctx) if parquet else ctx.jsonl(path)
        for rec, obj in rows:
            counts = RecordCounts(ctx)
            with rec:
                try:
                    pair_id, pair = parse_row(obj, name, counts)
                    if pair_id in seen:
                        raise RecordError("duplicate_id", f"question_id already used at {seen[pair_id]}")
                except RecordError as e:
                    if parquet:
                        e.message = f"row {rec.line}: {e.message}"
                    raise
                seen[pair_id] = f"{rel(path, raw_dir)}:{'row ' if parquet else ''}{rec.line}"
                counts.commit(values_skipped)
                if pair is not None:
                    pairs.append(pair)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="chatbot_arena",
        kind=KIND,
        pairs=pairs,
        qualities=dict(QUALITIES),
        load=summary(ctx, values_skipped, len(pairs)),
    )


def _parquet_rows(path: Path, ctx: LoadContext) -> Iterator[tuple[RecordScope, Any]]:
    for row, obj in parquet_rows(path, BATCH_ROWS):
        yield ctx.record(path, row), obj


def parse_row(obj: Any, name: str, counts: RecordCounts) -> tuple[str, PreferencePair | None]:
    """One battle -> ``(pair id, PreferencePair)``, or ``(pair id, None)`` when a policy drops it."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a row must be a JSON object, got {type(obj).__name__}")
    qid = require(obj, "question_id", str)
    if not qid.strip() or "/" in qid:
        raise RecordError("bad_value", f"question_id {qid!r} is empty or contains '/'", field="question_id")
    models = {s: require(obj, f"model_{s}", str) for s in ("a", "b")}
    raw_winner = require(obj, "winner", str)
    if raw_winner not in WINNERS:
        raise RecordError("bad_value", f"winner {raw_winner!r} is not one of {', '.join(WINNERS)}", field="winner")
    parsed: dict[str, list[Turn] | str] = {}
    for s in ("a", "b"):
        key = f"conversation_{s}"
        parsed[s] = parse_side(require(obj, key, list, allow_none=True), key)
    pair_id = f"{name}/{qid}"
    drops = [p for p in parsed.values() if isinstance(p, str)]
    if drops:
        counts.scratch.drop(drops[0])
        return pair_id, None
    turns = {s: merge_consecutive(t, counts.scratch) for s, t in parsed.items()}  # type: ignore[arg-type]
    asked = {s: [t.text for t in ts if t.role == "user"] for s, ts in turns.items()}
    if asked["a"] != asked["b"]:
        raise RecordError("prompt_mismatch", "the two sides have different user turns", field="conversation_b")
    if raw_winner == "tie (bothbad)":
        counts.scratch.count("tie_bothbad")
    group = group_of(name, asked["a"])
    sides = {
        s: Conversation(
            id=f"{pair_id}/{s}",
            dataset=name,
            turns=tuple(turns[s]),
            group=group,
            meta={"model": models[s], "opponent": models["b" if s == "a" else "a"], "side": s},
        )
        for s in ("a", "b")
    }
    return pair_id, PreferencePair(id=pair_id, group=group, a=sides["a"], b=sides["b"], winner=WINNER[raw_winner])
