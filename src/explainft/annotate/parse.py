"""Parse a teacher's reply into a score and two explanations: one pure function, no I/O.

``parse_rating(text, scale, rubric)`` returns a :class:`ParsedRating`. A reply
is either valid (``score`` in 1..scale, ``error`` None) or invalid (``score``
None, ``error`` says what was wrong, ``method`` None, empty explanations). A
score is never clamped, rounded or guessed.

1. **Strict** (``method="json"``): the whole reply, stripped, optionally inside
   one ```` ```json ```` / ```` ``` ```` fence, is one JSON object with a
   ``"score"`` key (keys are matched case-insensitively).

   * The score may be a JSON integer, a float equal to an integer (``4.0``) or
     a string holding one (``"4"``, ``" 4 "``, ``"4.0"``): models quote numbers
     often and the meaning is not in doubt. ``4.5``, ``"4/5"``, ``"four"``,
     ``true``, ``null``, lists and objects are errors, as is a score outside
     1..scale ("score 7 outside 1..5"), and a ``"score"`` key given twice with
     different values (ambiguous).
   * ``"assessment"`` and ``"confidence"`` are taken as strings (stripped). A
     missing or null one becomes ``""`` and a note in ``warnings``, not an
     error: the score is what the ensemble needs, and merge counts empty
     explanations. A list of strings is joined with newlines; any other value
     is kept as its JSON text (also noted).
   * Extra keys are ignored. If the reply is a JSON object without a
     ``"score"`` key, or not JSON at all, the fallback runs.

2. **Fallback** (``method="fallback"``), anchored to the reply's own text.
   Before searching, every quote of a ``rubric`` line (the prompt's
   definition, rubric and examples, from ``prompts.rubric_lines``) is blanked
   out, so a model that copies "5: Fully natural ..." back is not read as
   scoring 5. A rubric line counts if it holds a digit and at least three
   words; a quote is found word by word, ignoring case, punctuation and
   spacing, and a reply line that is a shorter run of a rubric line's words is
   blanked whole. One exception: when only a score label stands before the
   quote on its line ("Score: 4: Mostly natural: ..."), the leading number is
   the model's own answer and is kept. Ranges (``1-5``, ``1 to 5``, ``1..5``,
   ``3–4``) are blanked too: they are scales or hedges, never a score. Then,
   in order, the first rule that finds anything decides:

   a. JSON objects with a ``"score"`` key embedded in prose or in a fence
      with text around it (nested objects too); all of them must agree.
   b. A reply that is nothing but a number (``4``, ``**4**``, ``4.``).
   c. Labelled scores: a label (score, scored, scoring, rating, rated, rate,
      grade, graded, "give it" ...) followed on the same line, within 40
      characters that hold no digit, by a number (``Score: 4``,
      ``**Score:** 3``, ``Score = 4/5``, ``"score": 4``, ``Rating: 4 out of
      5``, ``I would rate this 4 out of 5``, ``Score (1-5): 4``), or a label
      line ending in punctuation with the number alone on the next line. A
      number glued to letters, ``%``, or other digits (``45``, ``4th``,
      ``90%``, ``GPT-4``) is not a score. All labelled scores must agree; two
      different ones make the reply ambiguous (invalid). A score given "out
      of" or "/" another scale (``4/10`` on 1..5) is an error, not rescaled.
   d. Unlabelled ``N out of S`` or ``N/S`` where S is the prompt's scale.

   Explanations in the fallback: from the embedded JSON object (rule a); else
   from JSON-like ``"assessment": "..."`` fields of an incomplete JSON reply;
   else from ``Assessment:`` (or Explanation/Reasoning/Justification/
   Rationale) and ``Confidence:`` sections; else the whole reply, minus the
   lines that hold only the score label, code-fence lines and lines that are
   only a rubric quote, is the assessment and the confidence is empty.

3. **Invalid**: empty reply; no score found; a score found only inside quoted
   rubric text; a non-integer score; a score outside 1..scale; a score out of
   another scale; different scores (ambiguous); JSON cut off before any
   recoverable score. A truncated JSON reply whose ``"score": N`` survived
   is valid through rule c, with whatever explanation text survived and a
   warning.

Known limits, chosen to stay simple and conservative: numbers in words
("four") are not read; the first number after a label is taken even when it
names something else ("the score for turn 2: 4" reads 2); a reply that gives
another labelled score in passing ("I first rated it 3. Score: 4") is
ambiguous rather than guessed; rule a trusts an embedded JSON object over
labelled prose around it. The engine retries an unparsable reply.
``warnings`` notes what was tolerated (fallback used, explanation missing,
reply incomplete); it never holds a reason for refusing a score.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import AbstractSet, Any, Iterator

METHODS = ("json", "fallback")


@dataclass(frozen=True)
class ParsedRating:
    """The result of :func:`parse_rating`: ``score`` is None exactly when ``error`` is set."""

    score: int | None
    assessment: str
    confidence: str
    error: str | None
    method: str | None  # "json" | "fallback" | None (invalid)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.score is not None


def _invalid(error: str) -> ParsedRating:
    return ParsedRating(score=None, assessment="", confidence="", error=error, method=None)


# --------------------------------------------------------------------------- JSON helpers


class _Obj(dict):
    """A decoded JSON object with lowercased keys; ``conflicts`` names keys given twice with different values."""

    conflicts: tuple[str, ...] = ()


def _hook(pairs: list[tuple[str, Any]]) -> _Obj:
    obj, conflicts = _Obj(), []
    for k, v in pairs:
        key = k.strip().casefold()
        if key in obj and obj[key] != v:
            conflicts.append(key)
        obj[key] = v
    obj.conflicts = tuple(conflicts)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_hook)
_FENCE = re.compile(r"\A```[ \t]*(?:json|javascript|js)?[ \t]*\n?(?P<body>.*?)\n?[ \t]*```\Z", re.S | re.I)
_INT_STRING = re.compile(r"\A[+-]?\d{1,9}(?:\.0*)?\Z")
_MAX_EMBEDDED_TRIES = 64


def _json_score(v: Any) -> tuple[int | None, str | None]:
    """A JSON score value as an int, or the reason it is not one (range not checked)."""
    if isinstance(v, bool):
        return None, f"score is a boolean ({json.dumps(v)}), not an integer"
    if v is None:
        return None, "score is null"
    if isinstance(v, int):
        return v, None
    if isinstance(v, float):
        if not v.is_integer():
            return None, f"score {v!r} is not a whole number"
        return int(v), None
    if isinstance(v, str):
        s = v.strip()
        if not _INT_STRING.match(s):
            return None, f"score {v[:40]!r} is not an integer"
        return int(s.split(".")[0]), None
    return None, f"score is a JSON {'object' if isinstance(v, dict) else 'array'}, not an integer"


def _in_range(n: int, scale: int) -> str | None:
    return None if 1 <= n <= scale else f"score {n} outside 1..{scale}"


def _json_text(obj: dict, key: str) -> tuple[str, str | None]:
    v = obj.get(key)
    if v is None:
        return "", f"no {key} in the reply"
    if isinstance(v, str):
        return v.strip(), None if v.strip() else f"empty {key}"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "\n".join(x.strip() for x in v).strip(), f"{key} was a list of strings, joined"
    return json.dumps(v, ensure_ascii=False), f"{key} was not a string; kept as JSON text"


def _from_object(obj: _Obj, scale: int, method: str, extra: tuple[str, ...] = ()) -> ParsedRating:
    if "score" in obj.conflicts:
        return _invalid('ambiguous reply: the key "score" is given twice with different values')
    n, err = _json_score(obj["score"])
    if err is None:
        err = _in_range(n, scale)  # type: ignore[arg-type]
    if err is not None:
        return _invalid(err)
    warnings = list(extra)
    texts = {}
    for key in ("assessment", "confidence"):
        texts[key], w = _json_text(obj, key)
        if w:
            warnings.append(w)
    return ParsedRating(
        score=n,
        assessment=texts["assessment"],
        confidence=texts["confidence"],
        error=None,
        method=method,
        warnings=tuple(warnings),
    )


def _strict(text: str, scale: int) -> ParsedRating | None:
    m = _FENCE.match(text)
    body = m.group("body").strip() if m else text
    if not body.startswith("{"):
        return None
    try:
        obj = _DECODER.decode(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or "score" not in obj:
        return None
    return _from_object(obj, scale, "json")


def _embedded(text: str) -> Iterator[_Obj]:
    """JSON objects with a "score" key inside ``text``, left to right; objects without one are searched inside."""
    i, tries = text.find("{"), 0
    while i != -1 and tries < _MAX_EMBEDDED_TRIES:
        tries += 1
        try:
            obj, end = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict) and "score" in obj:
            yield obj
            i = text.find("{", end)
        else:
            i = text.find("{", i + 1)


# --------------------------------------------------------------------------- masking

_WORD = re.compile(r"[^\W_]+")
_DIGIT = re.compile(r"\d")
_MASK = "\x00"  # rubric quotes: a label cannot reach across them
_RANGE_MASK = "~"  # ranges: a label may reach across them ("Score (1-5): 4")
_LABEL = (
    r"(?<![^\W_])(?:score|scored|scoring|rating|rated|rate|grade|graded"
    r"|(?:give|gave|giving)\s+(?:it|this(?:\s+response)?|the\s+response))(?![^\W_])"
)
_LABEL_RE = re.compile(_LABEL, re.I)
_NUMBER = r"\d{1,9}(?:\.\d{1,9})?"
_RANGE = re.compile(
    rf"(?<![\w.]){_NUMBER}[^\S\n]*(?:-|–|—|‒|−|\bto\b|\.\.\.?|…|\bthrough\b)[^\S\n]*"
    rf"{_NUMBER}(?![\w]|\.\d)",
    re.I,
)
_MIN_RUBRIC_WORDS = 3


@dataclass(frozen=True)
class _RubricIndex:
    patterns: tuple[tuple[re.Pattern, bool], ...]  # (quote pattern, first word is a number)
    joined: tuple[str, ...]  # " w1 w2 ... " of each guarded rubric line


@lru_cache(maxsize=64)
def _rubric_index(rubric: frozenset[str]) -> _RubricIndex:
    patterns, joined = [], []
    for entry in sorted(rubric):
        for line in entry.splitlines():
            words = _WORD.findall(line.lower())
            if len(words) < _MIN_RUBRIC_WORDS or not any(_DIGIT.search(w) for w in words):
                continue
            body = "".join(r"[\W_]+" + re.escape(w) for w in words[1:])
            patterns.append(
                (re.compile(rf"(?<![^\W_])({re.escape(words[0])}){body}(?![^\W_])", re.I), words[0].isdigit())
            )
            joined.append(" " + " ".join(words) + " ")
    return _RubricIndex(tuple(patterns), tuple(joined))


def _blank(chars: list[str], start: int, end: int, fill: str) -> None:
    for k in range(start, end):
        if chars[k] != "\n":
            chars[k] = fill


def _mask_rubric(text: str, rubric: AbstractSet[str]) -> str:
    """``text`` with quotes of rubric lines replaced by NULs (same length, newlines kept)."""
    if not rubric:
        return text
    index = _rubric_index(frozenset(rubric))
    if not index.patterns:
        return text
    chars = list(text)
    for pattern, numbered in index.patterns:
        for m in pattern.finditer(text):
            start = m.start()
            prefix = text[text.rfind("\n", 0, start) + 1 : start]
            if numbered and _LABEL_RE.search(prefix) and not _DIGIT.search(prefix):
                start = m.end(1)  # "Score: 4: Mostly natural ..." keeps its own 4
            _blank(chars, start, m.end(), _MASK)
    pos = 0
    for line in text.split("\n"):
        words = _WORD.findall(line.lower())
        if len(words) >= _MIN_RUBRIC_WORDS and any(_DIGIT.search(w) for w in words):
            run = " " + " ".join(words) + " "
            if any(run in j for j in index.joined):
                _blank(chars, pos, pos + len(line), _MASK)
        pos += len(line) + 1
    return "".join(chars)


def _mask_ranges(text: str) -> str:
    return _RANGE.sub(lambda m: _RANGE_MASK * len(m.group()), text)


# --------------------------------------------------------------------------- score patterns

_SIGNED = r"(?<![\w.])(?P<sign>[-−](?=\d))?(?P<num>" + _NUMBER + r")(?![\w%]|\.\d)"
_OUT_OF = r"(?P<tail>[^\S\n]*\(?[^\S\n]*(?:/|out[^\S\n]+of)[^\S\n]*(?P<of>\d{1,9})(?![\w]|\.\d))?"
_LABELLED = re.compile(
    _LABEL + r"(?:[^\d\n\x00]{0,40}?|[^\w\n\x00]{0,12}\n[^\S\n]*\n?[^\w\n\x00]{0,12}?)" + _SIGNED + _OUT_OF,
    re.I,
)
_UNLABELLED_OUT_OF = re.compile(
    r"(?<![\w.])(?P<sign>)(?P<num>\d{1,9})[^\S\n]*(?:/|out[^\S\n]+of)[^\S\n]*"
    r"(?P<of>\d{1,9})(?![\w]|\.\d)",
    re.I,
)
_BARE = re.compile(r"\A[\s*_\"'`(\[]*(?P<sign>[-−])?(?P<num>" + _NUMBER + r")[\s*_\"'`)\].]*\Z")


def _decide(matches: list[re.Match], scale: int) -> tuple[int | None, str | None]:
    """One score from agreeing matches (groups sign, num, of), or the reason there is none."""
    values: list[Decimal] = []
    for m in matches:
        try:
            v = Decimal(("-" if m.group("sign") else "") + m.group("num"))
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
            continue
        if v not in values:
            values.append(v)
    if len(values) > 1:
        return None, "ambiguous reply: different scores " + ", ".join(_fmt(v) for v in values)
    (v,) = values
    if v != v.to_integral_value():
        return None, f"score {_fmt(v)} is not a whole number"
    n = int(v)
    other = sorted({int(m.groupdict()["of"]) for m in matches if m.groupdict().get("of")} - {scale})
    if other:
        return None, f"score {n} given out of {other[0]}, but the scale is 1..{scale}"
    return n, _in_range(n, scale)


def _fmt(v: Decimal) -> str:
    return str(int(v)) if v == v.to_integral_value() else str(v.normalize())


# --------------------------------------------------------------------------- fallback explanations

_SECTION = re.compile(
    r"\A[^\S\n]*[*_#>\-]*[^\S\n]*(?P<key>assessment|explanation|reasoning|justification|rationale|confidence)"
    r"[^\S\n]*[*_]*[^\S\n]*[:：][*_]*[^\S\n]*(?P<rest>.*)\Z",
    re.I,
)
_JSON_FIELD = re.compile(r'"(?P<key>assessment|confidence)"\s*:\s*"(?P<val>(?:[^"\\]|\\.)*)(?P<close>"?)', re.I | re.S)
_FENCE_LINE = re.compile(r"\A[^\S\n]*```")


def _unescape(raw: str) -> str:
    for cut in (raw, raw[:-1], raw[:-5]):
        try:
            return json.loads('"' + cut + '"')
        except ValueError:
            continue
    return raw


def _score_lines(text: str, spans: list[tuple[int, int]]) -> set[int]:
    """Indexes of the lines that hold nothing but a score label and its number."""
    out, starts, pos = set(), [], 0
    lines = text.split("\n")
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    for s, e in spans:
        first = text.count("\n", 0, s)
        last = text.count("\n", 0, e)
        rest = text[starts[first] : s] + text[e : starts[last] + len(lines[last])]
        if not _WORD.search(rest):
            out.update(range(first, last + 1))
    return out


def _fallback_texts(text: str, unquoted: str, spans: list[tuple[int, int]]) -> tuple[str, str, list[str]]:
    """(assessment, confidence, notes) of a reply scored by rule c/d; ``unquoted`` is ``text`` with rubric quotes
    blanked (same length): a line that is nothing but a rubric quote is not part of the explanation."""
    fields: dict[str, str] = {}
    for m in _JSON_FIELD.finditer(text):
        fields.setdefault(m.group("key").lower(), _unescape(m.group("val")).strip())
    if fields:
        return fields.get("assessment", ""), fields.get("confidence", ""), ["explanation taken from incomplete JSON"]
    skip = _score_lines(text, spans)
    buckets: dict[str, list[str]] = {"prose": [], "assessment": [], "confidence": []}
    seen: set[str] = set()
    current = "prose"
    for i, (line, bare) in enumerate(zip(text.split("\n"), unquoted.split("\n"))):
        if i in skip or _FENCE_LINE.match(line) or (_MASK in bare and not _WORD.search(bare)):
            continue
        m = _SECTION.match(line)
        if m:
            current = "confidence" if m.group("key").lower() == "confidence" else "assessment"
            seen.add(current)
            line = m.group("rest")
        buckets[current].append(line)
    assessment = "\n".join(buckets["assessment" if "assessment" in seen else "prose"]).strip()
    confidence = "\n".join(buckets["confidence"]).strip()
    return (
        assessment,
        confidence,
        ["explanation taken from labelled sections" if seen else "explanation is the reply's prose"],
    )


# --------------------------------------------------------------------------- entry point


def parse_rating(text: str, scale: int, rubric: AbstractSet[str] = frozenset()) -> ParsedRating:
    """Parse one teacher reply on a 1..``scale`` prompt; ``rubric`` from ``prompts.rubric_lines``.

    Pure and deterministic; see the module docstring for the rules. Raises only for caller errors
    (``text`` not a string, ``scale`` not an integer >= 2).
    """
    if not isinstance(text, str):
        raise TypeError(f"reply must be a string, got {type(text).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale!r}")
    stripped = text.strip()
    if not stripped:
        return _invalid("empty reply")

    strict = _strict(stripped, scale)
    if strict is not None:
        return strict

    unquoted = _mask_rubric(stripped, rubric)

    # a. JSON objects embedded in prose
    objects = list(_embedded(unquoted))
    if objects:
        scores = []
        for obj in objects:
            n, err = _json_score(obj["score"]) if "score" not in obj.conflicts else (None, "conflict")
            key = n if err is None else repr(obj["score"])
            if key not in scores:
                scores.append(key)
        if len(scores) > 1:
            return _invalid("ambiguous reply: JSON objects with different scores " + ", ".join(map(str, scores)))
        return _from_object(objects[0], scale, "fallback", ("score from a JSON object inside other text",))

    masked = _mask_ranges(unquoted)

    # b. a bare number
    m = _BARE.match(masked)
    if m:
        n, err = _decide([m], scale)
        if err is not None:
            return _invalid(err)
        return ParsedRating(
            score=n,
            assessment="",
            confidence="",
            error=None,
            method="fallback",
            warnings=("the reply is only a number", "no assessment in the reply", "no confidence in the reply"),
        )

    # c. labelled scores, d. unlabelled "N out of scale"
    matches = list(_LABELLED.finditer(masked))
    if not matches:
        matches = [m for m in _UNLABELLED_OUT_OF.finditer(masked) if int(m.group("of")) == scale]
    if matches:
        n, err = _decide(matches, scale)
        if err is not None:
            return _invalid(err)
        assessment, confidence, notes = _fallback_texts(stripped, unquoted, [(m.start(), m.end()) for m in matches])
        warnings = ["score from labelled text"] + notes
        if stripped.startswith(("{", "```")):
            warnings.append("the reply is incomplete JSON")
        warnings += [
            f"no {k} in the reply" for k, v in (("assessment", assessment), ("confidence", confidence)) if not v
        ]
        return ParsedRating(
            score=n,
            assessment=assessment,
            confidence=confidence,
            error=None,
            method="fallback",
            warnings=tuple(warnings),
        )

    # why nothing was found
    if unquoted != stripped:
        return _invalid("no score found outside text quoted from the rubric")
    if stripped.startswith(("{", "```")):
        return _invalid("reply is not valid JSON (truncated?) and holds no recoverable score")
    return _invalid("no score found in the reply")
