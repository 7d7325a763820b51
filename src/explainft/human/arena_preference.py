"""LMSYS arena-human-preference-55k (``lmsys/lmsys-arena-human-preference-55k``) -> a preference set.

Raw files (option ``files``, default ``["*.csv", "*.csv.gz", "*.jsonl", "*.jsonl.gz"]``): the published
``train.csv``, or JSON lines with the same columns (as the ``datasets`` library writes them)::

    id, model_a, model_b, prompt, response_a, response_b, winner_model_a, winner_model_b, winner_tie

``prompt``, ``response_a`` and ``response_b`` are JSON-encoded lists of strings, one per turn: turn *k* of the
prompt list pairs with turn *k* of each response list. Conversation ``a`` is user ``prompt[0]``, assistant
``response_a[0]``, user ``prompt[1]``, ... ending with ``response_a[-1]``, the response the vote is about;
``b`` likewise. ``winner_*`` are 0/1 (integers in JSON lines, the strings ``"0"``/``"1"`` in the CSV) with
exactly one 1: ``winner_model_a`` -> ``a``, ``winner_model_b`` -> ``b``, ``winner_tie`` -> ``tie``. A list text
may hold raw line breaks inside its strings (they are read as text, JSON's non-strict mode).

CSV is read with the csv module (fields hold newlines and quotes); a record's ``line`` is the line on which it
starts. A CSV header without one of the nine columns, or a CSV the csv module cannot split (an unterminated
quote), is an error for the whole file (raised whatever ``on_error`` says). CSV and JSON lines of the same rows
give identical sets.

Ids: pair ``<name>/<id>`` (the source's ``id``), sides ``<name>/<id>/a`` and ``.../b``. Group:
``<name>/p<sha256 of the prompt list's strings>``, shared by both sides and by every battle with the same
prompts. Meta of each side: ``model``, ``opponent``, ``side``.

Errors (RecordError naming file, line and field; raised, or counted under ``skipped.<reason>``): bytes not
UTF-8 (``bad_encoding``), bad JSON line (``bad_json``), a CSV record with another number of fields than the
header (``bad_csv``), a missing or null column (``missing_field``), a column of the wrong type
(``wrong_type``: ``id`` must be an integer or a string, the texts strings, a list element a string or null), an
empty ``id`` or one with ``/`` (``bad_value``), a list text that is not JSON (``bad_list``), an empty prompt
list (``empty_conversation``), a null or empty prompt turn (``empty_turn``), a response list shorter or longer
than the prompt list (``turn_mismatch``), winner columns that are not 0/1 with exactly one 1 (``bad_winner``),
an ``id`` used before (``duplicate_id``, naming the first file and line).

Policies (counted): in the real data a model sometimes returned nothing (a JSON ``null`` in a response list).

* a null or empty *final* response on either side: the pair is dropped (``dropped.empty_response``, one per
  pair): there is no response to compare. (In the first 500 published rows: 1 pair.)
* a null or empty *earlier* response: that assistant turn is removed (``policy.empty_turn_removed``, one per
  turn) and the two user turns around it, now consecutive, are joined with a blank line
  (``policy.merged_consecutive_turns``). (In the first 500 rows: 1 turn.)
* a column outside the nine is not read (``policy.unknown_field``, one per column per row).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from ..datasets.base import LoadContext, RecordScope, merge_consecutive, require
from ..errors import RecordError
from ..records import Conversation, Turn
from .base import (
    RecordCounts,
    check_not_empty,
    count_unknown_fields,
    group_of,
    human_files,
    open_bytes,
    rel,
    summary,
    undecodable,
)
from .records import HumanSet, PreferencePair, Scale

KIND = "preferences"
OPTIONS: dict[str, tuple[Any, Any]] = {"files": (list, ["*.csv", "*.csv.gz", "*.jsonl", "*.jsonl.gz"])}
COLUMNS = (
    "id",
    "model_a",
    "model_b",
    "prompt",
    "response_a",
    "response_b",
    "winner_model_a",
    "winner_model_b",
    "winner_tie",
)
WINNER_COLUMNS = {"winner_model_a": "a", "winner_model_b": "b", "winner_tie": "tie"}
QUALITIES = {"preference": Scale(0, 1)}


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching CSV or JSON-lines file of ``raw_dir`` into the preference set ``name``."""
    pairs: list[PreferencePair] = []
    values_skipped: Counter = Counter()
    seen: dict[str, str] = {}
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        before = ctx.source_records
        from_csv = path.name.endswith((".csv", ".csv.gz"))
        rows = csv_rows(path, ctx) if from_csv else ctx.jsonl(path)
        for rec, obj in rows:
            counts = RecordCounts(ctx)
            with rec:
                pair_id, pair = parse_row(obj, name, counts, from_csv)
                if pair_id in seen:
                    raise RecordError("duplicate_id", f"id already used at {seen[pair_id]}", field="id")
                seen[pair_id] = f"{rel(path, raw_dir)}:{rec.line}"
                counts.commit(values_skipped)
                if pair is not None:
                    pairs.append(pair)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="arena_human_preference",
        kind=KIND,
        pairs=pairs,
        qualities=dict(QUALITIES),
        load=summary(ctx, values_skipped, len(pairs)),
    )


def csv_rows(path: Path, ctx: LoadContext) -> Iterator[tuple[RecordScope, dict[str, str]]]:
    """Yield ``(scope, {column: text})`` per CSV record; ``scope.line`` is the record's first line."""
    text = open_bytes(path).decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise RecordError("bad_csv", f"cannot read the CSV header: {e}", file=path, line=1) from None
    if header is None:
        return
    missing = [c for c in COLUMNS if c not in header]
    if missing or len(set(header)) != len(header):
        what = f"column {missing[0]!r} is missing" if missing else "a column name is repeated"
        raise RecordError("missing_field" if missing else "bad_csv", f"CSV header: {what}", file=path, line=1)
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader, None)
        except csv.Error as e:
            raise RecordError("bad_csv", f"cannot split the CSV: {e}", file=path, line=start) from None
        if fields is None:
            return
        if not fields:
            continue
        scope = ctx.record(path, start)
        if len(fields) != len(header):
            ctx.error(
                RecordError("bad_csv", f"{len(fields)} fields, the header has {len(header)}", file=path, line=start)
            )
        elif undecodable(fields):
            ctx.error(RecordError("bad_encoding", "bytes not valid utf-8 in this record", file=path, line=start))
        else:
            yield scope, dict(zip(header, fields))


def parse_row(obj: Any, name: str, counts: RecordCounts, from_csv: bool = False) -> tuple[str, PreferencePair | None]:
    """One row -> ``(pair id, PreferencePair)``, or ``(pair id, None)`` when a policy drops it."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a row must be a JSON object, got {type(obj).__name__}")
    raw_id = require(obj, "id", (int, str))
    sid = str(raw_id)
    if not sid.strip() or "/" in sid:
        raise RecordError("bad_value", f"id {sid!r} is empty or contains '/'", field="id")
    models = {s: require(obj, f"model_{s}", str) for s in ("a", "b")}
    prompts = _turn_list(obj, "prompt")
    responses = {s: _turn_list(obj, f"response_{s}") for s in ("a", "b")}
    winner = _winner(obj, from_csv)
    if not prompts:
        raise RecordError("empty_conversation", "the prompt list is empty", field="prompt")
    for k, p in enumerate(prompts):
        if p is None or not p.strip():
            raise RecordError("empty_turn", f"prompt turn {k} is {'null' if p is None else 'empty'}", field="prompt")
    for s, resp in responses.items():
        if len(resp) != len(prompts):
            raise RecordError(
                "turn_mismatch",
                f"{len(resp)} responses for {len(prompts)} prompt turns",
                field=f"response_{s}",
            )
    count_unknown_fields(obj, COLUMNS, counts)
    pair_id = f"{name}/{sid}"
    if any(r[-1] is None or not r[-1].strip() for r in responses.values()):
        counts.scratch.drop("empty_response")
        return pair_id, None
    group = group_of(name, prompts)  # type: ignore[arg-type]
    sides = {}
    for s, resp in responses.items():
        turns: list[Turn] = []
        for p, r in zip(prompts, resp):
            turns.append(Turn("user", p))  # type: ignore[arg-type]
            if r is None or not r.strip():
                counts.scratch.count("empty_turn_removed")
            else:
                turns.append(Turn("assistant", r))
        turns = merge_consecutive(turns, counts.scratch)
        other = "b" if s == "a" else "a"
        sides[s] = Conversation(
            id=f"{pair_id}/{s}",
            dataset=name,
            turns=tuple(turns),
            group=group,
            meta={"model": models[s], "opponent": models[other], "side": s},
        )
    return pair_id, PreferencePair(id=pair_id, group=group, a=sides["a"], b=sides["b"], winner=winner)


def _turn_list(obj: dict, key: str) -> list[str | None]:
    text = require(obj, key, str)
    try:
        value = json.loads(text, strict=False)  # a line break inside a list's string is text, not an error
    except json.JSONDecodeError as e:
        raise RecordError("bad_list", f"not a JSON list: {e.msg} at column {e.colno}", field=key) from None
    if not isinstance(value, list):
        raise RecordError("wrong_type", f"expected a JSON list of strings, got {type(value).__name__}", field=key)
    for k, v in enumerate(value):
        if v is not None and not isinstance(v, str):
            raise RecordError("wrong_type", f"expected a string or null, got {type(v).__name__}", field=f"{key}[{k}]")
    return value


def _winner(obj: dict, from_csv: bool) -> str:
    ones = []
    for col, winner in WINNER_COLUMNS.items():
        v = require(obj, col, str if from_csv else int)
        flag = {"0": 0, "1": 1}.get(v) if from_csv else v
        if flag not in (0, 1):
            raise RecordError("bad_winner", f"must be 0 or 1, got {v!r}", field=col)
        if flag == 1:
            ones.append(winner)
    if len(ones) != 1:
        raise RecordError(
            "bad_winner",
            f"exactly one of {', '.join(WINNER_COLUMNS)} must be 1, got {len(ones)}",
            field="winner_model_a",
        )
    return ones[0]
