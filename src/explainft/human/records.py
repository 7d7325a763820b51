"""The records of a human-rated set: scales, per-annotator annotations, rated responses and preference pairs.

A *rating set* (HelpSteer, USR, FED, a gold file) holds :class:`RatedResponse` s: a Conversation whose last turn
is the rated response, with one :class:`Annotation` per human quality (the numbers every annotator gave, on the
quality's :class:`Scale`). A *preference set* (Arena human preference, Chatbot Arena, HH-RLHF) holds
:class:`PreferencePair` s: two responses to one prompt and which one a person preferred.

Every response to the same prompt or context shares ``Conversation.group``, so a group bootstrap and the
group-aware splits keep them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..records import Conversation

KINDS = ("ratings", "preferences")
WINNERS = ("a", "b", "tie")


@dataclass(frozen=True)
class Scale:
    """The inclusive numeric range ``lo..hi`` of one human quality (``hi > lo``)."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        for name in ("lo", "hi"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"Scale.{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.hi > self.lo:
            raise ValueError(f"Scale needs hi > lo, got lo={self.lo} hi={self.hi}")

    def contains(self, v: float) -> bool:
        """Whether ``v`` lies in ``lo..hi`` (inclusive)."""
        return self.lo <= v <= self.hi

    def normalise(self, v: float) -> float:
        """``v`` mapped to [0, 1]: ``(v - lo) / (hi - lo)``."""
        return (v - self.lo) / (self.hi - self.lo)

    def to_dict(self) -> dict[str, float]:
        """``{"lo", "hi"}``."""
        return {"lo": self.lo, "hi": self.hi}


@dataclass(frozen=True)
class Annotation:
    """One quality of one response: the value of each annotator that gave a number, on ``scale``."""

    values: tuple[float, ...]
    scale: Scale

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.values)
        if not values:
            raise ValueError("an Annotation needs at least one value")
        bad = [v for v in values if not (math.isfinite(v) and self.scale.contains(v))]
        if bad:
            raise ValueError(f"values {bad} are outside the scale {self.scale.lo:g}..{self.scale.hi:g}")
        object.__setattr__(self, "values", values)

    @property
    def mean(self) -> float:
        """The mean of the values."""
        return math.fsum(self.values) / len(self.values)

    @property
    def spread(self) -> float:
        """The population standard deviation of the values (0.0 for one value)."""
        m = self.mean
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / len(self.values))

    @property
    def normalised(self) -> float:
        """The mean on [0, 1] (``scale.normalise(mean)``)."""
        return self.scale.normalise(self.mean)

    def to_dict(self) -> dict[str, Any]:
        """``{"values", "lo", "hi", "mean", "spread", "normalised"}``."""
        return {"values": list(self.values), **self.scale.to_dict()} | {
            "mean": self.mean,
            "spread": self.spread,
            "normalised": self.normalised,
        }


@dataclass(frozen=True)
class RatedResponse:
    """A response (the conversation's last turn) with its human annotations by quality name."""

    conversation: Conversation
    qualities: dict[str, Annotation]

    def __post_init__(self) -> None:
        if not self.qualities:
            raise ValueError(f"{self.conversation.id}: a rated response needs at least one quality")

    @property
    def id(self) -> str:
        """The conversation's id."""
        return self.conversation.id

    def to_dict(self) -> dict[str, Any]:
        """The conversation's dict plus ``qualities: {name: annotation dict}``."""
        return self.conversation.to_dict() | {"qualities": {k: a.to_dict() for k, a in self.qualities.items()}}


@dataclass(frozen=True)
class PreferencePair:
    """Two responses to one prompt (``a`` and ``b``, ids ``<id>/a`` and ``<id>/b``) and the preferred one."""

    id: str
    group: str
    a: Conversation
    b: Conversation
    winner: str

    def __post_init__(self) -> None:
        if self.winner not in WINNERS:
            raise ValueError(f"{self.id}: winner must be one of {WINNERS}, got {self.winner!r}")
        for side, conv in (("a", self.a), ("b", self.b)):
            if conv.id != f"{self.id}/{side}":
                raise ValueError(f"{self.id}: side {side} has id {conv.id!r}, expected {self.id}/{side}")
            if conv.group != self.group:
                raise ValueError(f"{self.id}: side {side} has group {conv.group!r}, expected {self.group!r}")

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "group", "winner", "a", "b"}`` with both conversations as dicts."""
        return {"id": self.id, "group": self.group, "winner": self.winner, "a": self.a.to_dict(), "b": self.b.to_dict()}


@dataclass
class HumanSet:
    """One human-rated set as loaded: its responses or pairs, its qualities' scales and the load counts.

    ``load`` is the loader's :meth:`~explainft.datasets.base.LoadContext.summary` plus ``values_skipped``
    (``{quality: n}`` non-numeric annotator values dropped) and ``items`` (ratings or pairs loaded).
    """

    name: str
    format: str
    kind: str
    ratings: list[RatedResponse] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)
    qualities: dict[str, Scale] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"HumanSet.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "ratings" and self.pairs:
            raise ValueError("a rating set has no preference pairs")
        if self.kind == "preferences" and self.ratings:
            raise ValueError("a preference set has no rated responses")

    @property
    def items(self) -> int:
        """The number of rated responses or preference pairs."""
        return len(self.ratings) if self.kind == "ratings" else len(self.pairs)
