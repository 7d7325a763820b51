"""CoQA (Reddy, Chen, Manning, TACL 2019): the original JSON or the Hub parquet, story as context.

Two published formats are read; a raw folder normally holds one of them
(both together would give every story twice, under different ids).

Original JSON, ``coqa-<split>-v1.0.json`` (``train``, ``dev``)
    One document ``{"version", "data": [story, ...]}``. A story has
    ``source`` (mctest, wikipedia, cnn, gutenberg, race), ``id``, ``story``,
    ``questions`` = [{input_text, turn_id}], ``answers`` = [{span_start,
    span_end, span_text, input_text, turn_id}] (``span_start`` may be -1),
    ``filename`` and ``name`` (read when present), and in dev
    ``additional_answers`` = {"0"|"1"|"2": [answer, ...]}. The file is one
    document, so the "line" of an error is the story's index in ``data``
    (``RecordError.line``; the message says ``story N``) and provenance is
    ``meta.source = {file, story}``. A file that is not valid UTF-8 or not
    valid JSON, or has no ``data`` list, is broken as a whole: that error
    (``bad_encoding``, ``bad_json``, ``missing_field``/``wrong_type``) is
    raised whatever ``on_error`` says, like a corrupt gzip stream.

Hub parquet of ``stanfordnlp/coqa`` (``**/*.parquet``, e.g.
``data/validation-00000-of-00001.parquet``)
    Columns ``source``, ``story``, ``questions`` (list[str]) and ``answers`` =
    {input_text: list[str], answer_start: list[int32], answer_end:
    list[int32]}, parallel lists aligned by position (turn k is index k-1).
    Rows are streamed in batches. There is no story id: the id is the file
    stem and the row index; provenance is ``meta.source = {file, row}`` and an
    error's line is the row index (message ``row N``).

Both formats give ``meta.story_sha256`` (SHA-256 of the story text), so the
same story can be matched across formats. The group is ``coqa-story:`` and
the first 16 hex digits of it: every item of a story (``items: prefixes``)
and a story published twice stay on one side of the split.

Turns: ``[user: q1, assistant: a1, user: q2, assistant: a2, ...]``;
``context`` = the story. Text is kept as published.

Checks (record errors, naming the field)
    Question ``k`` (0-based) must have ``turn_id`` k+1: a repeat is
    ``duplicate_turn_id``, anything else ``turn_id_gap``. Answers are matched
    to questions by ``turn_id``: an answer repeating a turn is
    ``duplicate_turn_id``, an answer for a turn with no question
    ``turn_mismatch``, a question with no answer ``missing_answer``. In the
    parquet format the parallel lists must have the same length
    (``turn_mismatch``). A blank question or answer is ``empty_turn``, an
    empty story ``bad_value``, a story with no questions
    ``empty_conversation``.

Options
    ``items`` (``final`` | ``prefixes``, default ``final``)
        ``final``: one conversation per story, rating the last answer with the
        whole history. ``prefixes``: one per answer, the conversation ending at
        that answer; id suffix ``/t<turn_id>``.
    ``max_turns`` (int >= 1 or null, default null)
        Keep at most the last N question/answer pairs, the rated pair
        included (``1`` = the rated question and answer alone). The story is
        kept whole as context. ``policy.truncated_history`` counts the
        conversations cut.
    ``splits`` (list or null, default null = all)
        The splits to read. The split is taken from the file name:
        ``coqa-<split>-v1.0.json``, ``<split>-00000-of-00001.parquet``, or the
        parent folder for ``<split>/0000.parquet``. The JSON dev split is
        ``dev``, the Hub's is ``validation``. A listed split with no file is
        an error.

Policies
    ``policy.unknown_answer`` counts the conversations whose rated answer is
    "unknown" (case and a final full stop ignored): CoQA's unanswerable
    questions, kept as they are.

Ids: ``coqa/<story id>`` (JSON) or ``coqa/<file stem>/<row>`` (parquet; the
stem gets its split in front when it does not contain it, as in
``validation/0000.parquet`` -> ``coqa/validation-0000/<row>``), plus
``/t<turn_id>`` with ``items: prefixes``.

Meta: ``story_id``, ``filename``, ``name`` (JSON only), ``domain`` (the CoQA
``source`` field: ``meta.source`` is provenance, as in every loader),
``story_sha256``, ``n_turns`` (question/answer pairs in the story), ``turn``
(the rated answer's turn_id), ``split``, ``n_additional_answers`` (the number
of additional answer sets, dev JSON only) and ``source``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError, RecordError
from ..records import Conversation, Turn
from .base import LoadContext, find_files, require

JSON_FILES = "**/coqa-*-v1.0.json"
PARQUET_FILES = "**/*.parquet"
RAW_FILES = [JSON_FILES, PARQUET_FILES]

OPTIONS = {
    "items": (["final", "prefixes"], "final"),
    "max_turns": (int, None),
    "splits": (list, None),
}

PARQUET_COLUMNS = ["source", "story", "questions", "answers"]
BATCH_ROWS = 256

_JSON_NAME = re.compile(r"^coqa-(?P<split>.+)-v1\.0\.json$")
_SHARD = re.compile(r"^(?P<split>[^-]+)-\d+-of-\d+$")


# --------------------------------------------------------------------------- files


def split_of(path: Path) -> str:
    """The split named by a raw file's name (see the module docstring)."""
    m = _JSON_NAME.match(path.name)
    if m:
        return m["split"]
    stem = path.stem
    m = _SHARD.match(stem)
    if m:
        return m["split"]
    if stem.startswith("coqa-"):  # the Hub's default/coqa-train.parquet
        return stem[len("coqa-") :]
    if stem.isdigit():  # refs/convert/parquet: <split>/0000.parquet
        return path.parent.name
    return stem


def _check_options(dataset: str, options: dict[str, Any]) -> None:
    max_turns = options["max_turns"]
    if max_turns is not None and max_turns < 1:
        raise ConfigError(f"sources.{dataset}.options.max_turns", f"must be >= 1 or null, got {max_turns!r}")
    splits = options["splits"]
    if splits is not None:
        key = f"sources.{dataset}.options.splits"
        if not splits or any(not isinstance(s, str) or not s for s in splits):
            raise ConfigError(key, f"must be null (all) or a non-empty list of split names, got {splits!r}")


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    _check_options(ctx.dataset, options)
    files = [(p, split_of(p)) for p in find_files(raw_dir, RAW_FILES, ctx.dataset)]
    splits = options["splits"]
    if splits is not None:
        found = {s for _, s in files}
        for s in splits:
            if s not in found:
                raise RecordError(
                    "missing_file",
                    f"no file for split {s!r} (found splits: "
                    f"{', '.join(sorted(found))}); set sources.{ctx.dataset}.options.splits",
                    file=raw_dir,
                )
        files = [(p, s) for p, s in files if s in splits]
    for path, split in files:
        ctx.note_file(path, raw_dir)
        rel = str(path.relative_to(raw_dir))
        if path.suffix == ".parquet":
            yield from _load_parquet(path, rel, split, options, ctx)
        else:
            yield from _load_json(path, rel, split, options, ctx)


# --------------------------------------------------------------------------- original JSON


def _read_json_document(path: Path) -> list:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError("bad_encoding", f"file is not valid UTF-8 at byte {e.start}", file=path) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(
            "bad_json", f"invalid JSON document: {e.msg} (line {e.lineno}, column {e.colno})", file=path
        ) from None
    try:
        return require(doc, "data", list)
    except RecordError as e:
        raise e.at(path)


def _load_json(path: Path, rel: str, split: str, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    for index, story in enumerate(_read_json_document(path)):
        with ctx.record(path, index) as rec:
            try:
                parsed = _parse_json_story(story)
            except RecordError as e:
                if isinstance(story, dict) and isinstance(story.get("id"), str):
                    e.record = e.record or story["id"]
                e.message = f"story {index}: {e.message}"
                raise
            meta = {"story_id": parsed["id"], "domain": parsed["source"], "split": split}
            for key in ("filename", "name"):
                if parsed[key] is not None:
                    meta[key] = parsed[key]
            if parsed["additional"] is not None:
                meta["n_additional_answers"] = len(parsed["additional"])
            meta["source"] = {"file": rel, "story": index}
            for conv in _conversations(
                f"{ctx.dataset}/{parsed['id']}", parsed["story"], parsed["pairs"], meta, options, ctx
            ):
                rec.add(conv)
        yield from rec.take()


def _parse_json_story(story: Any) -> dict[str, Any]:
    if not isinstance(story, dict):
        raise RecordError("wrong_type", f"a story must be an object, got {type(story).__name__}")
    sid = require(story, "id", str)
    source = require(story, "source", str)
    text = _story_text(require(story, "story", str))
    filename = require(story, "filename", str) if "filename" in story else None
    name = require(story, "name", str) if "name" in story else None
    questions = require(story, "questions", list)
    answers = require(story, "answers", list)
    additional = require(story, "additional_answers", dict) if "additional_answers" in story else None

    q_texts: list[str] = []
    for k, q in enumerate(questions):
        where = f"questions[{k}]."
        if not isinstance(q, dict):
            raise RecordError("wrong_type", f"expected an object, got {type(q).__name__}", field=f"questions[{k}]")
        q_texts.append(_text(q, "input_text", where))
        tid = require(q, "turn_id", int, where=where)
        if tid != k + 1:
            if 1 <= tid <= k:
                raise RecordError(
                    "duplicate_turn_id", f"turn_id {tid} is also questions[{tid - 1}]", field=f"{where}turn_id"
                )
            raise RecordError(
                "turn_id_gap", f"expected turn_id {k + 1} (turns run 1, 2, ...), got {tid}", field=f"{where}turn_id"
            )
    if not q_texts:
        raise RecordError("empty_conversation", "story has no questions", field="questions")

    by_turn: dict[int, tuple[int, str]] = {}
    for j, a in enumerate(answers):
        where = f"answers[{j}]."
        if not isinstance(a, dict):
            raise RecordError("wrong_type", f"expected an object, got {type(a).__name__}", field=f"answers[{j}]")
        a_text = _text(a, "input_text", where)
        tid = require(a, "turn_id", int, where=where)
        require(a, "span_start", int, where=where)
        require(a, "span_end", int, where=where)
        require(a, "span_text", str, where=where)
        if tid in by_turn:
            raise RecordError(
                "duplicate_turn_id", f"turn_id {tid} is also answers[{by_turn[tid][0]}]", field=f"{where}turn_id"
            )
        if not 1 <= tid <= len(q_texts):
            raise RecordError(
                "turn_mismatch", f"no question has turn_id {tid} ({len(q_texts)} questions)", field=f"{where}turn_id"
            )
        by_turn[tid] = (j, a_text)
    for t in range(1, len(q_texts) + 1):
        if t not in by_turn:
            raise RecordError(
                "missing_answer",
                f"no answer with turn_id {t} ({len(q_texts)} questions, {len(answers)} answers)",
                field="answers",
            )
    if additional is not None:
        for key, value in additional.items():
            if not isinstance(value, list):
                raise RecordError(
                    "wrong_type", f"expected a list, got {type(value).__name__}", field=f"additional_answers.{key}"
                )
    pairs = [(q, by_turn[t + 1][1]) for t, q in enumerate(q_texts)]
    return {
        "id": sid,
        "source": source,
        "story": text,
        "filename": filename,
        "name": name,
        "pairs": pairs,
        "additional": additional,
    }


def _text(obj: dict, key: str, where: str) -> str:
    """A question or answer text: a non-blank string (blank is ``empty_turn``, naming the source field)."""
    text = require(obj, key, str, where=where)
    if not text.strip():
        raise RecordError("empty_turn", "text is empty", field=f"{where}{key}")
    return text


def _story_text(text: str) -> str:
    if not text.strip():
        raise RecordError("bad_value", "story is empty", field="story")
    return text


# --------------------------------------------------------------------------- Hub parquet


def _load_parquet(
    path: Path, rel: str, split: str, options: dict[str, Any], ctx: LoadContext
) -> Iterator[Conversation]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise RecordError("bad_file", f"cannot read parquet file: {e}", file=path) from e
    missing = [c for c in PARQUET_COLUMNS if c not in pf.schema_arrow.names]
    if missing:
        raise RecordError(
            "missing_field",
            f"parquet file lacks column(s) {', '.join(missing)}; expected the stanfordnlp/coqa schema",
            file=path,
            field=missing[0],
        )
    stem = path.stem if split in path.stem else f"{split}-{path.stem}"
    row = 0
    try:
        batches = pf.iter_batches(batch_size=BATCH_ROWS, columns=PARQUET_COLUMNS)
        for batch in batches:
            for obj in batch.to_pylist():
                with ctx.record(path, row) as rec:
                    try:
                        source, text, pairs = _parse_parquet_row(obj)
                    except RecordError as e:
                        e.message = f"row {row}: {e.message}"
                        raise
                    meta = {"domain": source, "split": split, "source": {"file": rel, "row": row}}
                    for conv in _conversations(f"{ctx.dataset}/{stem}/{row}", text, pairs, meta, options, ctx):
                        rec.add(conv)
                yield from rec.take()
                row += 1
    except pa.ArrowException as e:
        raise RecordError("bad_file", f"cannot read parquet file after row {row}: {e}", file=path) from e


def _str_list(obj: dict, key: str, where: str = "") -> list[str]:
    """A list of non-blank strings (questions or answer texts)."""
    values = require(obj, key, list, where=where)
    for k, v in enumerate(values):
        if not isinstance(v, str):
            raise RecordError("wrong_type", f"expected str, got {type(v).__name__}", field=f"{where}{key}[{k}]")
        if not v.strip():
            raise RecordError("empty_turn", "text is empty", field=f"{where}{key}[{k}]")
    return values


def _parse_parquet_row(obj: dict) -> tuple[str, str, list[tuple[str, str]]]:
    source = require(obj, "source", str)
    text = _story_text(require(obj, "story", str))
    questions = _str_list(obj, "questions")
    answers = require(obj, "answers", dict)
    a_texts = _str_list(answers, "input_text", "answers.")
    for key in ("answer_start", "answer_end"):
        values = require(answers, key, list, where="answers.")
        for k, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, int):
                raise RecordError("wrong_type", f"expected int, got {type(v).__name__}", field=f"answers.{key}[{k}]")
        if len(values) != len(a_texts):
            raise RecordError(
                "turn_mismatch", f"{len(values)} values for {len(a_texts)} answers", field=f"answers.{key}"
            )
    if len(a_texts) != len(questions):
        raise RecordError(
            "turn_mismatch" if a_texts else "missing_answer",
            f"{len(a_texts)} answers for {len(questions)} questions",
            field="answers.input_text",
        )
    if not questions:
        raise RecordError("empty_conversation", "story has no questions", field="questions")
    return source, text, list(zip(questions, a_texts))


# --------------------------------------------------------------------------- shared


def _is_unknown(answer: str) -> bool:
    return answer.strip().rstrip(".").strip().lower() == "unknown"


def _conversations(
    base_id: str,
    story: str,
    pairs: list[tuple[str, str]],
    meta: dict[str, Any],
    options: dict[str, Any],
    ctx: LoadContext,
) -> list[Conversation]:
    """One conversation (``final``) or one per answer (``prefixes``) from a story's aligned pairs."""
    meta = {**meta, "story_sha256": hashlib.sha256(story.encode("utf-8")).hexdigest(), "n_turns": len(pairs)}
    ends = range(1, len(pairs) + 1) if options["items"] == "prefixes" else [len(pairs)]
    max_turns = options["max_turns"]
    out = []
    truncated = 0
    for end in ends:
        start = 0
        if max_turns is not None and end > max_turns:
            start = end - max_turns
            truncated += 1
        turns = []
        for q, a in pairs[start:end]:
            turns += [Turn("user", q), Turn("assistant", a)]
        out.append(
            Conversation(
                id=base_id if options["items"] == "final" else f"{base_id}/t{end}",
                dataset=ctx.dataset,
                turns=tuple(turns),
                group=f"coqa-story:{meta['story_sha256'][:16]}",
                context=story,
                meta={**meta, "turn": end},
            )
        )
    # counted once every conversation of the story is valid: a story that fails counts nothing
    if truncated:
        ctx.count("truncated_history", truncated)
    unknown = sum(1 for c in out if _is_unknown(c.response.text))
    if unknown:
        ctx.count("unknown_answer", unknown)
    return out
