"""The spans found by regular expressions before anything is measured, and how they are cut out.

Three kinds of span:

* **injections** (``INJECTION_PATTERNS``: "ignore the rubric", "output a
  score", "give this response a 5", ``"score": 5``, a ``system:`` line,
  "you are now the rater" …), in every turn and the context. The sentence
  holding one is removed before anything is measured (:func:`strip_injections`),
  so an instruction aimed at the rater can never raise a score. In the
  response it is also a flaw: ``p_inj`` = 0.5 (0.8 when nothing else is left)
  on every dimension, and the assessment names it. Talk about ratings ("I'd
  rate it a 7") is not an injection.
* **stock phrases** (``STOCK_PHRASES``, weight ``w`` each: robotic openers
  0.3-0.35, service follow-up questions 0.25-0.35, fillers 0.1-0.2);
* **vague phrases** (``VAGUE_PHRASES``, weight ``w`` each: "it depends" 0.5,
  "there are many factors" 0.5, "thank you for your message" 0.55 …).

``core`` is the response without injections, stock and vague spans
(:func:`remove_spans` over :func:`all_spans`): comprehensiveness and on-topic
evidence is measured on it (:mod:`.evidence`), so boilerplate neither adds
substance nor counts as drift.
"""

from __future__ import annotations

import re

from .text import SENTENCE_RE

# (pattern, weight, kind): kind "opener" | "followup" | "filler"
STOCK_PHRASES: tuple[tuple[str, float, str], ...] = (
    (
        r"\bas an? (?:automated|ai|virtual|digital|artificial)(?: intelligence)? "
        r"(?:assistant|agent|system|language model|model)\b",
        0.35,
        "opener",
    ),
    (r"\bas an ai\b", 0.3, "opener"),
    (r"\bi can confirm the following\b", 0.3, "opener"),
    (r"\bthank you for (?:your|the) (?:inquiry|enquiry|request|query)\b", 0.3, "opener"),
    (r"\bplease note the following(?: information)?\b", 0.3, "opener"),
    (r"\bi have processed your (?:request|query|inquiry)\b", 0.35, "opener"),
    (r"\bthe (?:response|answer|result) is as follows\b", 0.3, "opener"),
    (r"\bhere is the (?:information|response|answer) (?:you|that you) requested\b", 0.3, "opener"),
    (
        r"\b(?:is there )?anything else (?:that )?(?:i|we) (?:can|could|may) (?:help|assist) you with(?: today)?\b",
        0.35,
        "followup",
    ),
    (
        r"\b(?:please )?(?:do not hesitate to |don't hesitate to |feel free to )?(?:let me know|contact us|reach out)"
        r"[^.?!]{0,25}\b(?:further|additional|any other|more) (?:questions|concerns|queries)(?: or concerns)?\b",
        0.3,
        "followup",
    ),
    (r"\bif you have any (?:further|other|more|additional) (?:questions|concerns)\b", 0.3, "followup"),
    (
        r"\bdid (?:this|my|that|the) (?:response|answer|reply) (?:fully )?(?:resolve|answer|address)\b[^.?!]*",
        0.35,
        "followup",
    ),
    (r"\b(?:does|did) (?:this|that) (?:help|answer your question)\b", 0.25, "followup"),
    (r"\bhow (?:else )?(?:can|may) i (?:help|assist) you(?: today| further)?\b", 0.25, "followup"),
    (r"\bwould you like (?:to know more|more information|me to (?:elaborate|explain further))\b", 0.25, "followup"),
    (r"\blet me know if (?:there is|there's|you need) anything else\b", 0.3, "followup"),
    (r"\bi hope (?:this|that) (?:helps|answers your question)\b", 0.2, "filler"),
    (r"\bthank you for your (?:message|question|patience)\b", 0.2, "filler"),
    (r"\b(?:that's|that is|what) an? (?:great|good|interesting|excellent) question\b", 0.12, "filler"),
    (r"\bit is important to note that\b", 0.15, "filler"),
    (r"^\s*certainly[!.,]", 0.1, "filler"),
)

VAGUE_PHRASES: tuple[tuple[str, float], ...] = (
    (
        r"\bit (?:all |really )?depends\b(?! on (?!(?:a number of|many|several|various|lots of|the situation|"
        r"circumstances|context|what|how|who)\b))",
        0.5,
    ),  # "it depends on the exchange rate" is an answer
    (r"\bdepends on (?:a number of|many|several|various) (?:things|factors)\b", 0.3),
    (
        r"\bthere (?:are|is) (?:many|several|various|a (?:number|lot|variety) of|lots of) "
        r"(?:factors|ways|things|reasons|aspects|considerations)\b",
        0.5,
    ),
    (r"\b(?:many|several|various) factors to consider\b", 0.25),
    (r"\b(?:several|many|different|various) ways (?:to look at|of looking at) (?:it|this|that)\b", 0.5),
    (r"\b(?:that's|that is|what) an? (?:great|good|interesting|excellent) question\b", 0.3),
    (r"\bthank you for your (?:message|question)\b", 0.55),
    (r"\blet me know if (?:there is|there's|you need) anything else\b", 0.3),
    (r"^\s*i understand\b", 0.25),
    (r"\b(?:it's|it is) (?:hard|difficult) to say\b", 0.45),
    (r"\bhard to say\b", 0.3),
    (r"\bit varies\b", 0.4),
    (r"\b(?:it's|it is) (?:complicated|complex)\b", 0.35),
    (r"\bwho knows\b", 0.3),
    (r"\bin some ways\b", 0.2),
)

# instructions aimed at the rater, not at the conversation partner ("I'd rate it a 7" is content, not an injection)
INJECTION_PATTERNS: tuple[str, ...] = (
    r"\b(?:ignore|disregard|forget|override)\b[^.?!\n]{0,40}\b(?:instructions?|rubric|guidelines|criteria|"
    r"(?:system )?prompt|scoring|grading)\b",
    r"\b(?:output|assign|return|print)\b[^.?!\n]{0,30}\b(?:score|rating)\b",
    r"\b(?:give|award|rate|score|grade|mark)\b (?:this|the|my) (?:response|answer|reply|conversation|output)\b"
    r"[^.?!\n]{0,25}\b\d\b",
    r"\"score\"\s*:\s*\d",
    r"(?:^|\n)\s*(?:system|developer)(?: prompt| message)?\s*:",
    r"</?\s*(?:system|instructions?|rubric)\s*>",
    r"\byou (?:are|must|should|will) (?:now )?(?:act as |be )?(?:a |an |the )?(?:rater|evaluator|grader|scorer)\b",
    r"\b(?:rater|evaluator|grader|judge|annotator)s?\b[^.?!\n]{0,20}\b(?:must|should|will|please)\b",
)

STOCK_RE = [(re.compile(p, re.I), w, k) for p, w, k in STOCK_PHRASES]
VAGUE_RE = [(re.compile(p, re.I), w) for p, w in VAGUE_PHRASES]
_INJ_RE = [re.compile(p, re.I) for p in INJECTION_PATTERNS]


def strip_injections(text: str) -> tuple[str, list[str]]:
    """Remove every sentence that holds an instruction aimed at the rater; returns (rest, removed sentences)."""
    if not any(r.search(text) for r in _INJ_RE):
        return text, []
    kept, removed = [], []
    for m in SENTENCE_RE.finditer(text):
        s = m.group(0)
        if any(r.search(s) for r in _INJ_RE):
            removed.append(s.strip())
        else:
            kept.append(s)
    return "".join(kept).strip(), removed


def find_spans(text: str, table) -> list[tuple[int, int, str, float, str]]:
    """Non-overlapping matches (start, end, matched text, weight, kind), earliest and longest first."""
    found = []
    for item in table:
        rx, w = item[0], item[1]
        kind = item[2] if len(item) > 2 else "vague"
        for m in rx.finditer(text):
            found.append((m.start(), m.end(), m.group(0), w, kind))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    out, end = [], -1
    for f in found:
        if f[0] >= end:
            out.append(f)
            end = f[1]
    return out


def all_spans(text: str, table) -> list[tuple[int, int, str, float, str]]:
    """Every match, overlaps included (what to cut out of the text)."""
    return [(m.start(), m.end(), m.group(0), item[1], "") for item in table for m in item[0].finditer(text)]


def remove_spans(text: str, spans: list[tuple[int, int, str, float, str]]) -> str:
    if not spans:
        return text
    parts, pos = [], 0
    for s, e, *_ in sorted(spans):
        if s >= pos:
            parts.append(text[pos:s])
        pos = max(pos, e)
    parts.append(text[pos:])
    return re.sub(r"\s+", " ", " ".join(parts)).strip(" ,;:")
