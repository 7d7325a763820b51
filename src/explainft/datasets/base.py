"""What every loader shares: the load context (error policy and counts) and line readers.

A loader is a generator ``load(raw_dir, options, ctx) -> Iterator[Conversation]``.
It reads the raw files in their published format and turns each source record
into zero or more Conversations inside ``with ctx.record(file, line) as rec:``.

Two kinds of outcome are counted, never silent:

* **errors** (malformed input: bad JSON, a missing field, a wrong type, bytes
  invalid in the declared encoding, an empty conversation, a last turn that is
  not a response …) raise :class:`RecordError` naming file, line and field.
  With ``data.on_error: raise`` (default) the stage stops there; with
  ``skip`` the record is skipped and counted under ``skipped.<reason>``.
* **policies** (documented choices for known edge cases of a dataset: merge
  two consecutive turns of one role, drop an empty line, drop a tie …) are
  counted under ``policy.<name>``; a policy that removes a whole record counts
  under ``dropped.<reason>``.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..config.data import ON_ERROR
from ..errors import ConfigError, RecordError
from ..records import Conversation, Turn


@dataclass
class LoadContext:
    """Error policy and counters for one dataset's prepare run."""

    dataset: str
    on_error: str = "raise"
    source_records: int = 0
    skipped: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    policy: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ConfigError("data.on_error", f"must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")

    # -- outcomes -------------------------------------------------------------------

    def error(self, err: RecordError) -> None:
        """Raise ``err`` or count it as a skip, by ``on_error``."""
        if self.on_error == "raise":
            raise err
        self.skipped[err.reason] += 1

    def drop(self, reason: str, n: int = 1) -> None:
        """A documented policy removed a whole source record (or one side of it)."""
        self.dropped[reason] += n

    def count(self, policy: str, n: int = 1) -> None:
        """A documented policy changed a record (merged turns, stripped text …)."""
        self.policy[policy] += n

    def record(self, file: str | Path, line: int | None = None, *, count: bool = True) -> "RecordScope":
        """Scope for one source record; counts it as read unless ``count=False``."""
        if count:
            self.source_records += 1
        return RecordScope(self, str(file), line)

    # -- readers --------------------------------------------------------------------

    def note_file(self, path: Path, root: Path | None = None) -> None:
        self.files.append(str(path.relative_to(root)) if root and path.is_relative_to(root) else path.name)

    def text_lines(self, path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
        """Yield ``(line_number, text)`` for each non-blank line of a (optionally gzipped) file.

        Lines are split on ``\\n`` only (a ``\\r`` or U+2028 inside a JSON string is
        data). Bytes that are invalid in ``encoding`` are an error for that line
        (raised or counted by ``on_error``), not a replacement character.
        """
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    try:
                        text = raw.decode(encoding)
                    except UnicodeDecodeError as e:
                        self.source_records += 1
                        self.error(
                            RecordError(
                                "bad_encoding", f"bytes not valid {encoding} at byte {e.start}", file=path, line=lineno
                            )
                        )
                        continue
                    text = text.rstrip("\r\n")
                    if text.strip():
                        yield lineno, text
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            # a truncated or corrupt gzip stream: the file itself is broken, not one record
            raise RecordError("bad_file", f"cannot read file: {e}", file=path) from e

    def jsonl(self, path: Path, encoding: str = "utf-8") -> Iterator[tuple["RecordScope", Any]]:
        """Yield ``(scope, object)`` per JSON line; bad JSON is handled through the scope.

        Use the scope as a context manager around building the record::

            for rec, obj in ctx.jsonl(path):
                with rec:
                    rec.add(build(obj))
                yield from rec.take()
        """
        for lineno, text in self.text_lines(path, encoding):
            scope = self.record(path, lineno)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                self.error(
                    RecordError("bad_json", f"invalid JSON: {e.msg} at column {e.colno}", file=path, line=lineno)
                )
                continue
            yield scope, obj

    # -- report ---------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "source_records": self.source_records,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            "policy": dict(sorted(self.policy.items())),
        }


class RecordScope:
    """Collects the Conversations built from one source record, all or nothing.

    A RecordError raised inside the ``with`` block gets this record's file and
    line and is raised or counted by ``on_error``; the record then yields nothing.
    """

    def __init__(self, ctx: LoadContext, file: str, line: int | None):
        self.ctx = ctx
        self.file = file
        self.line = line
        self._out: list[Conversation] = []
        self.ok = True

    def __enter__(self) -> "RecordScope":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, RecordError):
            self.ok = False
            self._out.clear()
            self.ctx.error(exc.at(self.file, self.line))
            return True  # counted as a skip (raise mode re-raised above)
        return False

    def add(self, conv: Conversation | None) -> None:
        if conv is not None:
            self._out.append(conv)

    def take(self) -> list[Conversation]:
        out, self._out = self._out, []
        return out


# --------------------------------------------------------------------------- shared helpers


def parquet_rows(path: Path, batch_rows: int = 1024) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number from 0, row as a dict)`` of a parquet file, read in batches of ``batch_rows``.

    A file pyarrow cannot open, or a batch it cannot decode, is a RecordError (``bad_file``) naming the file
    (and the first row not read): the file itself is broken, not one record.
    """
    import pyarrow as pa  # lazy: JSON lines need no pyarrow
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
    except (pa.ArrowException, OSError) as e:
        raise RecordError("bad_file", f"cannot read parquet file: {e}", file=path) from e
    row = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as e:
            raise RecordError("bad_file", f"cannot read parquet file at row {row}: {e}", file=path) from e
        if batch is None:
            return
        for obj in batch.to_pylist():
            yield row, obj
            row += 1


def prompt_group(turns: "list[Turn] | tuple[Turn, ...]") -> str:
    """The group of a conversation keyed by what the user asked: ``prompt:<16 hex digits>``.

    The digits are the start of the SHA-256 of the user turns before the response, each lower-cased with its
    whitespace collapsed, joined by a unit separator. Conversations that share the user's words share the group,
    whatever dataset they come from: the two sides of a Chatbot Arena battle, HH-RLHF's chosen and rejected
    transcripts, a perturbed twin and its original, and any two records that ask the same thing. The split keeps a
    group on one side (train, validation or test) across every dataset.
    """
    import hashlib

    asked = [" ".join(t.text.lower().split()) for t in turns[:-1] if t.role == "user"]
    digest = hashlib.sha256("\x1f".join(asked).encode("utf-8")).hexdigest()
    return f"prompt:{digest[:16]}"


def require(obj: Any, key: str, types: type | tuple[type, ...], *, where: str = "", allow_none: bool = False) -> Any:
    """Fetch ``obj[key]`` checking presence and type; RecordError names the field path."""
    name = f"{where}{key}"
    if not isinstance(obj, dict):
        raise RecordError(
            "wrong_type", f"expected an object, got {type(obj).__name__}", field=where.rstrip(".") or None
        )
    if key not in obj:
        raise RecordError("missing_field", "required field is missing", field=name)
    value = obj[key]
    if value is None:
        if allow_none:
            return None
        raise RecordError("missing_field", "required field is null", field=name)
    tuple_types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in tuple_types:
        raise RecordError(
            "wrong_type", "expected " + " or ".join(t.__name__ for t in tuple_types) + ", got bool", field=name
        )
    if not isinstance(value, types):
        raise RecordError(
            "wrong_type",
            "expected " + " or ".join(t.__name__ for t in tuple_types) + f", got {type(value).__name__}",
            field=name,
        )
    return value


def merge_consecutive(turns: list[Turn], ctx: LoadContext, mode: str = "merge") -> list[Turn]:
    """Apply the consecutive-same-role policy: ``merge`` joins them with a blank line, ``keep`` leaves them.

    Counts ``policy.merged_consecutive_turns`` (one per merge).
    """
    if mode == "keep":
        kept = sum(1 for a, b in zip(turns, turns[1:]) if a.role == b.role)
        if kept:
            ctx.count("kept_consecutive_turns", kept)
        return turns
    if mode != "merge":
        raise ConfigError("consecutive_roles", f"must be merge or keep, got {mode!r}")
    out: list[Turn] = []
    for t in turns:
        if out and out[-1].role == t.role:
            prev = out[-1]
            speaker = prev.speaker if prev.speaker == t.speaker else None
            out[-1] = Turn(role=prev.role, text=f"{prev.text}\n\n{t.text}", speaker=speaker)
            ctx.count("merged_consecutive_turns")
        else:
            out.append(t)
    return out


def check_options(dataset: str, options: dict[str, Any], schema: dict[str, tuple[type | tuple, Any]]) -> dict[str, Any]:
    """Validate a loader's ``options`` against ``{name: (type_or_choices, default)}``.

    ``type_or_choices`` is a type, a tuple of types, or a list of allowed values.
    Unknown keys and wrong types raise ConfigError naming ``sources.<dataset>.options.<key>``.
    Returns the options with defaults filled in.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(f"sources.{dataset}.options", f"must be a mapping, got {type(options).__name__}")
    unknown = sorted(set(options) - set(schema))
    if unknown:
        raise ConfigError(
            f"sources.{dataset}.options.{unknown[0]}", f"unknown option; known: {', '.join(sorted(schema)) or '(none)'}"
        )
    out = {}
    for key, (spec, default) in schema.items():
        value = options.get(key, default)
        name = f"sources.{dataset}.options.{key}"
        if isinstance(spec, list):
            if value not in spec:
                raise ConfigError(name, f"must be one of {', '.join(map(repr, spec))}, got {value!r}")
        elif value is not None or default is not None:
            types = spec if isinstance(spec, tuple) else (spec,)
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise ConfigError(name, f"expected {' or '.join(t.__name__ for t in types)}, got {value!r}")
        out[key] = value
    return out


def find_files(raw_dir: Path, patterns: list[str], dataset: str) -> list[Path]:
    """The raw files matching any of ``patterns`` (globs, recursive), sorted; an error if none."""
    found: set[Path] = set()
    for pat in patterns:
        found.update(p for p in raw_dir.glob(pat) if p.is_file())
    if not found:
        raise RecordError("missing_file", f"no raw files matching {patterns} for dataset {dataset!r}", file=raw_dir)
    return sorted(found)
