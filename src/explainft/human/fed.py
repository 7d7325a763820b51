"""FED (Mehri & Eskenazi 2020) ``fed_data.json`` -> a rating set of its turn-level annotations.

The file has no stated licence: it is read at run time from the download, never copied into the project.

Raw files (option ``files``, default ``["fed_data.json"]``): a JSON list of 500 items. Turn-level items::

    {"context": "User: Hi!\\nSystem: Hello!\\nUser: ...", "response": "System: ...", "system": "Meena",
     "annotations": {"Interesting": [5 values], "Engaging": [...], ..., "Overall": [...]}}

Dialog-level items (the whole dialogue rated, no ``response``) are not responses to rate: each is dropped and
counted (``dropped.dialog_level``). One item is one source record; its ``line`` is the line of the file on
which the item's object starts (see :mod:`explainft.human.base`).

Turns: ``context`` is split on ``\\n``; each line starts with ``User:`` (role ``user``) or ``System:`` (role
``assistant``), and the prefix and one following space are removed. A line with neither prefix is an error
(``bad_speaker``); a blank line is dropped (``policy.empty_context_line``), and so is a line whose text after
the prefix is blank (``policy.empty_turn_removed``). Two consecutive context lines of one speaker are joined with
a blank line (``policy.merged_consecutive_turns``). The context must hold a User line (``no_request``). The
response is the system's: a leading ``System:`` is removed (a leading ``User:`` is ``bad_speaker``) and the text
is the final ``assistant`` turn. When the context itself ends with a System line, the rated response follows a
system turn: the response stays its own final turn (it is what the annotators rated, so it is never merged into
the line before it) after that assistant turn, and the item counts ``policy.response_after_system_turn``.

Qualities and scales (turn level; keys snake_case): ``interesting``, ``engaging``, ``specific``, ``relevant``,
``correct``, ``semantically_appropriate``, ``fluent`` 0-2, ``understandable`` 0-1, ``overall`` 0-4. Some
annotator values are strings (``"N/A (...)"``): they are never parsed as numbers but dropped and counted in
``values_skipped[quality]`` (so is a null); a quality left without a numeric value is omitted for that response
(``policy.quality_without_values``), and a response left with none is dropped (``dropped.no_ratings``). A quality
name outside these nine is ignored (``policy.unknown_quality``, one per name and item).

Ids: ``<name>/<k>``, ``k`` the 0-based index of the item in the files (dialog-level items included, so ids do not
depend on what was dropped). Group: ``<name>/p<sha256 of the context turns (role and text)>``, shared by every
response to the same context. Meta: ``system``.

Errors (RecordError naming file, line and field; raised, or counted under ``skipped.<reason>``): bytes not UTF-8
in the item (``bad_encoding``), an item that is not an object or a field of the wrong type (``wrong_type``, also
a bool or list annotator value), a missing field or quality (``missing_field``), a value outside its scale
(``out_of_range``), ``bad_speaker``, ``no_request``, an empty response (``empty_response``). A file that is not a
JSON list is an error for the whole file. Policy: another key of an item is not read (``policy.unknown_field``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..datasets.base import LoadContext, merge_consecutive, require
from ..errors import RecordError
from ..records import Conversation, Turn
from .base import (
    RecordCounts,
    annotator_values,
    check_not_empty,
    count_unknown_fields,
    group_of,
    human_files,
    json_list,
    summary,
)
from .records import Annotation, HumanSet, RatedResponse, Scale

KIND = "ratings"
OPTIONS: dict[str, tuple[Any, Any]] = {"files": (list, ["fed_data.json"])}
_SCALE2 = Scale(0, 2)
# published name -> (key, scale)
QUALITIES: dict[str, tuple[str, Scale]] = {
    "Interesting": ("interesting", _SCALE2),
    "Engaging": ("engaging", _SCALE2),
    "Specific": ("specific", _SCALE2),
    "Relevant": ("relevant", _SCALE2),
    "Correct": ("correct", _SCALE2),
    "Semantically appropriate": ("semantically_appropriate", _SCALE2),
    "Understandable": ("understandable", Scale(0, 1)),
    "Fluent": ("fluent", _SCALE2),
    "Overall": ("overall", Scale(0, 4)),
}
ITEM_FIELDS = ("context", "response", "system", "annotations")
SPEAKER = re.compile(r"(User|System): ?")
ROLE = {"User": "user", "System": "assistant"}


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching FED file of ``raw_dir`` into the rating set ``name`` (turn-level items)."""
    ratings: list[RatedResponse] = []
    values_skipped: Counter = Counter()
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        before = ctx.source_records
        for rec, obj in json_list(path, ctx):
            k = ctx.source_records - 1
            counts = RecordCounts(ctx)
            with rec:
                rated = parse_item(obj, name, k, counts)
                counts.commit(values_skipped)
                if rated is not None:
                    ratings.append(rated)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="fed",
        kind=KIND,
        ratings=ratings,
        qualities={key: scale for key, scale in QUALITIES.values()},
        load=summary(ctx, values_skipped, len(ratings)),
    )


def context_turns(context: str, counts: RecordCounts) -> list[Turn]:
    """The ``User:``/``System:`` lines of a FED context as turns (before merging)."""
    turns = []
    for i, raw in enumerate(context.split("\n")):
        line = raw.rstrip("\r")
        if not line.strip():
            counts.scratch.count("empty_context_line")
            continue
        m = SPEAKER.match(line)
        if m is None:
            raise RecordError(
                "bad_speaker",
                f"context line {i} starts with neither 'User:' nor 'System:': {line[:40]!r}",
                field="context",
            )
        text = line[m.end() :]
        if not text.strip():
            counts.scratch.count("empty_turn_removed")
            continue
        turns.append(Turn(ROLE[m.group(1)], text))
    return turns


def parse_item(obj: Any, name: str, k: int, counts: RecordCounts) -> RatedResponse | None:
    """One FED item -> RatedResponse ``<name>/<k>``, or None for a dialog-level item (or no numeric rating)."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"an item must be a JSON object, got {type(obj).__name__}")
    if "response" not in obj:
        counts.scratch.drop("dialog_level")
        return None
    context = require(obj, "context", str)
    response = require(obj, "response", str)
    system = require(obj, "system", str)
    annotations = require(obj, "annotations", dict)
    count_unknown_fields(obj, ITEM_FIELDS, counts)

    turns = context_turns(context, counts)
    if not any(t.role == "user" for t in turns):
        raise RecordError("no_request", "the context has no 'User:' line", field="context")
    m = SPEAKER.match(response)
    if m is not None and m.group(1) == "User":
        raise RecordError("bad_speaker", "the response is a 'User:' line, not the system's", field="response")
    text = response[m.end() :] if m is not None else response
    if not text.strip():
        raise RecordError("empty_response", "the response is empty", field="response")

    qualities = {}
    for published, (key, scale) in QUALITIES.items():
        if published not in annotations:
            raise RecordError("missing_field", "required quality is missing", field=f"annotations.{published}")
        values = annotator_values(annotations[published], key, scale, f"annotations.{published}", counts)
        if values:
            qualities[key] = Annotation(values, scale)
        else:
            counts.scratch.count("quality_without_values")
    unknown = set(annotations) - set(QUALITIES)
    if unknown:
        counts.scratch.count("unknown_quality", len(unknown))

    turns = merge_consecutive(turns, counts.scratch)
    if turns[-1].role == "assistant":
        counts.scratch.count("response_after_system_turn")
    if not qualities:
        counts.scratch.drop("no_ratings")
        return None
    return RatedResponse(
        Conversation(
            id=f"{name}/{k}",
            dataset=name,
            turns=(*turns, Turn("assistant", text)),
            meta={"system": system},
            group=group_of(name, [f"{t.role}\x1e{t.text}" for t in turns]),
        ),
        qualities,
    )
