"""How a rating is worded: the assessment from a dimension's notes, and the confidence with its reasons.

Each dimension (:mod:`.dimensions`) collects :class:`Notes`: observations,
each with a severity and one or more phrasings. The **assessment** is the
three most severe notes, each in one of its phrasings, chosen by the rating's
hash (:func:`word_assessment`).

**confidence** = ``0.4 margin + 0.4 strength + 0.2 length``: ``margin`` is
the distance of ``x * scale`` from the nearest line between two scores over
half a bin; ``strength`` how clear-cut the dimension's evidence is (a strong
repetition, boilerplate, cut or vague signal, or an embedding cosine far from
the middle that agrees with the word-level evidence, is strong; word overlap
alone is weak); ``length`` 0 below 4 words, 1 from 12. >= 0.7 high, >= 0.45
moderate, else low; the text gives the reasons (:func:`word_confidence`).
"""

from __future__ import annotations

from .evidence import Evidence
from .text import clip, quote

_LEVEL_WORDS = {"high": "High", "moderate": "Moderate", "low": "Low"}


class Notes:
    """Candidate sentences for an assessment: (severity, alternative phrasings)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, tuple[str, ...]]] = []

    def add(self, severity: float, *phrasings: str) -> None:
        self.items.append((severity, phrasings))

    def top(self) -> float:
        return max(n[0] for n in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


def injection_note(ev: Evidence) -> list[str]:
    """The phrasings of the note every dimension adds for an instruction aimed at the rater."""
    q = quote(ev.injections[0], 50)
    return [
        f'It contains an instruction aimed at the rater ("{q}"), which was ignored and counts against it.',
        f'An embedded instruction to the rater ("{q}") was disregarded and is itself a flaw.',
    ]


def join_terms(items: list[str], limit: int = 5) -> str:
    """Up to ``limit`` terms, each in single quotes: 'a', 'b' and 'c'."""
    items = [f"'{i}'" for i in items[:limit]]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def word_assessment(notes: Notes, h: float) -> str:
    """The three most severe notes, each in one of its phrasings (chosen by the rating's hash)."""
    top = sorted(notes.items, key=lambda n: -n[0])[:3]
    pick = int(h * 1_000_003)
    return " ".join(options[(pick + i) % len(options)] for i, (_, options) in enumerate(top))


def word_confidence(
    ev: Evidence, x: float, scale: int, score: int, strength: float, dim: str, embedded: bool, h: float
) -> tuple[str, str]:
    """(level, text): how sure the rating is (see the module docstring), with the reasons that decide it."""
    pos = x * scale
    bound = min(range(1, scale), key=lambda b: abs(pos - b))  # nearest line between two scores
    margin = clip(abs(pos - bound) / 0.5)
    length = clip((ev.n_resp_words - 3) / 9)
    value = 0.4 * margin + 0.4 * strength + 0.2 * length
    level = "high" if value >= 0.7 else "moderate" if value >= 0.45 else "low"
    pros, cons = [], []
    if ev.n_resp_words < 4:
        n = ev.n_resp_words
        cons.append(f"the response is only {n} word{'s' if n != 1 else ''} long, which gives little to go on")
    if strength >= 0.75:
        pros.append("the evidence is clear-cut")
    elif strength < 0.5:
        cons.append("the signals are weak or mixed")
    if dim == "on_topic" and embedded and strength >= 0.6:
        pros.append("semantic and word-level evidence agree" if strength >= 0.8 else "semantic similarity is decisive")
    if dim == "on_topic" and not embedded:
        cons.append("relevance was judged from word overlap only")
    if margin >= 0.6:
        pros.append(
            f"the score is well inside its band, not near {bound} or {bound + 1}"
            if 1 < score < scale
            else "the score is at the end of the scale"
        )
    elif margin < 0.35:
        cons.append(f"the case sits near the line between {bound} and {bound + 1}")
    if ev.n_resp_words >= 12 and not cons:
        pros.append("the response is long enough to judge")
    if level == "high":
        r = "; ".join(pros[:2]) or "the evidence points one way"
        if cons:
            r += f", although {cons[0]}"
    elif level == "low":
        r = "; ".join(cons[:3]) or "no single signal settles it"
    else:
        r = "; ".join((pros[:1] + cons[:2]) or ["the evidence is only moderately strong"])
    lead = ["{L} confidence: {r}.", "{L} confidence, because {r}.", "Confidence is {l}: {r}."][int(h * 7919) % 3]
    return level, lead.format(L=_LEVEL_WORDS[level], l=level, r=r)
