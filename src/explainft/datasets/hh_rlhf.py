"""Anthropic HH-RLHF (``Anthropic/hh-rlhf``) -> Conversations, one side at a time.

Two dataset names share this loader: ``hh_rlhf_chosen`` and ``hh_rlhf_rejected``
(the registry fixes ``options["side"]``). Raw files are gzipped or plain JSON
lines of ``{"chosen": str, "rejected": str}``, laid out as on the Hub:
``<subset>/<split>.jsonl.gz`` (``harmless-base/train.jsonl.gz`` …). The subset
is the name of the file's folder (``default`` for a file directly in the raw
folder) and the split is the file name without ``.jsonl.gz``/``.jsonl``; both
are kept in meta and in the id ``<dataset>/<subset>/<split>/<line>`` (1-based
line of the file).

Parsing: a transcript is split only on the regex ``\\n\\n(Human|Assistant): ?``.
A literal ``Human:`` or ``Assistant:`` that is not right after a blank line
stays in the turn's text. ``Human`` -> ``user``, ``Assistant`` -> ``assistant``;
the text of each turn is kept as it is (not stripped). The text before the first
marker must be empty (transcripts start with ``"\\n\\nHuman: "``).

A line is a :class:`RecordError` (raised or skipped by ``data.on_error``) when
it is not valid UTF-8 or JSON, is not an object, lacks ``chosen`` or
``rejected`` or has one that is not a string (both fields are checked, whichever
side is loaded, so the two datasets skip the same lines), or when the loaded
side's transcript is empty (``empty_conversation``), has text before the first
marker (``text_before_first_marker``), has an empty turn other than the last
(``empty_turn``), ends with a Human turn (``last_turn_not_response``) or has no
Human turn (``no_request``).

Options (documented policies, counted in the prepare metrics):

``consecutive_roles`` (``merge`` | ``keep``, default ``merge``)
    two consecutive turns of one role (8 chosen / 5 rejected transcripts of
    harmless-base/test) are joined with a blank line
    (``policy.merged_consecutive_turns``) or kept (``policy.kept_consecutive_turns``).
``empty_final_response`` (``drop`` | ``error``, default ``drop``)
    a transcript whose final Assistant turn is empty or only whitespace (4
    chosen transcripts of harmless-base/test) is dropped, counted as
    ``dropped.empty_final_response``, or is a RecordError (``empty_response``).

Group: :func:`~explainft.datasets.base.prompt_group` of the Human turns. Chosen and rejected share the whole
transcript up to the final answer, so a line's two sides share it (across the two datasets), and so do
transcripts of other lines with the same Human turns. The split keeps a group on one side.

``red-team-attempts``: that file has another schema and must not be mixed in.
A matching file under a ``red-team-attempts/`` folder (or named
``red_team_attempts.*``) is ignored, never read, and counted as
``policy.ignored_red_team_files``, so a whole snapshot of the Hub repository
can be the raw folder. A raw folder with nothing else is an error.

Meta: ``subset``, ``split``, ``side``, ``shared_prefix`` (whether chosen and
rejected are identical up to their last ``\\n\\nAssistant:`` marker, as
the two sides of one Anthropic/hh-rlhf comparison should be) and ``source`` (``{"file", "line"}``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from ..errors import RecordError
from ..records import Conversation, Turn
from .base import LoadContext, find_files, merge_consecutive, prompt_group, require

OPTIONS: dict[str, tuple[Any, Any]] = {
    "consecutive_roles": (["merge", "keep"], "merge"),
    "empty_final_response": (["drop", "error"], "drop"),
}

RAW_FILES = ["**/*.jsonl.gz", "**/*.jsonl"]

MARKER = re.compile(r"\n\n(Human|Assistant): ?")
ROLE = {"Human": "user", "Assistant": "assistant"}
RED_TEAM_FOLDER = "red-team-attempts"
RED_TEAM_STEM = "red_team_attempts"
DEFAULT_SUBSET = "default"


def load(raw_dir: Path, options: dict[str, Any], ctx: LoadContext) -> Iterator[Conversation]:
    side = options.get("side", "chosen")
    files = [p for p in find_files(raw_dir, RAW_FILES, ctx.dataset) if not _hidden(p, raw_dir)]
    red_team = [p for p in files if _is_red_team(p, raw_dir)]
    if red_team:
        ctx.count("ignored_red_team_files", len(red_team))
    files = [p for p in files if p not in red_team]
    if not files:
        raise RecordError(
            "missing_file",
            f"no HH-RLHF preference files for dataset {ctx.dataset!r} "
            f"(found only {len(red_team)} red-team-attempts file(s), which are never read)",
            file=raw_dir,
        )
    for path in files:
        ctx.note_file(path, raw_dir)
        subset, split = subset_split(path, raw_dir)
        rel = path.relative_to(raw_dir).as_posix()
        for rec, obj in ctx.jsonl(path):
            with rec:
                rec.add(_build(obj, side, subset, split, {"file": rel, "line": rec.line}, options, ctx))
            yield from rec.take()


def split_transcript(text: str) -> list[Turn]:
    """The turns of one transcript, split only on ``\\n\\n(Human|Assistant): ?``.

    Raises RecordError (``empty_conversation``, ``text_before_first_marker``);
    turn texts are returned as they are, possibly empty.
    """
    if not text.strip():
        raise RecordError("empty_conversation", "the transcript is empty")
    parts = MARKER.split(text)
    if parts[0] != "":
        raise RecordError(
            "text_before_first_marker", f"text before the first '\\n\\nHuman: ' marker: {parts[0][:40]!r}"
        )
    return [Turn(role=ROLE[r], text=t) for r, t in zip(parts[1::2], parts[2::2])]


def shared_prefix(chosen: str, rejected: str) -> bool:
    """Whether the two transcripts are identical up to their last ``\\n\\nAssistant:`` marker."""
    a, b = _prefix(chosen), _prefix(rejected)
    return a is not None and a == b


def subset_split(path: Path, raw_dir: Path) -> tuple[str, str]:
    """``harmless-base/train.jsonl.gz`` -> ``("harmless-base", "train")``."""
    rel = path.relative_to(raw_dir)
    subset = rel.parent.name if rel.parent != Path(".") else DEFAULT_SUBSET
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return subset, name


# --------------------------------------------------------------------------- internals


def checked_turns(text: str, key: str) -> list[Turn]:
    """The turns of one transcript (``chosen`` or ``rejected``, named by ``key`` in errors), checked: it ends with
    an Assistant turn (which may be empty: a policy decides), no earlier turn is empty, and a Human turn exists."""
    try:
        turns = split_transcript(text)
    except RecordError as e:
        e.field = e.field or key
        raise
    last = len(turns) - 1
    if turns[-1].role != "assistant":
        raise RecordError(
            "last_turn_not_response", f"the transcript ends with a Human turn (turn {last}), not a response", field=key
        )
    for i, t in enumerate(turns[:-1]):
        if not t.text.strip():
            raise RecordError(
                "empty_turn", f"{'Human' if t.role == 'user' else 'Assistant'} turn {i} is empty", field=key
            )
    if not any(t.role == "user" for t in turns):
        raise RecordError("no_request", "the transcript has no Human turn", field=key)
    return turns


def _build(
    obj: Any, side: str, subset: str, split: str, source: dict[str, Any], options: dict[str, Any], ctx: LoadContext
) -> Conversation | None:
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a line must be a JSON object, got {type(obj).__name__}")
    texts = {key: require(obj, key, str) for key in ("chosen", "rejected")}
    turns = checked_turns(texts[side], side)
    last = len(turns) - 1
    if not turns[-1].text.strip():
        if options.get("empty_final_response", "drop") == "error":
            raise RecordError("empty_response", f"the final Assistant turn (turn {last}) is empty", field=side)
        ctx.drop("empty_final_response")
        return None
    turns = merge_consecutive(turns, ctx, options.get("consecutive_roles", "merge"))
    line = source["line"]
    return Conversation(
        id=f"{ctx.dataset}/{subset}/{split}/{line}",
        dataset=ctx.dataset,
        turns=tuple(turns),
        group=prompt_group(turns),
        meta={
            "subset": subset,
            "split": split,
            "side": side,
            "shared_prefix": shared_prefix(texts["chosen"], texts["rejected"]),
            "source": dict(source),
        },
    )


def _prefix(text: str) -> str | None:
    last = None
    for m in MARKER.finditer(text):
        if m.group(1) == "Assistant":
            last = m
    return text[: last.start()] if last is not None else None


def _is_red_team(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    return RED_TEAM_FOLDER in rel.parts[:-1] or path.name.startswith(RED_TEAM_STEM)


def _hidden(path: Path, root: Path) -> bool:
    """Files under a hidden folder (``.cache/huggingface/…`` of a Hub download) are not data."""
    return any(p.startswith(".") for p in path.relative_to(root).parts)
