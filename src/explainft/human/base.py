"""What every human-set loader shares: options, raw files, JSON-list reading, groups, per-record counts.

A loader is ``load(raw_dir, name, options, ctx) -> HumanSet``. It reads the files of ``raw_dir`` that match its
``files`` globs (the download stage's ``SOURCE.json`` manifest and anything under a hidden folder are never
read), builds each source record inside ``with ctx.record(...)`` (a :class:`RecordError` is raised or counted
under ``skipped.<reason>`` by ``on_error``), and counts every documented policy. Counts of one record
(policies, drops, non-numeric annotator values) are collected in a :class:`RecordCounts` and added to the
load's only once the record is built, so a record that turns out bad leaves no counts behind but its skip.

JSON-list files (USR, FED): each element of the top-level list is one source record whose ``line`` is the
1-based line of the file on which the element starts. Bytes that are not UTF-8 inside an element are an error
of that element (``bad_encoding``). A file that is not valid JSON, or whose top level is not a list, cannot be
split into records: that is a RecordError for the whole file (``bad_json``, ``wrong_type``, naming the line),
raised whatever ``on_error`` says, never a silent loss of the elements after it.

A file with no record at all is an error (``empty_file``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..datasets.base import LoadContext, RecordScope, check_options, find_files
from ..errors import ConfigError, RecordError
from .records import Scale

MANIFEST = "SOURCE.json"
# surrogateescape turns each byte that is not UTF-8 into one of these code points
_ESCAPED = range(0xDC80, 0xDD00)


# --------------------------------------------------------------------------- options and files


def check_human_options(name: str, options: Any, schema: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Validate a set's options against ``schema`` (as :func:`~explainft.datasets.base.check_options`).

    Errors name ``human.sets.<name>.options.<key>``. A ``files`` option must be a non-empty list of
    non-empty glob strings.
    """
    try:
        out = check_options(name, options, schema)
    except ConfigError as e:
        raise ConfigError("human.sets." + e.key.removeprefix("sources."), e.message) from None
    if "files" in out:
        files = out["files"]
        if not files or not all(isinstance(f, str) and f.strip() for f in files):
            raise ConfigError(f"human.sets.{name}.options.files", f"must be a non-empty list of globs, got {files!r}")
    return out


def human_files(raw_dir: Path, patterns: list[str], name: str) -> list[Path]:
    """The files of ``raw_dir`` matching ``patterns``, sorted, without the manifest or hidden folders.

    None left is a RecordError (``missing_file``) naming the folder and the patterns.
    """
    raw_dir = Path(raw_dir)
    found: list[Path] = []
    if raw_dir.is_dir():
        try:
            found = find_files(raw_dir, patterns, name)
        except RecordError:
            found = []
    found = [p for p in found if not _ignored(p, raw_dir)]
    if not found:
        raise RecordError("missing_file", f"no file matching {patterns} for human set {name!r}", file=raw_dir)
    return found


def _ignored(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return parts == (MANIFEST,) or any(p.startswith(".") for p in parts[:-1])


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (the file name if it is outside)."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def open_bytes(path: Path) -> bytes:
    """The bytes of a file, gunzipped when it ends in ``.gz``; an unreadable file is ``bad_file``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise RecordError("bad_file", f"cannot read file: {e}", file=path) from e


def check_not_empty(ctx: LoadContext, path: Path, before: int) -> None:
    """Raise ``empty_file`` when no source record was read from ``path`` since ``before`` records."""
    if ctx.source_records == before:
        raise RecordError("empty_file", "the file holds no records", file=path)


# --------------------------------------------------------------------------- records of one file


def json_list(path: Path, ctx: LoadContext) -> Iterator[tuple[RecordScope, Any]]:
    """Yield ``(scope, element)`` for each element of a JSON-list file (line = the element's first line)."""
    text = open_bytes(path).decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    decoder = json.JSONDecoder()
    i = _skip_ws(text, 0)
    if text[i : i + 1] != "[":
        try:
            top = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError("bad_json", f"invalid JSON: {e.msg} at column {e.colno}", file=path, line=e.lineno)
        raise RecordError("wrong_type", f"expected a JSON list of items, got {type(top).__name__}", file=path, line=1)
    i = _skip_ws(text, i + 1)
    pos, line = 0, 1
    if text[i : i + 1] == "]":
        i = _skip_ws(text, i + 1)
    else:
        while True:
            line += text.count("\n", pos, i)
            pos = i
            try:
                obj, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError as e:
                raise RecordError(
                    "bad_json", f"invalid JSON: {e.msg} at column {e.colno}", file=path, line=e.lineno
                ) from None
            scope = ctx.record(path, line)
            if undecodable(obj):
                ctx.error(RecordError("bad_encoding", "bytes not valid utf-8 in this item", file=path, line=line))
            else:
                yield scope, obj
            i = _skip_ws(text, end)
            sep = text[i : i + 1]
            if sep == ",":
                i = _skip_ws(text, i + 1)
            elif sep == "]":
                i = _skip_ws(text, i + 1)
                break
            else:
                at = text.count("\n", 0, i) + 1
                raise RecordError("bad_json", "invalid JSON: expected ',' or ']' after a list item", file=path, line=at)
    if i < len(text):
        at = text.count("\n", 0, i) + 1
        raise RecordError("bad_json", "invalid JSON: extra data after the list", file=path, line=at)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def undecodable(obj: Any) -> bool:
    """Whether a string (or any string inside a list or object) holds bytes that were not UTF-8.

    Text decoded with ``errors="surrogateescape"`` carries each such byte as a code point U+DC80..U+DCFF.
    """
    if isinstance(obj, str):
        return any(ord(c) in _ESCAPED for c in obj)
    if isinstance(obj, dict):
        return any(undecodable(k) or undecodable(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(undecodable(v) for v in obj)
    return False


# --------------------------------------------------------------------------- building records


class RecordCounts:
    """The policy, drop and skipped-value counts of one record, added to the load's by :meth:`commit`.

    ``scratch`` is a LoadContext that only counts (``merge_consecutive`` and the loaders count into it).
    """

    def __init__(self, ctx: LoadContext):
        self.ctx = ctx
        self.scratch = LoadContext(ctx.dataset)
        self.values_skipped: Counter = Counter()

    def commit(self, values_skipped: Counter) -> None:
        """Add this record's counts to the load's (``values_skipped`` is the load's per-quality counter)."""
        self.ctx.policy.update(self.scratch.policy)
        self.ctx.dropped.update(self.scratch.dropped)
        values_skipped.update(self.values_skipped)


def group_of(name: str, parts: Iterable[str]) -> str:
    """``<name>/p<12 hex digits>``: the start of the SHA-256 of ``parts`` (the shared prompt or context).

    The parts are joined with a unit separator, exactly as published (no case or whitespace folding).
    """
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{name}/p{digest[:12]}"


def count_unknown_fields(obj: dict, known: Iterable[str], counts: RecordCounts) -> None:
    """Count ``policy.unknown_field`` once per key of ``obj`` outside the published schema (it is not read)."""
    extra = set(obj) - set(known)
    if extra:
        counts.scratch.count("unknown_field", len(extra))


def number(v: Any) -> float | None:
    """``v`` as a float when it is a finite JSON number (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def annotator_values(raw: Any, quality: str, scale: Scale, field: str, counts: RecordCounts) -> tuple[float, ...]:
    """The numeric values of one quality's per-annotator list, each checked against ``scale``.

    A string or null (an annotator's "N/A (...)", never parsed as a number) is dropped and counted in
    ``counts.values_skipped[quality]``; any other non-number (bool, list, object, NaN) is ``wrong_type``; a
    number outside the scale is ``out_of_range``. The result may be empty.
    """
    if not isinstance(raw, list):
        raise RecordError("wrong_type", f"expected a list of annotator values, got {type(raw).__name__}", field=field)
    out = []
    for i, v in enumerate(raw):
        x = number(v)
        if x is None:
            if isinstance(v, str) or v is None:
                counts.values_skipped[quality] += 1
                continue
            raise RecordError("wrong_type", f"expected a number, got {v!r}", field=f"{field}[{i}]")
        if not scale.contains(x):
            raise RecordError(
                "out_of_range", f"{v!r} is outside the scale {scale.lo:g}..{scale.hi:g}", field=f"{field}[{i}]"
            )
        out.append(x)
    return tuple(out)


def summary(ctx: LoadContext, values_skipped: Counter, items: int) -> dict[str, Any]:
    """``ctx.summary()`` plus ``values_skipped`` (sorted by quality) and ``items``."""
    return ctx.summary() | {"values_skipped": dict(sorted(values_skipped.items())), "items": items}
