"""Chatbot Arena Conversations (``lmsys/chatbot_arena_conversations``) -> Conversations.

Reads the Hub's parquet (``data/train-*.parquet``) in record batches, and JSON
lines with the same 13 columns (``*.jsonl``). Each row is one battle and yields
up to two conversations, ``chatbot_arena/<question_id>/a`` (``conversation_a``,
answered by ``model_a``) and ``.../b``. The response to rate is the last
assistant message.

Provenance: ``meta.source`` is ``{"file", "line"}`` for JSON lines (1-based
line) and ``{"file", "row"}`` for parquet, where ``row`` is the 0-based row
index in the file, i.e. the index of the Hub dataset (``ds[row]``), as in the
CoQA loader. Errors name the file and the line, or for parquet the row (in the
error's ``line`` and as ``row N`` in its message), and the field.

Every row is checked first: all 13 columns present and of the published type
(the dataset card of lmsys/chatbot_arena_conversations), ``winner`` one of ``model_a``, ``model_b``, ``tie``,
``tie (bothbad)``; a violation is a :class:`RecordError` (reason
``missing_field``, ``wrong_type`` or ``bad_value``). Then the options decide:

``sides`` (``both`` | ``a`` | ``b``, default ``both``)
    which conversations of each row to build.
``language`` (str or null, default null = all)
    keep only rows whose ``language`` equals it exactly (``"English"``);
    others count as ``dropped.language`` (one per row).
``drop_flagged`` (bool, default false)
    drop rows flagged by ``openai_moderation.flagged`` or by either
    ``toxic_chat_tag`` model; counted as ``dropped.flagged`` (one per row).
``multi_turn`` (``keep`` | ``drop``, default ``keep``)
    drop rows with ``turn > 1``, counted as ``dropped.multi_turn`` (one per row).
``consecutive_roles`` (``merge`` | ``keep``, default ``merge``)
    two messages of one role in a row are joined with a blank line
    (``policy.merged_consecutive_turns``) or kept (``policy.kept_consecutive_turns``).

Row filters apply in that order and a row counts under the first that drops it.

Empty sides (a known defect of the Hub data): per side, a conversation that is
an empty list or null is dropped as ``dropped.empty_conversation``; one with a
message whose ``content`` is null as ``dropped.null_content``; one with a
message whose content is empty or only whitespace as ``dropped.empty_content``.
The other side of the row is still used. These counts are per conversation.
Anything else wrong inside a conversation (a message that is not an object, a
role other than user/assistant, content of another type, no user message, a
last message that is not the assistant's) is a RecordError for the whole row.

Group: :func:`~explainft.datasets.base.prompt_group` of the user's turns. Both sides of a battle (one
``question_id``) put the same user turns to two models, so they share it; so do battles of other rows that ask
the same thing, which are common in the Arena. The split keeps a group on one side.

Meta of each conversation: ``question_id``, ``side`` (``a``/``b``), ``model``,
``opponent``, ``winner`` (as published), ``won`` (true if this side won, false
if it lost, null for ``tie`` and ``tie (bothbad)``), ``judge``, ``language``,
``turn``, ``anony``, ``tstamp``, ``flagged`` (any of the three flags) and
``moderation`` (each flag by its column path), and ``source``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

from ..errors import RecordError
from ..records import Conversation, Turn
from .base import LoadContext, RecordScope, find_files, merge_consecutive, parquet_rows, prompt_group, require

OPTIONS: dict[str, tuple[Any, Any]] = {
    "sides": (["both", "a", "b"], "both"),
    "language": (str, None),
    "drop_flagged": (bool, False),
    "multi_turn": (["keep", "drop"], "keep"),
    "consecutive_roles": (["merge", "keep"], "merge"),
}

RAW_FILES = ["**/*.parquet", "**/*.jsonl"]

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
TOXIC_CHAT_MODELS = ("roberta-large", "t5-large")
ROLES = ("user", "assistant")

# rows per parquet record batch: the nested structs of one batch become Python objects at once
BATCH_ROWS = 1024


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    files = [p for p in find_files(raw_dir, RAW_FILES, ctx.dataset) if not _hidden(p, raw_dir)]
    if not files:
        raise RecordError(
            "missing_file",
            f"no raw files matching {RAW_FILES} for dataset {ctx.dataset!r} (outside hidden folders)",
            file=raw_dir,
        )
    for path in files:
        ctx.note_file(path, raw_dir)
        rel = _rel(path, raw_dir)
        if path.suffix == ".parquet":
            yield from _load_parquet(path, rel, options, ctx)
        else:
            for rec, obj in ctx.jsonl(path):
                source = {"file": rel, "line": rec.line}
                with rec:
                    _build_row(obj, source, options, ctx, rec)
                yield from rec.take()


# --------------------------------------------------------------------------- readers


def _load_parquet(path: Path, rel: str, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    for row, obj in parquet_rows(path, BATCH_ROWS):
        rec = ctx.record(path, row)
        source = {"file": rel, "row": row}
        with rec:
            try:
                _build_row(obj, source, options, ctx, rec)
            except RecordError as e:
                e.message = f"row {row}: {e.message}"
                raise
        yield from rec.take()


# --------------------------------------------------------------------------- one row


def _build_row(obj: Any, source: dict[str, Any], options: dict[str, Any], ctx: LoadContext, rec: RecordScope) -> None:
    """Check one row and add its conversations to ``rec`` (or count the drops)."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a row must be a JSON object, got {type(obj).__name__}")
    qid = require(obj, "question_id", str)
    if not qid.strip() or "/" in qid:
        raise RecordError("bad_value", f"question_id {qid!r} is empty or contains '/'", field="question_id")
    try:
        row = _check_columns(obj)
    except RecordError as e:
        e.record = e.record or f"{ctx.dataset}/{qid}"
        raise
    row["question_id"] = qid

    # row filters: checked after the columns so that errors do not depend on the options
    if options.get("language") is not None and row["language"] != options["language"]:
        ctx.drop("language")
        return
    if options.get("drop_flagged") and row["flagged"]:
        ctx.drop("flagged")
        return
    if options.get("multi_turn", "keep") == "drop" and row["turn"] > 1:
        ctx.drop("multi_turn")
        return

    sides = ("a", "b") if options.get("sides", "both") == "both" else (options["sides"],)
    # phase 1: check every side before counting anything, so a bad side b leaves no counts from side a
    parsed: list[tuple[str, list[Turn] | str]] = []
    for side in sides:
        try:
            parsed.append((side, parse_side(obj[f"conversation_{side}"], f"conversation_{side}")))
        except RecordError as e:
            e.record = e.record or f"{ctx.dataset}/{qid}/{side}"
            raise
    # phase 2: apply policies and build
    for side, turns in parsed:
        if isinstance(turns, str):
            ctx.drop(turns)
            continue
        turns = merge_consecutive(turns, ctx, options.get("consecutive_roles", "merge"))
        rec.add(
            Conversation(
                id=f"{ctx.dataset}/{qid}/{side}",
                dataset=ctx.dataset,
                turns=tuple(turns),
                meta=_meta(row, side, source),
                group=prompt_group(turns),
            )
        )


def _check_columns(obj: dict) -> dict[str, Any]:
    """Presence and type of every column except the conversations; returns the values meta needs."""
    out: dict[str, Any] = {}
    for key in ("model_a", "model_b", "winner", "judge", "language"):
        out[key] = require(obj, key, str)
    if out["winner"] not in WINNERS:
        raise RecordError("bad_value", f"winner {out['winner']!r} is not one of {', '.join(WINNERS)}", field="winner")
    for key in ("conversation_a", "conversation_b"):
        # null or [] is an empty side (dropped per side later), any other non-list is an error
        require(obj, key, list, allow_none=True)
    out["turn"] = require(obj, "turn", int)
    if out["turn"] < 1:
        raise RecordError("bad_value", f"turn must be at least 1, got {out['turn']}", field="turn")
    out["anony"] = require(obj, "anony", bool)
    tstamp = require(obj, "tstamp", (float, int))
    if not math.isfinite(tstamp):
        raise RecordError("bad_value", f"tstamp must be finite, got {tstamp!r}", field="tstamp")
    out["tstamp"] = float(tstamp)

    moderation = require(obj, "openai_moderation", dict)
    flags = {"openai_moderation.flagged": require(moderation, "flagged", bool, where="openai_moderation.")}
    toxic = require(obj, "toxic_chat_tag", dict)
    for model in TOXIC_CHAT_MODELS:
        tag = require(toxic, model, dict, where="toxic_chat_tag.")
        flags[f"toxic_chat_tag.{model}.flagged"] = require(tag, "flagged", bool, where=f"toxic_chat_tag.{model}.")
    out["moderation"] = flags
    out["flagged"] = any(flags.values())
    return out


def parse_side(messages: list | None, name: str) -> list[Turn] | str:
    """The turns of one side, or the ``dropped`` reason of the empty-side policy."""
    if not messages:
        return "empty_conversation"
    turns: list[Turn] = []
    drop: str | None = None
    for i, m in enumerate(messages):
        where = f"{name}[{i}]."
        role = require(m, "role", str, where=where)
        if role not in ROLES:
            raise RecordError("bad_role", f"role {role!r} is not one of {', '.join(ROLES)}", field=f"{where}role")
        content = require(m, "content", str, where=where, allow_none=True)
        if content is None:
            drop = drop or "null_content"
        elif not content.strip():
            drop = drop or "empty_content"
        else:
            turns.append(Turn(role=role, text=content))
    if drop:
        return drop
    if turns[-1].role != "assistant":
        raise RecordError(
            "last_turn_not_response",
            "the last message must be the assistant's response",
            field=f"{name}[{len(messages) - 1}].role",
        )
    if not any(t.role == "user" for t in turns):
        raise RecordError("no_request", "no user message before the response", field=name)
    return turns


def _meta(row: dict[str, Any], side: str, source: dict[str, Any]) -> dict[str, Any]:
    other = "b" if side == "a" else "a"
    winner = row["winner"]
    won = None if winner.startswith("tie") else winner == f"model_{side}"
    return {
        "question_id": row["question_id"],
        "side": side,
        "model": row[f"model_{side}"],
        "opponent": row[f"model_{other}"],
        "winner": winner,
        "won": won,
        "judge": row["judge"],
        "language": row["language"],
        "turn": row["turn"],
        "anony": row["anony"],
        "tstamp": row["tstamp"],
        "flagged": row["flagged"],
        "moderation": dict(row["moderation"]),
        "source": dict(source),
    }


# --------------------------------------------------------------------------- helpers


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def _hidden(path: Path, root: Path) -> bool:
    """Files under a hidden folder (``.cache/huggingface/…`` of a Hub download) are not data."""
    parts = path.relative_to(root).parts if path.is_relative_to(root) else (path.name,)
    return any(p.startswith(".") for p in parts)
