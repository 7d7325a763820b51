"""Text processing shared by the measures: tokens, content words, stems and when two stems match.

``words(x)``: lower-cased ``[a-z0-9]+('[a-z]+)?`` tokens. Content words: the
words not in ``STOPWORDS`` (hand-written English function words and chat
fillers: no maintained list ships offline), stemmed by ``stem`` (a light
suffix stripper: ``-ies -> y``, ``-ing``, ``-ed``, ``-ly``, ``-es``, ``-s``,
``-ness``, ``-ment``, final ``e``). Two stems *match* when equal, when one is a
prefix of the other (>= 3 letters), or when they share a prefix of >= 5
letters (``chemistry``/``chemicals``). Explanations quote the words as
written (:func:`quote`), not their stems.
"""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    """
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
""".split()
)

# content-looking words that carry no request-specific information (vague replies are made of them)
VAGUE_VOCAB = frozenset(
    {
        "factor",
        "factors",
        "way",
        "ways",
        "question",
        "questions",
        "message",
        "aspect",
        "aspects",
        "matter",
        "interesting",
        "consider",
        "depend",
        "depends",
        "number",
        "several",
        "various",
        "different",
        "look",
        "anything",
        "something",
        "stuff",
        "inquiry",
        "request",
        "information",
        "response",
        "help",
        "assist",
        "today",
    }
)

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*|\n")


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower().replace("’", "'"))


def stem(w: str) -> str:
    """A light suffix stripper (no stemmer ships offline with the project; Porter is overkill for overlap)."""
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 3 or w.isdigit():
        return w
    for suf, rep in (
        ("ational", "ate"),
        ("ization", "ize"),
        ("fulness", "ful"),
        ("iveness", "ive"),
        ("ousness", "ous"),
        ("ies", "y"),
        ("ied", "y"),
        ("sses", "ss"),
        ("ness", ""),
        ("ment", ""),
        ("ings", ""),
        ("ing", ""),
        ("edly", ""),
        ("ed", ""),
        ("ly", ""),
        ("es", ""),
        ("s", ""),
    ):
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


def clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text
