"""The pipeline's records, one schema module for all stages.

One idea, over 500 lines: every record type of the pipeline and its validation, in one schema.

Records are frozen dataclasses with ``to_dict``/``from_dict``. ``from_dict``
checks every field's presence and type and raises :class:`RecordError` naming
the field; ``write_jsonl`` writes atomically, ``read_jsonl`` names the file and
line of any bad record.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, TypeVar

from .errors import RecordError
from .fsutil import atomic_open, dumps

ROLES = ("user", "assistant")
DIMENSIONS = ("naturalness", "comprehensiveness", "on_topic")
RATING_STATUSES = ("ok", "unparsable", "failed")


# --------------------------------------------------------------------------- helpers


def _require(d: dict, key: str, types: type | tuple[type, ...], *, prefix: str = "", optional: bool = False) -> Any:
    name = f"{prefix}{key}"
    if key not in d or d[key] is None:
        if optional:
            return None
        raise RecordError("missing_field", "required field is missing or null", field=name)
    value = d[key]
    # bool is an int subclass; a JSON true where a number belongs is a type error
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise RecordError("wrong_type", f"expected {_tname(types)}, got bool", field=name)
    if not isinstance(value, types):
        raise RecordError("wrong_type", f"expected {_tname(types)}, got {type(value).__name__}", field=name)
    return value


def _tname(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


def _unit_interval(value: float, name: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise RecordError("out_of_range", f"{value!r} is outside [0, 1]", field=name)
    return float(value)


# --------------------------------------------------------------------------- Conversation


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    speaker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "text": self.text}
        if self.speaker is not None:
            d["speaker"] = self.speaker
        return d


@dataclass(frozen=True)
class Conversation:
    """A conversation whose last turn is the response being rated.

    ``group`` names the source unit that related conversations share (twins, the same prompt, the same story):
    the split keeps a whole group on one side, across every dataset. Loaders set it (see each loader's
    docstring); when it is not given it is the conversation's own id.
    """

    id: str
    dataset: str
    turns: tuple[Turn, ...]
    context: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    group: str | None = None

    kind: ClassVar[str] = "conversation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "turns", tuple(self.turns))
        if self.group is None and isinstance(self.id, str):
            object.__setattr__(self, "group", self.id)
        validate_conversation(self)

    @property
    def response(self) -> Turn:
        return self.turns[-1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "dataset": self.dataset,
            "group": self.group,
            "turns": [t.to_dict() for t in self.turns],
            "meta": self.meta,
        }
        if self.context is not None:
            d["context"] = self.context
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "Conversation":
        if not isinstance(d, dict):
            raise RecordError("wrong_type", f"a conversation must be a JSON object, got {type(d).__name__}")
        cid = _require(d, "id", str)
        try:
            dataset = _require(d, "dataset", str)
            raw_turns = _require(d, "turns", list)
            turns = []
            for i, t in enumerate(raw_turns):
                if not isinstance(t, dict):
                    raise RecordError("wrong_type", f"expected object, got {type(t).__name__}", field=f"turns[{i}]")
                turns.append(
                    Turn(
                        role=_require(t, "role", str, prefix=f"turns[{i}]."),
                        text=_require(t, "text", str, prefix=f"turns[{i}]."),
                        speaker=_require(t, "speaker", str, prefix=f"turns[{i}].", optional=True),
                    )
                )
            context = _require(d, "context", str, optional=True)
            meta = _require(d, "meta", dict, optional=True) or {}
            group = _require(d, "group", str, optional=True)
            return cls(id=cid, dataset=dataset, turns=tuple(turns), context=context, meta=meta, group=group)
        except RecordError as e:
            e.record = e.record or cid
            raise


def validate_conversation(c: Conversation) -> None:
    """The invariants every Conversation keeps; raises RecordError naming the field."""

    def err(reason: str, msg: str, fld: str | None = None) -> RecordError:
        return RecordError(reason, msg, field=fld, record=c.id if isinstance(c.id, str) else None)

    if not isinstance(c.id, str) or not c.id:
        raise err("missing_field", "id must be a non-empty string", "id")
    if not isinstance(c.dataset, str) or not c.dataset:
        raise err("missing_field", "dataset must be a non-empty string", "dataset")
    if not isinstance(c.group, str) or not c.group:
        raise err("missing_field", "group must be a non-empty string (or absent: the id)", "group")
    if not c.turns:
        raise err("empty_conversation", "conversation has no turns", "turns")
    for i, t in enumerate(c.turns):
        if not isinstance(t, Turn):
            raise err("wrong_type", f"expected Turn, got {type(t).__name__}", f"turns[{i}]")
        if t.role not in ROLES:
            raise err("bad_role", f"role {t.role!r} is not one of {', '.join(ROLES)}", f"turns[{i}].role")
        if not isinstance(t.text, str):
            raise err("wrong_type", f"expected str, got {type(t.text).__name__}", f"turns[{i}].text")
        if not t.text.strip():
            reason = "empty_response" if i == len(c.turns) - 1 else "empty_turn"
            raise err(reason, "turn text is empty", f"turns[{i}].text")
    if c.turns[-1].role != "assistant":
        raise err(
            "last_turn_not_response",
            "the last turn (the response to rate) must be an assistant turn",
            f"turns[{len(c.turns) - 1}].role",
        )
    if not any(t.role == "user" for t in c.turns):
        raise err("no_request", "conversation has no user turn before the response", "turns")
    if c.context is not None and not isinstance(c.context, str):
        raise err("wrong_type", "context must be a string", "context")
    if not isinstance(c.meta, dict):
        raise err("wrong_type", "meta must be an object", "meta")


# --------------------------------------------------------------------------- later stages


@dataclass(frozen=True)
class Rating:
    """One teacher's rating of one item on one dimension with one prompt (annotate)."""

    id: str
    dimension: str
    teacher: str
    prompt: str
    scale: int
    raw_score: int | None
    assessment: str
    confidence: str
    status: str
    error: str | None = None

    kind: ClassVar[str] = "rating"

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise RecordError(
                "bad_value", f"dimension {self.dimension!r} not in {DIMENSIONS}", field="dimension", record=self.id
            )
        if self.scale not in (4, 5):
            raise RecordError("bad_value", f"scale must be 4 or 5, got {self.scale!r}", field="scale", record=self.id)
        if self.status not in RATING_STATUSES:
            raise RecordError(
                "bad_value", f"status {self.status!r} not in {RATING_STATUSES}", field="status", record=self.id
            )
        if self.status == "ok":
            if self.raw_score is None or not (1 <= self.raw_score <= self.scale):
                raise RecordError(
                    "out_of_range",
                    f"an ok rating needs a score in 1..{self.scale}, got {self.raw_score!r}",
                    field="raw_score",
                    record=self.id,
                )
        elif self.raw_score is not None:
            raise RecordError(
                "bad_value", "a rating that is not ok must have a null score", field="raw_score", record=self.id
            )

    def to_dict(self) -> dict[str, Any]:
        d = {
            k: getattr(self, k)
            for k in (
                "id",
                "dimension",
                "teacher",
                "prompt",
                "scale",
                "raw_score",
                "assessment",
                "confidence",
                "status",
            )
        }
        if self.error is not None:
            d["error"] = self.error
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "Rating":
        if not isinstance(d, dict):
            raise RecordError("wrong_type", "a rating must be a JSON object")
        return cls(
            id=_require(d, "id", str),
            dimension=_require(d, "dimension", str),
            teacher=_require(d, "teacher", str),
            prompt=_require(d, "prompt", str),
            scale=_require(d, "scale", int),
            raw_score=_require(d, "raw_score", int, optional=True),
            assessment=_require(d, "assessment", str),
            confidence=_require(d, "confidence", str),
            status=_require(d, "status", str),
            error=_require(d, "error", str, optional=True),
        )


@dataclass(frozen=True)
class Item:
    """The merged rating of one conversation on one dimension (merge)."""

    id: str
    dimension: str
    score: float
    label: int
    assessment: str
    confidence: str
    n_valid: int

    kind: ClassVar[str] = "item"

    def __post_init__(self) -> None:
        if self.dimension not in DIMENSIONS:
            raise RecordError(
                "bad_value", f"dimension {self.dimension!r} not in {DIMENSIONS}", field="dimension", record=self.id
            )
        object.__setattr__(self, "score", _unit_interval(self.score, "score"))
        if not 1 <= self.label <= 5:
            raise RecordError(
                "out_of_range", f"label must be in 1..5, got {self.label!r}", field="label", record=self.id
            )
        if self.n_valid < 0:
            raise RecordError("out_of_range", "n_valid must be >= 0", field="n_valid", record=self.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k) for k in ("id", "dimension", "score", "label", "assessment", "confidence", "n_valid")
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Item":
        if not isinstance(d, dict):
            raise RecordError("wrong_type", "an item must be a JSON object")
        return cls(
            id=_require(d, "id", str),
            dimension=_require(d, "dimension", str),
            score=float(_require(d, "score", (int, float))),
            label=_require(d, "label", int),
            assessment=_require(d, "assessment", str),
            confidence=_require(d, "confidence", str),
            n_valid=_require(d, "n_valid", int),
        )


@dataclass(frozen=True)
class Prediction:
    """A student's rating of one test item (evaluate): the five score probabilities."""

    id: str
    model: str
    test_set: str
    dimension: str
    probs: tuple[float, float, float, float, float]
    expected: float
    argmax: int
    target: float | None = None

    kind: ClassVar[str] = "prediction"

    def __post_init__(self) -> None:
        probs = tuple(float(p) for p in self.probs)
        if len(probs) != 5 or any(not math.isfinite(p) or p < 0 for p in probs):
            raise RecordError(
                "bad_value",
                f"probs must be five finite non-negative numbers, got {self.probs!r}",
                field="probs",
                record=self.id,
            )
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "expected", _unit_interval(self.expected, "expected"))
        if not 1 <= self.argmax <= 5:
            raise RecordError(
                "out_of_range", f"argmax must be in 1..5, got {self.argmax!r}", field="argmax", record=self.id
            )
        if self.target is not None:
            object.__setattr__(self, "target", _unit_interval(self.target, "target"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "model": self.model, "test_set": self.test_set, "dimension": self.dimension}
        d.update({f"p{k}": p for k, p in enumerate(self.probs, start=1)})
        d.update({"expected": self.expected, "argmax": self.argmax, "target": self.target})
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "Prediction":
        if not isinstance(d, dict):
            raise RecordError("wrong_type", "a prediction must be a JSON object")
        return cls(
            id=_require(d, "id", str),
            model=_require(d, "model", str),
            test_set=_require(d, "test_set", str),
            dimension=_require(d, "dimension", str),
            probs=tuple(float(_require(d, f"p{k}", (int, float))) for k in range(1, 6)),  # type: ignore[arg-type]
            expected=float(_require(d, "expected", (int, float))),
            argmax=_require(d, "argmax", int),
            target=_require(d, "target", (int, float), optional=True),
        )


@dataclass(frozen=True)
class Example:
    """A conversation with its merged rating on one dimension: what the split and variant stages write.

    In a split file ``variant`` and ``explanation`` are null. In a variant file
    (training targets) ``variant`` names the variant and ``explanation`` is the
    text that follows the score in the target (empty for ``none`` and length 0).
    """

    id: str
    dataset: str
    dimension: str
    turns: tuple[Turn, ...]
    score: float
    label: int
    assessment: str
    confidence: str
    context: str | None = None
    variant: str | None = None
    explanation: str | None = None
    group: str | None = None

    kind: ClassVar[str] = "example"

    def __post_init__(self) -> None:
        object.__setattr__(self, "turns", tuple(self.turns))
        if self.group is None and isinstance(self.id, str):
            object.__setattr__(self, "group", self.id)
        if self.dimension not in DIMENSIONS:
            raise RecordError(
                "bad_value", f"dimension {self.dimension!r} not in {DIMENSIONS}", field="dimension", record=self.id
            )
        object.__setattr__(self, "score", _unit_interval(self.score, "score"))
        if not 1 <= self.label <= 5:
            raise RecordError(
                "out_of_range", f"label must be in 1..5, got {self.label!r}", field="label", record=self.id
            )
        # the conversation obeys every Conversation rule
        self.conversation()

    def conversation(self) -> Conversation:
        return Conversation(id=self.id, dataset=self.dataset, turns=self.turns, context=self.context, group=self.group)

    @classmethod
    def of(cls, conv: Conversation, item: "Item") -> "Example":
        if conv.id != item.id:
            raise RecordError("id_mismatch", f"item {item.id!r} joined to conversation {conv.id!r}", record=item.id)
        return cls(
            id=conv.id,
            dataset=conv.dataset,
            dimension=item.dimension,
            turns=conv.turns,
            score=item.score,
            label=item.label,
            assessment=item.assessment,
            confidence=item.confidence,
            context=conv.context,
            group=conv.group,
        )

    def with_target(self, variant: str, explanation: str) -> "Example":
        return Example(
            id=self.id,
            dataset=self.dataset,
            dimension=self.dimension,
            turns=self.turns,
            score=self.score,
            label=self.label,
            assessment=self.assessment,
            confidence=self.confidence,
            context=self.context,
            variant=variant,
            explanation=explanation,
            group=self.group,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "dataset": self.dataset,
            "group": self.group,
            "dimension": self.dimension,
            "turns": [t.to_dict() for t in self.turns],
            "score": self.score,
            "label": self.label,
            "assessment": self.assessment,
            "confidence": self.confidence,
        }
        if self.context is not None:
            d["context"] = self.context
        if self.variant is not None:
            d["variant"] = self.variant
            d["explanation"] = self.explanation
        return d

    @classmethod
    def from_dict(cls, d: Any) -> "Example":
        if not isinstance(d, dict):
            raise RecordError("wrong_type", "an example must be a JSON object")
        conv = Conversation.from_dict(
            {
                "id": d.get("id"),
                "dataset": d.get("dataset"),
                "turns": d.get("turns"),
                "context": d.get("context"),
                "group": d.get("group"),
            }
        )
        return cls(
            id=conv.id,
            dataset=conv.dataset,
            dimension=_require(d, "dimension", str),
            turns=conv.turns,
            score=float(_require(d, "score", (int, float))),
            label=_require(d, "label", int),
            assessment=_require(d, "assessment", str),
            confidence=_require(d, "confidence", str),
            context=conv.context,
            variant=_require(d, "variant", str, optional=True),
            explanation=_require(d, "explanation", str, optional=True),
            group=conv.group,
        )


R = TypeVar("R", Conversation, Rating, Item, Prediction, Example)


# --------------------------------------------------------------------------- JSONL I/O


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses with ``to_dict`` or plain dicts) atomically; returns the count."""
    n = 0
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(dumps(rec.to_dict() if hasattr(rec, "to_dict") else rec))
            fh.write("\n")
            n += 1
    return n


def iter_json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` for each non-blank line of a UTF-8 JSONL file.

    Bytes that are not UTF-8 and lines that are not JSON raise RecordError with file and line.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RecordError(
                    "bad_encoding", f"not valid UTF-8 at byte {e.start}", file=path, line=lineno
                ) from None
            if not text.strip():
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as e:
                raise RecordError(
                    "bad_json", f"invalid JSON: {e.msg} at column {e.colno}", file=path, line=lineno
                ) from None


def read_jsonl(path: str | Path, cls: type[R]) -> Iterator[R]:
    """Read records of one type; any bad line raises RecordError with file and line."""
    for lineno, obj in iter_json_lines(path):
        try:
            yield cls.from_dict(obj)
        except RecordError as e:
            raise e.at(path, lineno)
