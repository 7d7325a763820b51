"""NVIDIA HelpSteer (``nvidia/HelpSteer``) JSON lines -> a rating set.

Raw files: JSON lines, optionally gzipped (option ``files``, default ``["*.jsonl", "*.jsonl.gz"]``), one
response per line::

    {"prompt": str, "response": str, "helpfulness": 0-4, "correctness": 0-4, "coherence": 0-4,
     "complexity": 0-4, "verbosity": 0-4}

Each line is one :class:`~explainft.human.records.RatedResponse` with one user turn (the whole prompt, any
``Extra:`` or ``Reference:`` context inside it included, text as published) and one assistant turn (the
response). The five attributes are integers on the scale 0-4, one annotation value each (HelpSteer publishes
one aggregated value per attribute); all five are always present in the set's ``qualities``.

Ids: ``<name>/<n>``, ``n`` the 0-based index of the line among the non-blank lines of the files in sorted
file order (the row index of the Hub dataset for its single train file); a bad line keeps its index, so ids
do not depend on what was skipped. Group: ``<name>/p<sha256(prompt)[:12]>``, shared by every response to the
same prompt (3-4 consecutive rows in the published data).

Errors (RecordError naming file, line and field; raised, or counted under ``skipped.<reason>`` with
``on_error: skip``): bytes not UTF-8 (``bad_encoding``), bad JSON (``bad_json``), a line that is not an
object or a field of the wrong type (``wrong_type``; an attribute that is a bool or a float such as ``3.0``
is ``wrong_type`` too), a missing or null field (``missing_field``), an attribute outside 0-4
(``out_of_range``), an empty prompt (``empty_turn``) or response (``empty_response``). Policy: a key
outside the seven published ones is not read and is counted as ``policy.unknown_field``. Nothing else is
skipped, dropped or changed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..datasets.base import LoadContext, require
from ..errors import RecordError
from ..records import Conversation, Turn
from .base import RecordCounts, check_not_empty, count_unknown_fields, group_of, human_files, summary
from .records import Annotation, HumanSet, RatedResponse, Scale

KIND = "ratings"
OPTIONS: dict[str, tuple[Any, Any]] = {"files": (list, ["*.jsonl", "*.jsonl.gz"])}
ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
SCALE = Scale(0, 4)
FIELDS = ("prompt", "response", *ATTRIBUTES)


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching file of ``raw_dir`` into the HelpSteer rating set ``name``."""
    ratings: list[RatedResponse] = []
    values_skipped: Counter = Counter()
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        before = ctx.source_records
        for rec, obj in ctx.jsonl(path):
            n = ctx.source_records - 1
            counts = RecordCounts(ctx)
            with rec:
                rated = parse_row(obj, name, n, counts)
                counts.commit(values_skipped)
                ratings.append(rated)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="helpsteer",
        kind=KIND,
        ratings=ratings,
        qualities=dict.fromkeys(ATTRIBUTES, SCALE),
        load=summary(ctx, values_skipped, len(ratings)),
    )


def parse_row(obj: Any, name: str, n: int, counts: RecordCounts) -> RatedResponse:
    """One parsed HelpSteer line -> RatedResponse ``<name>/<n>``; RecordError names the field."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a line must be a JSON object, got {type(obj).__name__}")
    prompt = require(obj, "prompt", str)
    response = require(obj, "response", str)
    if not prompt.strip():
        raise RecordError("empty_turn", "the prompt is empty", field="prompt")
    if not response.strip():
        raise RecordError("empty_response", "the response is empty", field="response")
    qualities = {}
    for attr in ATTRIBUTES:
        v = require(obj, attr, int)
        if not SCALE.contains(v):
            raise RecordError("out_of_range", f"{v} is outside 0..4", field=attr)
        qualities[attr] = Annotation((float(v),), SCALE)
    count_unknown_fields(obj, FIELDS, counts)
    conv = Conversation(
        id=f"{name}/{n}",
        dataset=name,
        turns=(Turn("user", prompt), Turn("assistant", response)),
        group=group_of(name, [prompt]),
    )
    return RatedResponse(conv, qualities)
