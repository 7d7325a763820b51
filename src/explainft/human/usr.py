"""USR (Mehri & Eskenazi 2020) ``tc_usr_data.json`` / ``pc_usr_data.json`` -> a rating set.

The files have no stated licence: they are read at run time from the download, never copied into the project.

Raw files (option ``files``, default ``["*_usr_data.json"]``): a JSON list of contexts::

    {"context": str, "fact": str, "annotators"?: [str, ...],
     "responses": [{"response": str, "model": str,
                    "Understandable": [..], "Natural": [..], "Maintains Context": [..],
                    "Engaging": [..], "Uses Knowledge": [..], "Overall": [..]}, ...]}

with one value per annotator (three) in each quality list. One context is one source record; its ``line`` is
the line of the file on which the context's object starts (see :mod:`explainft.human.base`).

Turns: ``context`` is the dialogue's turns joined by ``\\n`` (Topical-Chat's are lower-cased, tokenised and
separated by `` \\n ``): it is split on ``\\n`` and each line stripped; an empty line is dropped
(``policy.empty_context_line``, one per line). Roles are assigned backwards: the last context line is the
``user``'s, the one before it the ``assistant``'s, and so on; the response, text as published, is the ``assistant``'s.
``fact`` (the persona lines of PersonaChat, the knowledge snippet of Topical-Chat) becomes
``Conversation.context``, text as published (null when it is blank).

Qualities and scales (keys snake_case): ``understandable`` 0-1, ``natural`` 1-3, ``maintains_context`` 1-3,
``engaging`` 1-3, ``uses_knowledge`` 0-1, ``overall`` 1-5. A string or null annotator value is not a number:
it is dropped and counted in ``values_skipped[quality]``; a quality left without a numeric value is omitted
for that response (``policy.quality_without_values``, one per quality and response); a response left without
any quality is dropped (``dropped.no_ratings``).

Ids: ``<name>/<k>/<j>``, ``k`` the 0-based index of the context in the files (in sorted file order), ``j`` the
0-based index of the response in its context. Group: ``<name>/p<sha256 of the context lines>``, shared by every
response to one context (and by identical contexts). Meta: ``model``, and ``annotators`` when given.

Errors (RecordError naming file, line (the context's) and field ``responses[j]....``; the whole context is
raised or counted under ``skipped.<reason>``): bytes not UTF-8 inside the context (``bad_encoding``), an item
or response that is not an object, a field of the wrong type (``wrong_type``, also a bool or list annotator
value), a missing field or quality (``missing_field``), a value outside its scale (``out_of_range``), a context
with no non-empty line (``empty_conversation``), an empty response (``empty_response``), an empty
``responses`` list (``empty_conversation``). A file that is not a JSON list is an error for the whole file.
Policy: a key outside the published ones is not read (``policy.unknown_field``, per object).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..datasets.base import LoadContext, require
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
OPTIONS: dict[str, tuple[Any, Any]] = {"files": (list, ["*_usr_data.json"])}
# published name -> (key, scale)
QUALITIES: dict[str, tuple[str, Scale]] = {
    "Understandable": ("understandable", Scale(0, 1)),
    "Natural": ("natural", Scale(1, 3)),
    "Maintains Context": ("maintains_context", Scale(1, 3)),
    "Engaging": ("engaging", Scale(1, 3)),
    "Uses Knowledge": ("uses_knowledge", Scale(0, 1)),
    "Overall": ("overall", Scale(1, 5)),
}
ITEM_FIELDS = ("context", "fact", "annotators", "responses")
RESPONSE_FIELDS = ("response", "model", *QUALITIES)


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching USR file of ``raw_dir`` into the rating set ``name``."""
    ratings: list[RatedResponse] = []
    values_skipped: Counter = Counter()
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        before = ctx.source_records
        for rec, obj in json_list(path, ctx):
            k = ctx.source_records - 1
            counts = RecordCounts(ctx)
            with rec:
                built = parse_item(obj, name, k, counts)
                counts.commit(values_skipped)
                ratings.extend(built)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="usr",
        kind=KIND,
        ratings=ratings,
        qualities={key: scale for key, scale in QUALITIES.values()},
        load=summary(ctx, values_skipped, len(ratings)),
    )


def context_turns(context: str, counts: RecordCounts) -> list[Turn]:
    """The context's lines as turns, roles assigned backwards from a final ``user`` line."""
    lines = []
    for raw in context.split("\n"):
        text = raw.strip()
        if text:
            lines.append(text)
        else:
            counts.scratch.count("empty_context_line")
    if not lines:
        raise RecordError("empty_conversation", "the context has no non-empty line", field="context")
    n = len(lines)
    return [Turn("user" if (n - 1 - i) % 2 == 0 else "assistant", t) for i, t in enumerate(lines)]


def parse_item(obj: Any, name: str, k: int, counts: RecordCounts) -> list[RatedResponse]:
    """One context with its responses -> RatedResponses ``<name>/<k>/<j>``; RecordError names the field."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"an item must be a JSON object, got {type(obj).__name__}")
    context = require(obj, "context", str)
    fact = require(obj, "fact", str)
    annotators = require(obj, "annotators", list, allow_none=True) if "annotators" in obj else None
    if annotators is not None and not all(isinstance(a, str) for a in annotators):
        raise RecordError("wrong_type", "expected a list of strings", field="annotators")
    responses = require(obj, "responses", list)
    if not responses:
        raise RecordError("empty_conversation", "the context has no responses", field="responses")
    count_unknown_fields(obj, ITEM_FIELDS, counts)
    turns = context_turns(context, counts)
    group = group_of(name, [t.text for t in turns])
    out = []
    for j, resp in enumerate(responses):
        where = f"responses[{j}]."
        if not isinstance(resp, dict):
            raise RecordError("wrong_type", f"expected an object, got {type(resp).__name__}", field=f"responses[{j}]")
        text = require(resp, "response", str, where=where)
        model = require(resp, "model", str, where=where)
        if not text.strip():
            raise RecordError("empty_response", "the response is empty", field=f"{where}response")
        count_unknown_fields(resp, RESPONSE_FIELDS, counts)
        qualities = {}
        for published, (key, scale) in QUALITIES.items():
            raw = require(resp, published, list, where=where)
            values = annotator_values(raw, key, scale, f"{where}{published}", counts)
            if values:
                qualities[key] = Annotation(values, scale)
            else:
                counts.scratch.count("quality_without_values")
        if not qualities:
            counts.scratch.drop("no_ratings")
            continue
        meta: dict[str, Any] = {"model": model}
        if annotators is not None:
            meta["annotators"] = list(annotators)
        conv = Conversation(
            id=f"{name}/{k}/{j}",
            dataset=name,
            turns=(*turns, Turn("assistant", text)),
            context=fact if fact.strip() else None,
            meta=meta,
            group=group,
        )
        out.append(RatedResponse(conv, qualities))
    return out
