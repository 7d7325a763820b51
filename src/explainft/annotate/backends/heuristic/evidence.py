"""The evidence measured on one conversation: teacher-independent, cached by its texts (never its meta).

One idea, over 500 lines: the measures, and the word tables they need.

:func:`analyse` removes instructions aimed at the rater from every turn and
the context, finds the response's stock and vague phrases and its ``core``
(:mod:`.phrases`), and measures what the dimensions are rated from
(:mod:`.dimensions`). Every ``p``, ``t``, ``v`` is in [0, 1]. Fenced code is
left out of the style measures (code repeats itself and ends as it must).

**request** (shared): the last user turn; a long one (>= 80 words) that pastes a text and then asks about it
is split (:func:`split_reference`): what follows the reference is the request, the reference counts as
context. ``n_user`` (for ``p_len``) still counts the whole message.

**truncation** ``t`` (shared): an emoji end counts as closed; a short last line of its own (<= 5 words: a
signature, a score, a list item) 0.1; 0 when the response ends in ``.!?…)]"'*``, an
emoticon, or a closed code fence; an unclosed fence 0.85; otherwise 0.85 when
the last word is a dangling function word (``the``, ``of``, ``and``, ``with``
…; not the "A" of "Vitamin A") or the text ends in ``, ; : -``; 0.45 when it
is a word that seldom ends a sentence (``is``, ``would``, ``ever`` …); 0.55
when earlier sentences end properly but the last does not (abbreviations such
as "Mrs." do not count); 0.35 for >= 8 words (0.2 if the user does not
punctuate either); 0.2 if the user punctuates; else 0.1 (short casual lines
often lack a full stop). +0.3 for unbalanced brackets or quotes. Boilerplate
wrapped around a cut answer hides the cut, so a dangling end of ``core``
(0.85) counts too.

naturalness
    ``p_rep``: a phrase of n words repeated back to back k times, when its
    words are not all the same or k n >= 3 (not "ha ha", "bye bye"):
    ``min(0.85, 0.5 + 0.1 (k - 2) + 0.05 min(n - 2, 3))``; else the same
    sentence (>= 3 words) twice: 0.6; else five-word phrases with >= 2 content
    words recurring (two distinct phrases, overlapping windows of one longer phrase counting as one, or one
    three times):
    ``min(0.3, 1.5 * repeated share)``.
    Back-to-back repeats are looked for within a line and between markdown markers (a heading echoed by the
    text under it is layout); the scattered kind counts recurring five-word phrases (a recurring name is the
    topic, not padding).
    ``p_script = min(0.85, 1 - prod(1 - w))`` over stock phrases.
    ``p_start`` = 0.4 when the response starts mid-sentence (:func:`_mid_start`).
    ``copy`` = share of the response's word 8-grams found verbatim in the earlier turns and context;
    ``p_copy = clip((copy - 0.25) / 0.5)``, 0 when the request asks to extract or quote.
    ``p_len``: for small talk and statements, a reply of
    ``n_r > 40`` prose words and ``n_r > 8 n_u``:
    ``min(0.35, 0.1 + 0.15 log2(n_r / (8 n_u)))`` (a question or a task invites a long answer: none);
    a reply of <= 2 words to a request of >= 25 words: 0.15.

comprehensiveness
    request type (last user turn): greeting/small talk, open ("how do",
    "why", "explain", "can you write" …), reported problem ("my X won't …"),
    yes/no, wh-question, statement; ``need`` (content words a full answer
    has, ``NEED``) = 1, 8, 4, 1.5, 3, 2 (scaled by the profile, see :mod:`.dimensions`).
    ``n_eff`` = distinct content stems of the core (vague vocabulary such as
    "factors" excluded) + min(1, 0.2 * distinct function words).
    ``cov`` = share of the request's content stems matched in the core (none
    for greetings or requests without content words).
    ``v = min(0.9, 1 - prod(1 - w))`` over vague phrases.
    ``depth = 1 - sqrt(need / n_eff)`` when ``n_eff > need``, else 0: 0.5 at 4x need, 0.75 at 16x, still
    growing beyond (no ceiling short of 1).
    ``refusal`` (:func:`_refusal`): 0.9 for a refusal with little else, 0.4 when it goes on, 0.15 for an
    "As an AI, I don't have …" disclaimer in front of an answer.
    Open requests include imperative tasks: a sentence or clause (after ``, ; :``) that starts, after an
    optional "ok/now/so/then/also/and", "can/could/would/will you" and "please", with a task verb in base
    form (``TASK_VERBS``: "write", "extract", "rank", "fix", "replace", "pick", "classify", "translate" …),
    so a multi-sentence instruction with one such sentence is open; also "what are some …", "give me …",
    "I need …". "whats" (no apostrophe) counts as a wh-word.

on_topic (lexical)
    ``grounded`` = share of the core's content stems that match the
    request (last user turn 1, earlier turns and context 0.7); ``recall`` =
    share of the request's stems matched; ``char`` = cosine of character
    3-gram counts of the two sets of content stems;
    ``lex = clip(0.3 grounded + 0.4 recall + 0.3 min(1, char / 0.5))``.
    ``fit`` in {0, 1}: the reply has the form the request calls for (a
    greeting back, a direct yes/no, code for "write a function", a fix for a
    reported problem, a cause for "why", steps for "how do I", a number for
    "how many/when", a proper name for "who/where", a definition for "what
    is"). ``person`` in {0, 1}: asked about "you" it answers as "I" (or the
    reverse). ``drift = clip((ungrounded stems - 4) / 8) (1 - recall)(1 - lex)``.
    ``q_lex = clip(0.4 + 0.6 lex + 0.1 person + 0.2 fit - 0.25 drift - 0.35 v)``;
    a reply with no content words of its own is weakly on-topic if it is a
    vague nod (``0.52 - 0.25 v``), off-topic if it is bare boilerplate (0.1).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from ....records import Conversation
from .phrases import (
    STOCK_RE,
    VAGUE_RE,
    all_spans,
    find_spans,
    remove_spans,
    strip_injections,
)
from .text import (
    SENTENCE_RE,
    STOPWORDS,
    clip,
    content_stems,
    content_words,
    quote,
    stems_match,
    words,
)

# last words that leave a sentence hanging
DANGLING = frozenset(
    """
the a an of to in on at for with by from and or but as than into about because if when while nor whose
my your his her their our its these those very some every each such i we they he she whether although
though unless until onto upon between among through during via per
""".split()
)
# last words that seldom end a sentence (but can: "I probably would")
WEAK_DANGLING = frozenset(
    """
is are was were be been being am has have had will would can could should shall must may might do does did not
more most any so than some whose which who ever just also
""".split()
)
ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "jr",
        "sr",
        "st",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "prof",
        "no",
    }
)

_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.S)
_END_PUNCT = tuple(".!?…)]\"'»”’*") + (":)", ":-)", ":(", ";)", ":d", ":p")

_GREETING_RE = re.compile(
    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening|day|night)|"
    r"how are you|how(?:'s| is) it going|how do you do|what'?s up|sup|yo|thanks|thank you|"
    r"bye|goodbye|see you|nice to meet you)\b",
    re.I,
)
# verbs in base form that open a task ("Extract …", "Please rank …", "Can you fix …", "…, then summarize …")
TASK_VERBS = (
    r"write|rewrite|re-write|summari[sz]e|compose|draft|create|generate|outline|list|give|provide|brainstorm|"
    r"come up with|plan|make|tell|name|suggest|recommend|show|teach|translate|find|calculate|compute|solve|"
    r"compare|analy[sz]e|predict|help|extract|rank|fix|replace|pick|choose|select|classify|categori[sz]e|sort|"
    r"convert|correct|edit|improve|paraphrase|rephrase|shorten|expand|describe|explain|define|identify|"
    r"design|build|implement|develop|draw|derive|estimate|evaluate|review|proofread|unscramble|complete|"
    r"continue|imagine|act as|pretend|prepare|organi[sz]e|format|simplify|change|add|remove|update"
)
_OPEN_RE = re.compile(
    r"\b(?:(?:can|could|would|will) you (?:please )?(?:write|explain|tell|describe|show|give|"
    r"help|list|make|create|recommend|suggest|summari[sz]e|teach)|"
    r"how (?:do|does|did|can|could|should|would|will|to|is|are|was|were)|"
    r"why|explain|describe|tell me (?:about|more)|elaborate|compare|discuss|"
    r"what (?:are|is) the (?:difference|differences|benefits|advantages|disadvantages|reasons?|"
    r"causes?|best way|pros)|what(?: are|'re) some|give me|"
    r"what do you think|what should|in what ways?|walk me through|steps)\b|"
    r"(?:^|[.!?:;,\n]\s*)(?:(?:ok(?:ay)?|now|so|then|also|and),? )?(?:(?:can|could|would|will) you )?"
    r"(?:please )?(?:" + TASK_VERBS + r")\b|"
    r"\bi(?: need| want|'d like| would like) "
    r"(?:you to|a|an|some|\d+|to (?:write|know|learn|make|create|build))\b",
    re.I | re.M,
)
_YESNO_RE = re.compile(
    r"^\W*(?:do|does|did|are|is|was|were|can|could|would|will|have|has|had|should|may|shall|am|"
    r"won't|don't|doesn't|isn't|aren't|can't)\b",
    re.I,
)
_WH_RE = re.compile(
    r"\b(?:what|whats|who|where|when|which|whose|whom|how (?:many|much|old|long|far|big|tall))\b",
    re.I,
)
_YESNO_ANSWER_RE = re.compile(
    r"^\W*(?:yes|yeah|yep|no|nope|nah|sure|of course|certainly|definitely|not|never|"
    r"maybe|probably|perhaps|absolutely|"
    r"i (?:do|don't|am|'m|can|can't|have|haven't|did|didn't|"
    r"would|will|think|guess|like|love|hate|know)|i'm|it (?:is|was|does|can)|that's|"
    r"they (?:are|do))\b",
    re.I,
)
_GREETING_ANSWER_RE = re.compile(
    r"^\W*(?:hi|hello|hey|good (?:morning|afternoon|evening|day)|greetings|howdy|"
    r"i(?:'m| am) (?:fine|good|great|well|ok|okay|doing)|fine|good|great|not bad|"
    r"you're welcome|no problem|bye|goodbye|see you|nice to meet)\b",
    re.I,
)
_DEFINITION_RE = re.compile(
    r"^\W*(?:a|an|the|it|it's|he|she|they|this|that|[a-z]+ (?:is|are|was|were))\b|"
    r"\b(?:is|are|was|were|means|refers to)\b",
    re.I,
)


def _char_grams(stems: Iterable[str]) -> Counter:
    c: Counter = Counter()
    for s in stems:
        s = f"#{s}#"
        for i in range(len(s) - 2):
            c[s[i : i + 3]] += 1
    return c


def _cosine(a: Counter, b: Counter) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


@dataclass(frozen=True)
class Evidence:
    """Everything measured on one conversation (teacher-independent, cached)."""

    # texts
    request: str  # last user turn (injections removed)
    history: str  # earlier turns + context (injections removed)
    response: str  # response with injections removed
    core: str  # response without stock / vague phrases
    n_resp_words: int
    n_user_words: int
    # shared
    injections: tuple[str, ...]
    truncation: float
    trunc_tail: str
    # naturalness
    p_rep: float
    rep_phrase: str
    rep_times: int
    rep_kind: str
    p_script: float
    stock: tuple[tuple[str, str], ...]  # (matched text, kind)
    p_len: float
    p_start: float  # the response starts mid-sentence
    # comprehensiveness
    request_type: str
    req_stems: tuple[str, ...]
    covered: tuple[str, ...]
    missing: tuple[str, ...]
    n_eff: float
    n_core: int  # distinct content stems of the core
    vague: float
    refusal: float  # declines the request
    copy: float  # share of the response's word 8-grams copied from earlier turns / context
    p_copy: float  # copying instead of doing the task
    depth: float  # substance beyond the minimum, growing without a hard ceiling
    vague_phrases: tuple[str, ...]
    # on-topic
    grounded: float
    recall: float
    char_cos: float
    lex: float
    fit: int
    fit_reason: str
    person: int
    drift: float
    ungrounded: tuple[str, ...]
    shared: tuple[str, ...]

    @property
    def p_inj(self) -> float:
        """Penalty for instructions aimed at the rater: 0.5, or 0.8 when nothing else is left."""
        return 0.0 if not self.injections else 0.5 if self.response else 0.8

    @property
    def q_lex(self) -> float:
        """Lexical on-topic quality (see the module docstring)."""
        if not self.n_core:
            # nothing specific: a vague nominal reply is weakly on-topic, bare boilerplate is not at all
            if self.vague >= 0.2:
                return clip(0.52 - 0.25 * self.vague)
            if not self.core:
                return 0.1
        return clip(0.4 + 0.6 * self.lex + 0.1 * self.person + 0.2 * self.fit - 0.25 * self.drift - 0.35 * self.vague)

    @property
    def coverage(self) -> float | None:
        return len(self.covered) / len(self.req_stems) if self.req_stems else None


def _truncation(text: str, user_punctuates: bool) -> tuple[float, str]:
    t = text.rstrip()
    if not t:
        return 0.0, ""
    low = t.lower()
    ws = words(t)
    tail = " ".join(t.split()[-4:])
    score = 0.0
    last_line = t.splitlines()[-1] if "\n" in t else ""
    if low.endswith(_END_PUNCT) or not ws or not (t[-1].isascii() or t[-1].isalnum()):
        score = 0.0  # closing punctuation, an emoticon or an emoji
    elif last_line and 0 < len(words(last_line)) <= 5 and ws[-1] not in DANGLING and low[-1] not in ",;:-–—(":
        score = 0.1  # a short last line of its own: a signature, a score, a list item
    elif low[-1] in ",;:-–—(":
        score = 0.85
    elif ws[-1] in DANGLING and not re.search(r"[A-Z]\w*\s+A$", t):  # "Vitamin A" is a name
        score = 0.85
    elif ws[-1] in WEAK_DANGLING and len(ws) >= 2:
        score = 0.45
    elif any(
        len(m.group(1)) >= 3 and m.group(1).lower() not in ABBREVIATIONS for m in re.finditer(r"(\w+)[.!?]+\s+\S", t)
    ):
        score = 0.55  # earlier sentences end properly, the last does not
    elif len(ws) >= 8:
        score = 0.35 if user_punctuates else 0.2
    elif user_punctuates:
        score = 0.2
    else:
        score = 0.1
    if t.count("(") != t.count(")") or t.count('"') % 2 == 1:
        score = min(1.0, score + 0.3)
    return score, tail


_INTERJECTIONS = frozenset(
    {
        "ha",
        "haha",
        "he",
        "hehe",
        "ho",
        "la",
        "na",
        "no",
        "bye",
        "very",
        "so",
        "really",
        "oh",
        "knock",
        "yeah",
        "yes",
        "go",
        "blah",
    }
)


def _adjacent(ws: list[str]) -> tuple[float, str, int, str]:
    n_words = len(ws)
    best: tuple[float, str, int, str] = (0.0, "", 0, "")
    # back-to-back repeats of a phrase (the longest n first)
    for n in range(min(8, n_words // 2), 0, -1):
        i = 0
        while i + 2 * n <= n_words:
            if ws[i : i + n] == ws[i + n : i + 2 * n]:
                k = 2
                while ws[i : i + n] == ws[i + k * n : i + (k + 1) * n]:
                    k += 1
                unit = ws[i : i + n]
                if len(set(unit)) > 1 or (k * n >= 3 and len(unit[0]) >= 2 and unit[0] not in _INTERJECTIONS):
                    p = min(0.85, 0.5 + 0.1 * (k - 2) + 0.05 * min(max(n - 2, 0), 3))
                    if p > best[0] or (p == best[0] and n > len(best[1].split())):
                        best = (p, " ".join(ws[i : i + n]), k, "adjacent")
                i += n * k
            else:
                i += 1
        if best[0] > 0:
            break
    return best


# a line break or a markdown marker separates a heading or list item from the text under it ("**Soap
# bubbles**\nSoap bubbles are …"): an echo across it is layout, not a stutter
_BREAK_RE = re.compile(r"\n|[|*#•]+")


def _repetition(text: str) -> tuple[float, str, int, str]:
    ws = words(text)
    n_words = len(ws)
    best: tuple[float, str, int, str] = (0.0, "", 0, "")
    for seg in _BREAK_RE.split(text):
        found = _adjacent(words(seg))
        if found[0] > best[0] or (found[0] == best[0] > 0 and len(found[1].split()) > len(best[1].split())):
            best = found
    if best[0] > 0:
        return best
    # the same sentence twice
    sents = [" ".join(words(m.group(0))) for m in SENTENCE_RE.finditer(text)]
    sents = [s for s in sents if len(s.split()) >= 3]
    dup = [s for s, c in Counter(sents).items() if c >= 2]
    if dup:
        return 0.6, dup[0], Counter(sents)[dup[0]], "sentence"
    # repeated five-word phrases with two content words, not back to back (a name or term recurring is the topic)
    grams = [tuple(ws[i : i + 5]) for i in range(n_words - 4)]
    grams = [g for g in grams if sum(w not in STOPWORDS for w in g) >= 2]
    if len(grams) >= 4:
        counts = Counter(grams)
        rep = [g for g, c in counts.items() if c >= 2]
        # overlapping five-word windows of one longer echoed phrase are one phrase: count runs of first occurrences
        first = sorted({grams.index(g) for g in rep})
        phrases = sum(1 for i, p in enumerate(first) if i == 0 or p != first[i - 1] + 1)
        if phrases >= 2 or any(counts[g] >= 3 for g in rep):  # one echoed phrase is normal
            share = sum(counts[g] - 1 for g in rep) / len(grams)
            return min(0.3, 1.5 * share), " ".join(rep[0]), counts[rep[0]], "scattered"
    return best


def _request_type(req: str) -> str:
    r = req.strip()
    if _GREETING_RE.search(r) and len(words(r)) <= 6:
        return "greeting"
    if _OPEN_RE.search(r):
        return "open"
    if _PROBLEM_Q.search(r):
        return "problem"
    if _YESNO_RE.search(r):
        return "yesno"
    if _WH_RE.search(r) or r.endswith("?"):
        return "wh"
    return "statement"


NEED = {
    "open": 8.0,
    "problem": 4.0,
    "wh": 3.0,
    "yesno": 1.5,
    "statement": 2.0,
    "greeting": 1.0,
}
TYPE_WORDS = {
    "open": "an open request",
    "problem": "a reported problem",
    "wh": "a factual question",
    "yesno": "a yes/no question",
    "statement": "a conversational remark",
    "greeting": "a greeting or small talk",
}


_NUMBER_Q = re.compile(
    r"\b(?:how many|how much|how old|how long|how far|what year|what percentage|when)\b",
    re.I,
)
_NAME_Q = re.compile(
    r"\b(?:who|whom|whose|where|which (?:city|country|state|planet|team|company|river|ocean|continent|"
    r"language|city|president|king|queen|actor|author|band|film|movie|book))\b",
    re.I,
)
_NUMBER_A = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    r"fifty|hundred|thousand|million|billion|dozen|century|centuries|none|zero)\b",
    re.I,
)
_CODE_Q = re.compile(
    r"\b(?:write|code|implement|function|program|script|snippet|algorithm|python|javascript|"
    r"java|sql)\b",
    re.I,
)
_CODE_A = re.compile(
    r"```|\bdef \w+\(|\bfunction\b|\breturn\b|=>|\bclass \w+|;\s*$|\bimport \w+",
    re.I | re.M,
)
_PROBLEM_Q = re.compile(
    r"\b(?:my|our)\b[^.?!]{0,40}\b(?:not|won't|isn't|doesn't|can't|cannot|broken|stopped|keeps|"
    r"error|crash\w*|slow|black|frozen|overheat\w*|flicker\w*|forgot|lost|detected)\b|"
    r"\bi (?:can't|cannot|forgot|lost)\b",
    re.I,
)
_ADVICE_A = re.compile(
    r"^\W*(?:try|check|make sure|ensure|update|restart|reboot|reset|use|contact|clean|install|"
    r"reinstall|plug|unplug|turn|open|close|go to|press|hold|run|disable|enable|adjust|connect|"
    r"verify|replace)\b|\byou (?:can|could|should|might|may|need to)\b",
    re.I,
)


_WHY_Q = re.compile(r"^\W*why\b|\bwhy (?:do|does|did|is|are|was|were|would|can|should)\b", re.I)
_CAUSE_A = re.compile(
    r"\b(?:because|since|so|due to|as a result|caus\w*|leads? to|results? in|which means|"
    r"that's why|the reason)\b",
    re.I,
)
_HOWTO_Q = re.compile(r"\bhow (?:do|can|could|should|would) (?:i|you|we|one)\b|\bhow to\b", re.I)
_STEPS_A = re.compile(r"\b(?:first|then|next|after that|finally|step)\b", re.I)


def _fit(req: str, rtype: str, resp: str) -> tuple[int, str]:
    """(1, what fits) when the reply has the form the request calls for (a yes/no to a yes/no question, a
    greeting to a greeting, code to "write a function", advice to a reported problem, a number to "how many",
    a name to "who/where", a definition to "what is"), else (0, "")."""
    if not resp.strip():
        return 0, ""
    if rtype == "greeting":
        return (1, "it returns the greeting") if _GREETING_ANSWER_RE.search(resp) else (0, "")
    if rtype == "yesno" and _YESNO_ANSWER_RE.search(resp):
        return 1, "it answers the yes/no question directly"
    if _CODE_Q.search(req) and rtype != "greeting":
        return (1, "it gives the code that was asked for") if _CODE_A.search(resp) else (0, "")
    if _PROBLEM_Q.search(req):
        return (1, "it offers a fix for the reported problem") if _ADVICE_A.search(resp) else (0, "")
    if _WHY_Q.search(req):
        return (1, "it explains the cause, as a why-question asks") if _CAUSE_A.search(resp) else (0, "")
    if _HOWTO_Q.search(req):
        if _ADVICE_A.search(resp) or _STEPS_A.search(resp):
            return 1, "it gives the steps that were asked for"
        return 0, ""
    if _NUMBER_Q.search(req):
        return (1, "it gives the number or date asked for") if _NUMBER_A.search(resp) else (0, "")
    if _NAME_Q.search(req):
        # a proper name: a capitalised word that is not the first word nor "I"
        if re.search(r"(?<=\s)(?!I\b)[A-Z][a-z]+|^[A-Z][a-z]+(?: [A-Z][a-z]+)+", resp):
            return 1, "it names the person or place asked for"
        return 0, ""
    if rtype == "wh" and re.match(r"^\W*(?:what|who) (?:is|are|was|were)\b", req, re.I):
        return (1, "it gives a definition, as asked") if _DEFINITION_RE.search(resp) else (0, "")
    return 0, ""


_YOU = frozenset({"you", "your", "yours", "you're", "yourself", "you've", "you'll", "you'd"})
_ME = frozenset({"i", "me", "my", "mine", "i'm", "i've", "i'll", "i'd", "myself"})


def _person(req: str, resp: str) -> int:
    """1 when the reply takes up the request's grammatical person (asked about "you", answers as "I"; tells
    about "I/my", answers about "you/your/it"), else 0: conversational coherence without shared words."""
    rq, rs = set(words(req)), set(words(resp))
    if (rq & _YOU and rs & _ME) or (rq & _ME and rs & (_YOU | {"it", "it's", "that", "that's"})):
        return 1
    return 0


# where a pasted reference ends and the request about it begins
_REF_END = re.compile(
    r"<end of reference>|^\s*(?:\"\"\"|###|---+)\s*$|^\s*(?:your task is to|instruction|task|question)s?\s*:",
    re.I | re.M,
)
_LEAD_LABEL = re.compile(
    r"^\s*(?:(?:your task is to|instructions?|task|question)\s*:|based on that,?)\s*",
    re.I,
)


def split_reference(text: str) -> tuple[str, str]:
    """(request, reference): a long message (>= 80 words) that pastes a text and then asks about it is split
    where the reference ends (``<end of reference>``, a closing line of three double quotes or ``###``, "Your task is to:",
    "Instruction:"), else before its last paragraph when that is short (<= 60 words, <= a third); the
    request is what follows, the reference counts as context. Short messages are returned whole."""
    n = len(words(text))
    if n < 80:
        return text, ""
    ends = list(_REF_END.finditer(text))
    for m in reversed(ends):
        tail = text[m.end() :]
        # labels may follow one another ("<end of reference>\nInstruction:\n...")
        while True:
            stripped = _LEAD_LABEL.sub("", tail, count=1)
            if stripped == tail:
                break
            tail = stripped
        if 0 < len(words(tail)) <= max(60, n // 3):
            return tail.strip(), text[: m.start()].strip()
    paras = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if len(paras) >= 2 and len(words(paras[-1])) <= min(60, n // 3):
        return paras[-1].strip(), "\n\n".join(paras[:-1])
    return text, ""


_CONTINUATION = frozenset(
    "and but or nor so that which who whom whose of to for with by from than then because while as is are was "
    "were".split()
)


def _mid_start(prose: str) -> float:
    """0.4 when the response starts mid-sentence: a lower-case first word that continues a clause ("and",
    "that", "which" …), or lower case where its later sentences are capitalised; else 0. A reply written
    all in lower case is a style, not a cut."""
    t = prose.lstrip(" \t\n\"'*-•>")
    if not t or not t[0].isalpha() or not t[0].islower():
        return 0.0
    first = words(t[:40])[:1]
    if first and first[0] in ("i", "e", "ie", "eg", "http", "https", "www"):
        return 0.0
    if first and first[0] in _CONTINUATION:
        return 0.4
    later = re.findall(r"[.!?]\s+([A-Za-z])", t)
    if len(later) >= 1 and sum(c.isupper() for c in later) >= max(1, 0.6 * len(later)):
        return 0.4
    return 0.0


_REFUSAL_RE = re.compile(
    r"^\W*(?:(?:i'?m|i am) sorry|(?:i )?apologi[sz]e|unfortunately|as an ai(?: language model| assistant)?|"
    r"sorry)?[^.!?\n]{0,40}?\bi (?:can(?:'|no)t|cannot|am (?:not able|unable)|'m (?:not able|unable)|"
    r"won't|will not|do not feel comfortable|don't feel comfortable|must decline|am not comfortable)\b"
    r"[^.!?\n]{0,40}?\b(?:help|assist|provide|fulfil+|comply|create|write|generate|engage|answer|do that|"
    r"support|continue|recommend|predict|give|offer|share|make|produce)",
    re.I,
)
_DISCLAIMER_RE = re.compile(
    r"^\W*as an ai(?: language model| assistant)?,? i (?:don'?t|do not|cannot|can'?t|am not able to) "
    r"(?:have|hold|form|express|predict|determine|browse|access|eat|feel)",
    re.I,
)


def _refusal(response: str) -> float:
    """How far the response declines the request: a refusal in its first sentence ("I'm sorry, but I can't
    help with that", "I apologize, but I cannot provide …") 0.9 when little else follows (< 40 words), 0.4 when
    it goes on to offer something; an "As an AI, I don't have …" disclaimer in front of an answer 0.15."""
    head = response.strip()[:300]
    n = len(words(response))
    if _REFUSAL_RE.search(head):
        return 0.9 if n < 40 else 0.4
    if _DISCLAIMER_RE.search(head):
        return 0.4 if n < 25 else 0.15
    return 0.0


_EXTRACT_Q = re.compile(
    r"\b(?:extract|quote|copy|verbatim|word for word|list (?:all|the|every)|find (?:all|the))\b",
    re.I,
)


def _copy_share(prose: str, earlier: str, n: int = 8) -> float:
    """Share of the response's word n-grams (n = 8) found verbatim in the earlier turns and context."""
    w = words(prose)
    if len(w) < n + 4 or not earlier.strip():
        return 0.0
    e = words(earlier)
    seen = {tuple(e[i : i + n]) for i in range(len(e) - n + 1)}
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return sum(g in seen for g in grams) / len(grams)


def _conv_key(conv: Conversation) -> tuple:
    return tuple((t.role, t.text) for t in conv.turns), conv.context


@lru_cache(maxsize=8192)
def analyse_key(key: tuple) -> Evidence:
    turns, context = key
    resp_raw = turns[-1][1]
    last_user = max(i for i, (role, _) in enumerate(turns) if role == "user")
    full_request, _ = strip_injections(turns[last_user][1])
    request, reference = split_reference(full_request)
    hist_parts = [strip_injections(t)[0] for _, t in turns[:last_user]]
    hist_parts += [strip_injections(t)[0] for _, t in turns[last_user + 1 : -1]]
    if context:
        hist_parts.insert(0, strip_injections(context)[0])
    if reference:
        hist_parts.append(reference)
    history = " ".join(p for p in hist_parts if p)
    response, injections = strip_injections(resp_raw)

    n_resp = len(words(response))
    n_user = len(words(full_request))  # the user wrote (or pasted) all of it: the length proportion counts it all
    user_punct = request.rstrip().endswith((".", "!", "?"))
    # code repeats itself and ends as it must: judge the prose around it; an unclosed fence is a cut
    prose = _CODE_BLOCK.sub(" ", response).strip()
    if response.count("```") % 2:
        trunc, tail = 0.85, quote(response.rstrip().splitlines()[-1], 40)
    elif response.rstrip().endswith("```") or not prose:
        trunc, tail = 0.0, ""
    else:
        trunc, tail = _truncation(prose, user_punct)

    # naturalness
    p_rep, phrase, times, rkind = _repetition(prose)
    stock_spans = find_spans(response, STOCK_RE)
    p_script = min(0.85, 1 - math.prod(1 - s[3] for s in stock_spans)) if stock_spans else 0.0
    rtype = _request_type(request)
    # a long answer to an open request or a question is expected; to small talk it is not
    p_len = 0.0
    n_prose = len(words(prose))  # code does not count as talk
    if rtype in ("greeting", "statement") and n_prose > 40 and n_prose / max(n_user, 1) > 8:
        p_len = min(0.35, 0.1 + 0.15 * math.log2(n_prose / (8 * max(n_user, 1))))
    elif n_resp <= 2 and len(words(request)) >= 25:
        p_len = 0.15
    p_start = _mid_start(prose)

    # comprehensiveness
    vague_spans = find_spans(response, VAGUE_RE)
    vague = min(0.9, 1 - math.prod(1 - s[3] for s in vague_spans)) if vague_spans else 0.0
    core = remove_spans(response, all_spans(response, STOCK_RE) + all_spans(response, VAGUE_RE))
    if core and core != response and not trunc:
        # boilerplate wrapped around a cut-off answer hides the cut: look at the answer itself
        t_core, tail_core = _truncation(core, user_punct) if "```" not in core else (0.0, "")
        if t_core >= 0.85:
            trunc, tail = t_core, tail_core
    req_words = content_words(request)
    core_words = content_words(core, drop_vague=True)
    req_stems, core_stems = list(req_words), list(core_words)
    covered = [s for s in req_stems if any(stems_match(s, r) for r in core_stems)]
    missing = [s for s in req_stems if s not in covered]
    n_func = len({w for w in words(core) if w in STOPWORDS})
    n_eff = len(core_stems) + min(1.0, 0.2 * n_func)
    need = NEED[rtype]
    depth = 1 - math.sqrt(need / n_eff) if n_eff > need else 0.0
    refusal = _refusal(response)
    copy = _copy_share(prose, " ".join(t for _, t in turns[:-1]) + " " + (context or ""))
    p_copy = 0.0 if _EXTRACT_Q.search(request) else clip((copy - 0.25) / 0.5)

    # on-topic (lexical)
    hist_stems = set(content_stems(history))
    weights = []
    shared, ungrounded = [], []
    for s in core_stems:
        if any(stems_match(s, q) for q in req_stems):
            weights.append(1.0)
            shared.append(core_words[s])
        elif any(stems_match(s, h) for h in hist_stems):
            weights.append(0.7)
            shared.append(core_words[s])
        else:
            weights.append(0.0)
            ungrounded.append(core_words[s])
    grounded = sum(weights) / len(weights) if weights else 0.0
    recall = len(covered) / len(req_stems) if req_stems else 0.0
    char_cos = _cosine(_char_grams(req_stems + sorted(hist_stems)), _char_grams(core_stems))
    lex = clip(0.3 * grounded + 0.4 * recall + 0.3 * min(1.0, char_cos / 0.5))
    fit, fit_reason = _fit(request, rtype, core)
    person = _person(request, core) if core_stems else 0
    drift = clip((len(ungrounded) - 4) / 8) * (1 - recall) * (1 - lex)

    return Evidence(
        request=request,
        history=history,
        response=response,
        core=core,
        n_resp_words=n_resp,
        n_user_words=n_user,
        injections=tuple(injections),
        truncation=trunc,
        trunc_tail=tail,
        p_rep=p_rep,
        rep_phrase=phrase,
        rep_times=times,
        rep_kind=rkind,
        p_script=p_script,
        stock=tuple((s[2], s[4]) for s in stock_spans),
        p_len=p_len,
        p_start=p_start,
        request_type=rtype,
        req_stems=tuple(req_stems),
        covered=tuple(req_words[s] for s in covered),
        missing=tuple(req_words[s] for s in missing),
        n_eff=n_eff,
        n_core=len(core_stems),
        vague=vague,
        refusal=refusal,
        copy=copy,
        p_copy=p_copy,
        depth=depth,
        vague_phrases=tuple(s[2] for s in vague_spans),
        grounded=grounded,
        recall=recall,
        char_cos=char_cos,
        lex=lex,
        fit=fit,
        fit_reason=fit_reason,
        person=person,
        drift=drift,
        ungrounded=tuple(ungrounded),
        shared=tuple(shared),
    )


def analyse(conv: Conversation) -> Evidence:
    """The teacher-independent evidence for one conversation (cached by its texts, never its meta)."""
    return analyse_key(_conv_key(conv))
