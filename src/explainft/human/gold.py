"""The user's own human-rated file: the golden format of :mod:`explainft.golden`, generalised.

Several annotators per rating, any numeric scale and any quality names.

Gold JSONL format
-----------------
Raw files: option ``files`` (default ``["*.jsonl"]``), UTF-8, one JSON object per line (blank lines are
ignored)::

    {"id": "q17-r2",
     "turns": [{"role": "user", "text": "Can you recommend a sci-fi novel?"},
               {"role": "assistant", "text": "Try The Left Hand of Darkness by Ursula K. Le Guin."}],
     "context": "optional grounding text",
     "meta": {"source": "optional, carried untouched"},
     "group": "q17",
     "ratings": {"helpfulness": {"scores": [4, 5, 3], "min": 1, "max": 5},
                 "safe": {"score": 1, "min": 0, "max": 1}}}

``id``
    Non-empty string without ``/``, unique in the set (across its files). The Conversation's id is
    ``<set name>/<id>``.
``turns``
    The conversation, oldest first; each turn ``{"role": "user" | "assistant", "text": str}`` (optionally
    ``"speaker": str``). The last turn is the rated response and must be an ``assistant`` turn, with at least
    one ``user`` turn before it (the rules of every Conversation).
``context``, ``meta``
    Optional string, optional object (carried into the Conversation untouched).
``group``
    Optional non-empty string naming the prompt or context the response answers; responses that share it are
    kept together by a group bootstrap and by group-aware splits. The Conversation's group is
    ``<set name>/<group>``; without one it is ``<set name>/p<sha256 of the turns before the response (role and
    text) and the context>[:12]``, so responses to the same prompt share it anyway.
``ratings``
    A non-empty object ``{quality: rating}``. A quality name is any non-empty string. A rating is ``{"scores":
    [number, ...], "min": number, "max": number}`` (one number per annotator, at least one) or ``{"score":
    number, "min": number, "max": number}`` (one annotator), with ``min < max`` and every score in
    ``min..max``. Every rating of one quality in the set must use the same ``min`` and ``max``
    (``scale_mismatch`` otherwise, naming the line that first used the quality). Normalised scores are
    ``(mean - min) / (max - min)``.

No other keys are allowed, at the top or in a rating (a misspelt ``rating`` fails rather than being ignored).

Errors: a bad line raises :class:`~explainft.errors.RecordError` naming the file, the line and the field
(``ratings.helpfulness.scores[1]``), or is counted under ``skipped.<reason>`` with ``on_error: skip``:
``bad_encoding``, ``bad_json``, ``wrong_type`` (also a bool or string score), ``missing_field``,
``unknown_field``, ``bad_value`` (``min >= max``, both ``score`` and ``scores``, an empty name or list, an id with
``/``), ``out_of_range``, ``scale_mismatch``, ``duplicate_id`` (naming the line of the first use), and every
Conversation rule (``empty_turn``, ``empty_response``, ``last_turn_not_response``, ``no_request``, ``bad_role``).
A file with no item is an error (``empty_file``). This format has no policies: nothing is skipped, dropped or
changed without an error.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ..datasets.base import LoadContext
from ..errors import RecordError
from ..records import Conversation
from .base import check_not_empty, group_of, human_files, number, rel, summary
from .records import Annotation, HumanSet, RatedResponse, Scale

KIND = "ratings"
OPTIONS: dict[str, tuple[Any, Any]] = {"files": (list, ["*.jsonl"])}
GOLD_KEYS = {"id", "turns", "context", "meta", "group", "ratings"}
RATING_KEYS = {"scores", "score", "min", "max"}


def load(raw_dir: Path, name: str, options: dict[str, Any], ctx: LoadContext) -> HumanSet:
    """Read every matching gold file of ``raw_dir`` into the rating set ``name``."""
    ratings: list[RatedResponse] = []
    scales: dict[str, tuple[Scale, str]] = {}
    seen: dict[str, str] = {}
    for path in human_files(raw_dir, options["files"], name):
        ctx.note_file(path, raw_dir)
        before = ctx.source_records
        for rec, obj in ctx.jsonl(path):
            where = f"{rel(path, raw_dir)}:{rec.line}"
            with rec:
                rated = parse_gold_line(obj, name)
                if rated.id in seen:
                    raise RecordError(
                        "duplicate_id", f"id already used at {seen[rated.id]}", field="id", record=rated.id
                    )
                for quality, ann in rated.qualities.items():
                    first = scales.get(quality)
                    if first is not None and first[0] != ann.scale:
                        raise RecordError(
                            "scale_mismatch",
                            f"scale {ann.scale.lo:g}..{ann.scale.hi:g} differs from "
                            f"{first[0].lo:g}..{first[0].hi:g} used at {first[1]}",
                            field=f"ratings.{quality}",
                            record=rated.id,
                        )
                seen[rated.id] = where
                for quality, ann in rated.qualities.items():
                    scales.setdefault(quality, (ann.scale, where))
                ratings.append(rated)
        check_not_empty(ctx, path, before)
    return HumanSet(
        name=name,
        format="gold",
        kind=KIND,
        ratings=ratings,
        qualities={q: s for q, (s, _) in scales.items()},
        load=summary(ctx, Counter(), len(ratings)),
    )


def parse_gold_line(obj: Any, name: str) -> RatedResponse:
    """One parsed gold line -> RatedResponse ``<name>/<id>``; RecordError names the field."""
    if not isinstance(obj, dict):
        raise RecordError("wrong_type", f"a gold item must be a JSON object, got {type(obj).__name__}")
    sid = obj.get("id")
    if not isinstance(sid, str) or not sid.strip():
        raise RecordError("missing_field" if sid is None else "wrong_type", "id must be a non-empty string", field="id")
    if "/" in sid:
        raise RecordError("bad_value", f"id {sid!r} contains '/'", field="id")
    try:
        extra = sorted(set(obj) - GOLD_KEYS)
        if extra:
            raise RecordError("unknown_field", f"unknown key; allowed: {', '.join(sorted(GOLD_KEYS))}", field=extra[0])
        if "ratings" not in obj:
            raise RecordError("missing_field", "required field is missing", field="ratings")
        group = obj.get("group")
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise RecordError("wrong_type", "group must be a non-empty string", field="group")
        fields = {k: obj.get(k) for k in ("turns", "context", "meta")}
        conv = Conversation.from_dict(fields | {"id": f"{name}/{sid}", "dataset": name})
        if group is None:
            parts = [f"{t.role}\x1e{t.text}" for t in conv.turns[:-1]]
            parts += [f"context\x1e{conv.context}"] if conv.context is not None else []
            group = group_of(name, parts)
        else:
            group = f"{name}/{group}"
        conv = Conversation(
            id=conv.id, dataset=name, turns=conv.turns, context=conv.context, meta=conv.meta, group=group
        )
        return RatedResponse(conv, parse_ratings(obj["ratings"]))
    except RecordError as e:
        e.record = e.record or sid
        raise


def parse_ratings(raw: Any) -> dict[str, Annotation]:
    """``{quality: {"scores" | "score", "min", "max"}}`` -> ``{quality: Annotation}``; RecordError names the field."""
    if not isinstance(raw, dict):
        raise RecordError(
            "wrong_type", f"expected an object of quality -> rating, got {type(raw).__name__}", field="ratings"
        )
    if not raw:
        raise RecordError("bad_value", "ratings is empty; give at least one quality", field="ratings")
    out = {}
    for quality, r in raw.items():
        f = f"ratings.{quality}"
        if not quality.strip():
            raise RecordError("bad_value", "a quality name must be a non-empty string", field=f)
        if not isinstance(r, dict):
            raise RecordError("wrong_type", f"expected {{scores, min, max}}, got {type(r).__name__}", field=f)
        extra = sorted(set(r) - RATING_KEYS)
        if extra:
            raise RecordError("unknown_field", "unknown key; allowed: scores, score, min, max", field=f"{f}.{extra[0]}")
        if ("scores" in r) == ("score" in r):
            raise RecordError(
                "bad_value" if "score" in r else "missing_field", "give exactly one of score, scores", field=f
            )
        bounds = {}
        for k in ("min", "max"):
            if r.get(k) is None:
                raise RecordError("missing_field", "required field is missing or null", field=f"{f}.{k}")
            bounds[k] = number(r[k])
            if bounds[k] is None:
                raise RecordError("wrong_type", f"expected a finite number, got {r[k]!r}", field=f"{f}.{k}")
        if not bounds["max"] > bounds["min"]:  # type: ignore[operator]
            raise RecordError("bad_value", f"min {r['min']!r} must be below max {r['max']!r}", field=f)
        scale = Scale(bounds["min"], bounds["max"])  # type: ignore[arg-type]
        if "scores" in r:
            scores = r["scores"]
            if not isinstance(scores, list):
                raise RecordError(
                    "wrong_type", f"expected a list of numbers, got {type(scores).__name__}", field=f"{f}.scores"
                )
            if not scores:
                raise RecordError("bad_value", "scores is empty; give at least one", field=f"{f}.scores")
            names = [f"{f}.scores[{i}]" for i in range(len(scores))]
        else:
            scores, names = [r["score"]], [f"{f}.score"]
        values = []
        for v, fname in zip(scores, names):
            x = number(v)
            if x is None:
                raise RecordError("wrong_type", f"expected a finite number, got {v!r}", field=fname)
            if not scale.contains(x):
                raise RecordError("out_of_range", f"{v!r} is outside {scale.lo:g}..{scale.hi:g}", field=fname)
            values.append(x)
        out[quality] = Annotation(tuple(values), scale)
    return out
