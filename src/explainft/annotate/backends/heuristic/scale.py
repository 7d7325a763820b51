"""From quality to score: where a quality ``q`` in [0, 1] lands on a 1..4 or 1..5 scale.

``h(v)`` = sha256(teacher name, item id, dimension, v) -> uniform [0, 1);
``jitter = noise (1.5 (2 h("") - 1) + 0.5 (2 h(variant) - 1))``: a teacher's
standing opinion of the item, shared by its four prompts, plus a per-prompt
wobble (both computed by :meth:`HeuristicBackend.judge`).
``x = clip(q ** strictness + jitter)``. Plain prompts show central
tendency, ``x = 0.5 + 0.75 (x - 0.5)``; prompts with worked examples are
anchored and use the ends of the scale, ``x = clip(0.5 + 1.1 (x - 0.5))``.
``score = 1 + min(scale - 1, floor(x * scale))``: the same quality on equal
bins of 1..4 or 1..5 (:func:`position`, :func:`score_at`).
"""

from __future__ import annotations

from .text import clip


def position(q: float, variant: str, strictness: float = 1.0, jitter: float = 0.0) -> float:
    """Where quality ``q`` lands on [0, 1] under a prompt variant (see the module docstring)."""
    x = clip(clip(q) ** strictness + jitter)
    if variant.endswith("_examples"):
        return clip(0.5 + 1.1 * (x - 0.5))  # worked examples anchor the ends of the scale
    return 0.5 + 0.75 * (x - 0.5)  # a bare rubric: central tendency


def score_at(x: float, scale: int) -> int:
    """Equal-width bins of [0, 1] -> 1..scale."""
    return 1 + min(scale - 1, int(x * scale))
