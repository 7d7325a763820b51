"""The evidence measured on one conversation: teacher-independent, cached by its texts (never its meta).

One idea, over 500 lines: the measures, and the word tables they need.

:func:`analyse` removes instructions aimed at the rater from every turn and
the context, finds the response's stock and vague phrases and its ``core``
(:mod:`.phrases`), and measures what the dimensions are rated from
(:mod:`.dimensions`). Every ``p``, ``t``, ``v`` is in [0, 1]. Fenced code is
left out of the style measures (code repeats itself and ends as it must).

**truncation** ``t`` (shared): 0 when the response ends in ``.!?…)]"'*``, an
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
    sentence (>= 3 words) twice: 0.6; else word trigrams with >= 2 content
    words recurring (two of them, or one three times):
    ``min(0.3, 1.5 * repeated share)``.
    ``p_script = min(0.85, 1 - prod(1 - w))`` over stock phrases.
    ``p_len``: for small talk, yes/no questions and statements, a reply of
    ``n_r > 40`` prose words and ``n_r > 8 n_u``:
    ``min(0.35, 0.1 + 0.15 log2(n_r / (8 n_u)))`` (other requests: 150 words
    and 20x); a reply of <= 2 words to a message of >= 25 words: 0.15.

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
from .phrases import STOCK_RE, VAGUE_RE, all_spans, find_spans, remove_spans, strip_injections
from .text import SENTENCE_RE, STOPWORDS, clip, content_stems, content_words, quote, stems_match, words

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
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "jr", "sr", "st", "vs", "etc", "inc", "ltd", "co", "prof", "no"})

_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.S)
_END_PUNCT = tuple(".!?…)]\"'»”’*") + (":)", ":-)", ":(", ";)", ":d", ":p")

_GREETING_RE = re.compile(
    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening|day|night)|"
    r"how are you|how(?:'s| is) it going|how do you do|what'?s up|sup|yo|thanks|thank you|"
    r"bye|goodbye|see you|nice to meet you)\b",
    re.I,
)
_OPEN_RE = re.compile(
    r"\b(?:(?:can|could|would|will) you (?:please )?(?:write|explain|tell|describe|show|give|"
    r"help|list|make|create|recommend|suggest|summari[sz]e|teach)|"
    r"how (?:do|does|did|can|could|should|would|will|to|is|are|was|were)|"
    r"why|explain|describe|tell me (?:about|more)|elaborate|compare|discuss|"
    r"what (?:are|is) the (?:difference|differences|benefits|advantages|disadvantages|reasons?|"
    r"causes?|best way|pros)|"
    r"what do you think|what should|in what ways?|walk me through|steps)\b",
    re.I,
)
_YESNO_RE = re.compile(
    r"^\W*(?:do|does|did|are|is|was|were|can|could|would|will|have|has|had|should|may|shall|am|"
    r"won't|don't|doesn't|isn't|aren't|can't)\b",
    re.I,
)
_WH_RE = re.compile(r"\b(?:what|who|where|when|which|whose|whom|how (?:many|much|old|long|far|big|tall))\b", re.I)
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
    # comprehensiveness
    request_type: str
    req_stems: tuple[str, ...]
    covered: tuple[str, ...]
    missing: tuple[str, ...]
    n_eff: float
    n_core: int  # distinct content stems of the core
    vague: float
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
    if low.endswith(_END_PUNCT) or not ws:
        score = 0.0
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


def _repetition(text: str) -> tuple[float, str, int, str]:
    ws = words(text)
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
    if best[0] > 0:
        return best
    # the same sentence twice
    sents = [" ".join(words(m.group(0))) for m in SENTENCE_RE.finditer(text)]
    sents = [s for s in sents if len(s.split()) >= 3]
    dup = [s for s, c in Counter(sents).items() if c >= 2]
    if dup:
        return 0.6, dup[0], Counter(sents)[dup[0]], "sentence"
    # repeated trigrams with a content word, not back to back
    grams = [tuple(ws[i : i + 3]) for i in range(n_words - 2)]
    grams = [g for g in grams if sum(w not in STOPWORDS for w in g) >= 2]
    if len(grams) >= 4:
        counts = Counter(grams)
        rep = [g for g, c in counts.items() if c >= 2]
        if len(rep) >= 2 or any(counts[g] >= 3 for g in rep):  # one echoed phrase is normal
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


NEED = {"open": 8.0, "problem": 4.0, "wh": 3.0, "yesno": 1.5, "statement": 2.0, "greeting": 1.0}
TYPE_WORDS = {
    "open": "an open request",
    "problem": "a reported problem",
    "wh": "a factual question",
    "yesno": "a yes/no question",
    "statement": "a conversational remark",
    "greeting": "a greeting or small talk",
}


_NUMBER_Q = re.compile(r"\b(?:how many|how much|how old|how long|how far|what year|what percentage|when)\b", re.I)
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
_CODE_A = re.compile(r"```|\bdef \w+\(|\bfunction\b|\breturn\b|=>|\bclass \w+|;\s*$|\bimport \w+", re.I | re.M)
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


def _conv_key(conv: Conversation) -> tuple:
    return tuple((t.role, t.text) for t in conv.turns), conv.context


@lru_cache(maxsize=8192)
def analyse_key(key: tuple) -> Evidence:
    turns, context = key
    resp_raw = turns[-1][1]
    last_user = max(i for i, (role, _) in enumerate(turns) if role == "user")
    request, _ = strip_injections(turns[last_user][1])
    hist_parts = [strip_injections(t)[0] for _, t in turns[:last_user]]
    hist_parts += [strip_injections(t)[0] for _, t in turns[last_user + 1 : -1]]
    if context:
        hist_parts.insert(0, strip_injections(context)[0])
    history = " ".join(p for p in hist_parts if p)
    response, injections = strip_injections(resp_raw)

    n_resp = len(words(response))
    n_user = len(words(request))
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
    ratio_max, min_len = (8, 40) if rtype in ("greeting", "statement", "yesno") else (20, 150)
    p_len = 0.0
    n_prose = len(words(prose))  # code does not count as talk
    if n_prose > min_len and n_prose / max(n_user, 1) > ratio_max:
        p_len = min(0.35, 0.1 + 0.15 * math.log2(n_prose / (ratio_max * max(n_user, 1))))
    elif n_resp <= 2 and n_user >= 25:
        p_len = 0.15

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
        request_type=rtype,
        req_stems=tuple(req_stems),
        covered=tuple(req_words[s] for s in covered),
        missing=tuple(req_words[s] for s in missing),
        n_eff=n_eff,
        n_core=len(core_stems),
        vague=vague,
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
