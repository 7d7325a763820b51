"""Cornell Movie-Dialogs Corpus (Danescu-Niculescu-Mizil & Lee 2011), from the original text files.

Source: ``cornell_movie_dialogs_corpus.zip`` from
https://www.cs.cornell.edu/~cristian/data/; the download stage extracts its
folder ``cornell movie-dialogs corpus/`` into the raw folder. The files are
found at any depth (``RAW_FILES``); each must occur exactly once.

Format (all four files): one record per line, fields separated by
``" +++$+++ "`` *with* the spaces, ISO-8859-1 (Latin-1) bytes.

* ``movie_lines.txt``: lineID, characterID, movieID, character name, text.
  Lines are stored in reverse order within a movie; file order does not
  matter here, each conversation's list gives the chronology. The text may
  be empty (the line then ends in ``" +++$+++ "``; a copy whose trailing
  whitespace was stripped, ending in ``" +++$+++"``, is read the same way).
  The text is the last field, so it is split off with ``maxsplit`` and may
  itself contain the separator.
* ``movie_conversations.txt``: characterID1, characterID2, movieID, and a
  Python-literal list of lineIDs in chronological order
  (``['L194', 'L195']``), parsed with :func:`ast.literal_eval`.
* ``movie_titles_metadata.txt`` (optional): movieID, title, year (a string,
  may be ``"1989/I"``), IMDB rating, IMDB votes, genres (a list literal).
* ``movie_characters_metadata.txt`` (optional): characterID, name, movieID,
  title, gender (``m``/``f``/``?``), credit position (a number or ``?``).

The Hugging Face loading script (``cornell_movie_dialog.py``) splits on
``"+++$+++"`` without the spaces, so its values keep surrounding whitespace
(and its ``utterance.text`` holds line ids, not text); this loader reads the
raw files and splits on the full separator.

One Conversation per line of ``movie_conversations.txt``:

* id ``cornell_movie_dialogs/<movieID>/<first lineID of the list>``; a
  repeated id is a record error (``duplicate_id``).
* The group is the conversation's id: the loader makes one item per movie
  conversation, and two conversations share no line.
* Each line is stripped. An empty line is dropped (``empty_lines: drop``,
  counted in ``policy.dropped_empty_lines``) or is a record error
  (``empty_lines: error``, reason ``empty_line``).
* Roles: the two characters alternate. The character who speaks the **last**
  (remaining) line is ``assistant`` (the response to rate), the other
  ``user``. This is a documented choice; the other reading,
  first speaker = user, is possible, but an odd-length conversation would then end on a
  user turn. An odd-length conversation therefore starts with an assistant
  turn. The character name is kept in ``Turn.speaker``.
* Consecutive lines by one character (which also arise when an empty line
  between them is dropped) are merged into one turn, joined by a blank line
  (``consecutive_roles: merge``, ``policy.merged_consecutive_turns``) or kept
  as separate turns (``keep``, ``policy.kept_consecutive_turns``).
* After these policies a conversation needs at least ``min_lines`` turns
  (default 2, at least 2) and a user turn before the response; otherwise it
  is dropped (``dropped.too_short``). ``min_lines`` counts turns after the
  policies, i.e. what the rater sees.
* meta: ``movie_id``, ``line_ids`` (the full list from the file),
  ``characters`` ([characterID1, characterID2]), ``source`` (file and line
  in ``movie_conversations.txt``); when the titles file has the movie:
  ``title``, ``year`` (string), ``imdb_rating`` (float), ``imdb_votes``
  (int), ``genres`` (list); when the characters file has a character:
  ``character_meta[<characterID>] = {name, gender, credit_position}`` with
  gender lower-cased and ``"?"`` as null, credit position an int or null.

Record errors (raised, or skipped and counted by ``data.on_error``), each
naming its file and line:

* any file: a line with the wrong number of fields (``wrong_field_count``),
  an empty id field (``missing_field``), a repeated key
  (``duplicate_line_id`` / ``duplicate_movie_id`` /
  ``duplicate_character_id``), bytes invalid in ``encoding``
  (``bad_encoding``; e.g. the Latin-1 originals read with ``utf-8``);
* metadata: a rating, vote count, genre list or credit position that does
  not parse (``bad_value`` / ``bad_literal`` / ``wrong_type``, naming the
  field);
* conversations: a lineID list that is not a non-empty list of non-empty,
  distinct strings (field ``utteranceIDs``: ``bad_literal``, ``wrong_type``,
  ``empty_conversation``, ``repeated_line_id``); a lineID absent from
  ``movie_lines.txt`` (``unknown_line``); a line spoken by a character who
  is neither characterID1 nor characterID2 (field ``characterID``,
  ``speaker_not_in_pair``); a line of another movie (field ``movieID``,
  ``movie_mismatch``).

With ``on_error: skip`` a malformed line of ``movie_lines.txt`` is skipped,
so every conversation that uses it then fails with ``unknown_line`` (counted
as well); a malformed metadata line leaves its movie or character without
metadata. ``source_records`` counts the lines of ``movie_conversations.txt``
(plus, as everywhere, any undecodable line).

Options: ``encoding`` (``iso-8859-1``; ``utf-8`` for a re-encoded copy),
``empty_lines`` (``drop`` | ``error``), ``consecutive_roles`` (``merge`` |
``keep``), ``min_lines`` (2).
"""

from __future__ import annotations

import ast
import codecs
import sys
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from ..errors import ConfigError, RecordError
from ..records import Conversation, Turn
from .base import LoadContext, find_files, merge_consecutive

SEP = " +++$+++ "

LINES = "movie_lines.txt"
CONVERSATIONS = "movie_conversations.txt"
TITLES = "movie_titles_metadata.txt"
CHARACTERS = "movie_characters_metadata.txt"

RAW_FILES = [f"**/{LINES}", f"**/{CONVERSATIONS}", f"**/{TITLES}", f"**/{CHARACTERS}"]

OPTIONS = {
    "encoding": (str, "iso-8859-1"),
    "empty_lines": (["drop", "error"], "drop"),
    "consecutive_roles": (["merge", "keep"], "merge"),
    "min_lines": (int, 2),
}


class _Line(NamedTuple):
    character: str
    movie: str
    name: str
    text: str  # stripped
    lineno: int  # in movie_lines.txt


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    """Check options and locate the files now; read them lazily in the returned iterator."""
    encoding = options["encoding"]
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"sources.{ctx.dataset}.options.encoding", f"unknown encoding {encoding!r}") from None
    if options["min_lines"] < 2:
        raise ConfigError(f"sources.{ctx.dataset}.options.min_lines", "must be at least 2 (a request and a response)")
    paths = {
        name: _one_file(raw_dir, name, ctx, required=name in (LINES, CONVERSATIONS))
        for name in (LINES, CONVERSATIONS, TITLES, CHARACTERS)
    }
    return _conversations(raw_dir, paths, options, ctx)


def _one_file(raw_dir: Path, name: str, ctx: LoadContext, *, required: bool) -> Path | None:
    if required:
        found = find_files(raw_dir, [f"**/{name}"], ctx.dataset)
    else:
        found = sorted(p for p in raw_dir.glob(f"**/{name}") if p.is_file())
    if len(found) > 1:
        raise RecordError(
            "ambiguous_file",
            f"{name} occurs {len(found)} times: "
            + ", ".join(str(p.relative_to(raw_dir)) for p in found)
            + "; keep one copy",
            file=raw_dir,
        )
    return found[0] if found else None


def _fields(text: str, n: int, *, last_free: bool = False) -> list[str]:
    """Split one record into exactly ``n`` fields; ``last_free``: the last field may contain the separator."""
    parts = text.split(SEP, n - 1) if last_free else text.split(SEP)
    if last_free and len(parts) == n - 1 and parts[-1].endswith(SEP.rstrip()):
        # an empty last field whose trailing space was stripped by some copy
        parts[-1:] = [parts[-1][: -len(SEP.rstrip())], ""]
    if len(parts) != n:
        raise RecordError("wrong_field_count", f"expected {n} fields separated by {SEP!r}, got {len(parts)}")
    return parts


def _key(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise RecordError("missing_field", "required field is empty", field=field)
    return sys.intern(value)


def _read_lines(path: Path, encoding: str, ctx: LoadContext) -> dict[str, _Line]:
    lines: dict[str, _Line] = {}
    for lineno, text in ctx.text_lines(path, encoding):
        with ctx.record(path, lineno, count=False):
            lid, cid, mid, name, body = _fields(text, 5, last_free=True)
            lid = _key(lid, "lineID")
            if lid in lines:
                raise RecordError(
                    "duplicate_line_id", f"line id {lid} already occurs at line {lines[lid].lineno}", field="lineID"
                )
            lines[lid] = _Line(
                _key(cid, "characterID"), _key(mid, "movieID"), sys.intern(name.strip()), body.strip(), lineno
            )
    return lines


def _read_titles(path: Path, encoding: str, ctx: LoadContext) -> dict[str, dict[str, Any]]:
    titles: dict[str, dict[str, Any]] = {}
    first: dict[str, int] = {}
    for lineno, text in ctx.text_lines(path, encoding):
        with ctx.record(path, lineno, count=False):
            mid, title, year, rating, votes, genres = _fields(text, 6)
            mid = _key(mid, "movieID")
            if mid in titles:
                raise RecordError(
                    "duplicate_movie_id", f"movie id {mid} already occurs at line {first[mid]}", field="movieID"
                )
            try:
                imdb_rating = float(rating)
            except ValueError:
                raise RecordError("bad_value", f"IMDB rating {rating!r} is not a number", field="imdb_rating") from None
            try:
                imdb_votes = int(votes)
            except ValueError:
                raise RecordError("bad_value", f"IMDB votes {votes!r} is not an integer", field="imdb_votes") from None
            genre_list = _literal_list(genres, "genres", allow_empty=True)
            titles[mid] = {
                "title": title.strip(),
                "year": year.strip(),
                "imdb_rating": imdb_rating,
                "imdb_votes": imdb_votes,
                "genres": genre_list,
            }
            first[mid] = lineno
    return titles


def _read_characters(path: Path, encoding: str, ctx: LoadContext) -> dict[str, dict[str, Any]]:
    chars: dict[str, dict[str, Any]] = {}
    first: dict[str, int] = {}
    for lineno, text in ctx.text_lines(path, encoding):
        with ctx.record(path, lineno, count=False):
            cid, name, _mid, _title, gender, credit = _fields(text, 6)
            cid = _key(cid, "characterID")
            if cid in chars:
                raise RecordError(
                    "duplicate_character_id",
                    f"character id {cid} already occurs at line {first[cid]}",
                    field="characterID",
                )
            gender = gender.strip().lower()
            credit = credit.strip()
            if credit == "?":
                position = None
            elif credit.isdigit():
                position = int(credit)
            else:
                raise RecordError(
                    "bad_value", f"credit position {credit!r} is neither a number nor '?'", field="credit_position"
                )
            chars[cid] = {
                "name": name.strip(),
                "gender": None if gender in ("", "?") else gender,
                "credit_position": position,
            }
            first[cid] = lineno
    return chars


def _literal_list(raw: str, field: str, *, allow_empty: bool) -> list[str]:
    """A Python-literal list of non-empty strings, e.g. ``['L194', 'L195']``."""
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise RecordError("bad_literal", f"not a Python list literal: {raw.strip()[:80]!r}", field=field) from None
    if not isinstance(value, list):
        raise RecordError("wrong_type", f"expected a list, got {type(value).__name__}", field=field)
    if not value and not allow_empty:
        raise RecordError("empty_conversation", "the list is empty", field=field)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise RecordError("wrong_type", f"item {i} is {item!r}, expected a non-empty string", field=field)
    return [item.strip() for item in value]


def _conversations(
    raw_dir: Path, paths: dict[str, Path | None], options: dict[str, Any], ctx: LoadContext
) -> Iterator[Conversation]:
    encoding = options["encoding"]
    for path in paths.values():
        if path is not None:
            ctx.note_file(path, raw_dir)
    lines = _read_lines(paths[LINES], encoding, ctx)
    titles = _read_titles(paths[TITLES], encoding, ctx) if paths[TITLES] else {}
    characters = _read_characters(paths[CHARACTERS], encoding, ctx) if paths[CHARACTERS] else {}

    path = paths[CONVERSATIONS]
    rel = path.relative_to(raw_dir).as_posix()
    seen: dict[str, int] = {}
    for lineno, text in ctx.text_lines(path, encoding):
        with ctx.record(path, lineno) as rec:
            c1, c2, mid, raw_ids = _fields(text, 4)
            pair = (_key(c1, "characterID1"), _key(c2, "characterID2"))
            mid = _key(mid, "movieID")
            line_ids = _literal_list(raw_ids, "utteranceIDs", allow_empty=False)
            if len(set(line_ids)) != len(line_ids):
                raise RecordError("repeated_line_id", "a line id occurs twice in the list", field="utteranceIDs")
            conv_id = f"{ctx.dataset}/{mid}/{line_ids[0]}"
            if conv_id in seen:
                raise RecordError(
                    "duplicate_id",
                    f"conversation id {conv_id} already made from line {seen[conv_id]}",
                    field="utteranceIDs",
                    record=conv_id,
                )
            seen[conv_id] = lineno
            rec.add(
                _build(
                    conv_id, mid, pair, line_ids, lines, titles, characters, options, ctx, {"file": rel, "line": lineno}
                )
            )
        yield from rec.take()


def _build(
    conv_id: str,
    mid: str,
    pair: tuple[str, str],
    line_ids: list[str],
    lines: dict[str, _Line],
    titles: dict[str, dict[str, Any]],
    characters: dict[str, dict[str, Any]],
    options: dict[str, Any],
    ctx: LoadContext,
    source: dict[str, Any],
) -> Conversation | None:
    used: list[_Line] = []
    empty = 0
    for lid in line_ids:
        line = lines.get(lid)
        if line is None:
            raise RecordError(
                "unknown_line",
                f"line {lid} is not in {LINES} (or was skipped there as malformed)",
                field="utteranceIDs",
                record=conv_id,
            )
        where = f"line {lid} ({LINES}:{line.lineno})"
        if line.character not in pair:
            raise RecordError(
                "speaker_not_in_pair",
                f"{where} is spoken by {line.character}, neither {pair[0]} nor {pair[1]}",
                field="characterID",
                record=conv_id,
            )
        if line.movie != mid:
            raise RecordError(
                "movie_mismatch", f"{where} belongs to movie {line.movie}, not {mid}", field="movieID", record=conv_id
            )
        if not line.text:
            if options["empty_lines"] == "error":
                raise RecordError("empty_line", f"{where} has empty text", field="text", record=conv_id)
            empty += 1
            continue
        used.append(line)
    if empty:
        ctx.count("dropped_empty_lines", empty)
    if not used:
        ctx.drop("too_short")
        return None
    responder = used[-1].character
    turns = [
        Turn(role="assistant" if ln.character == responder else "user", text=ln.text, speaker=ln.name or None)
        for ln in used
    ]
    turns = merge_consecutive(turns, ctx, options["consecutive_roles"])
    if len(turns) < options["min_lines"] or not any(t.role == "user" for t in turns[:-1]):
        ctx.drop("too_short")
        return None

    meta: dict[str, Any] = {"movie_id": mid, "line_ids": line_ids, "characters": list(pair), "source": source}
    if mid in titles:  # copies: the parsed metadata is shared by every conversation of the movie
        meta.update(titles[mid], genres=list(titles[mid]["genres"]))
    info = {cid: dict(characters[cid]) for cid in pair if cid in characters}
    if info:
        meta["character_meta"] = info
    return Conversation(id=conv_id, dataset=ctx.dataset, turns=tuple(turns), meta=meta, group=conv_id)
