"""Training-target variants: which explanation follows the score (the paper's Findings 3-5).

The student learns "score, then explanation"; this module produces only the
explanation text of every training example, for each variant named in
``variants.names``. It sees the TRAIN split only: test sets are never altered,
and every word pool is built from the training explanations passed in, so a
word that occurs only in a test explanation can never be sampled.

Variants
--------
Explanation type (Finding 3, Fig. 4):

``none``
    The empty explanation: the target is the score only.
``assessment`` / ``confidence``
    That merged explanation, stripped of surrounding whitespace.
``both``
    The assessment, a blank line (:data:`BOTH_SEPARATOR` = ``"\\n\\n"``), then
    the confidence, each stripped; when one of them is empty the other stands
    alone (no dangling separator); both empty gives ``""``.

Length (Finding 4, Fig. 6), ``length_<N>`` with ``N`` a non-negative integer
written without sign or leading zeros (``length_0``, ``length_25``):

    The :data:`BASE` explanation (the assessment, the paper's default
    explanation used in its main experiments) cut after its first ``N``
    whitespace-separated words. The cut keeps the original text from the first
    word to the end of the ``N``-th word, so the whitespace between the kept
    words is unchanged and ``text.split() == base.split()[:N]`` exactly.
    ``length_0`` is ``""``, identical to ``none``; ``length_<N>`` with ``N`` at
    least the word count is identical to ``assessment``. The paper's sweep is
    :data:`PAPER_LENGTHS`.

Random words (Finding 5, Table 4). Each replaces the :data:`BASE` explanation
by exactly as many words as it has whitespace-separated words (an empty
assessment gives ``""``), joined by single spaces; every sampled word is one
token without whitespace, so the word count is preserved per example.

``fully_random``
    Uniform over the offline English dictionary: ``english_words`` web2 list,
    lower-cased, alphabetic only (about 234,000 words; stopwords not removed:
    "dictionary words").
``shuffle``
    Uniform over the unique non-stopwords of all training explanations.
``associated``
    Uniform over the unique non-stopwords of the training explanations whose
    ``label`` (the merged 1-5 score class) equals this example's label.
``weighted_shuffle`` / ``weighted_associated``
    The same pools, each word drawn with probability proportional to its
    number of occurrences in those explanations (sampling with replacement).

Words (for pools): the explanation is lower-cased, typographic apostrophes
(U+2019, U+2018, U+02BC) become ``'``, and tokens are maximal runs of letters
(any script, no digits or underscores) optionally joined by inner apostrophes:
regex :data:`WORD_PATTERN` ``[^\\W\\d_]+(?:'[^\\W\\d_]+)*`` (``"model's"`` is one
word, ``"5/5"`` none, ``"well-written"`` two). A word is a stopword when it is
in ``stop_words.get_stop_words("english")`` (normalised the same way).

Pools are sorted alphabetically and counted from the :data:`BASE` field of the
training examples. A random variant for which some example needs at least one
word from an empty pool (e.g. a label whose training assessments contain no
non-stopword) raises :class:`ConfigError` naming the variant and the label,
after all pools are checked and before any output is built.

Determinism
-----------
Each (variant, example) pair gets its own ``numpy.random.Generator`` over a
Philox bit generator whose 128-bit key is the BLAKE2b digest of ``seed,
variant, dataset, dimension, id`` (each length-prefixed, so the encoding is
unambiguous), never Python's salted ``hash()``. An example's random words
therefore depend only on the seed, the variant name, the example's identity and
the training pools, not on the order of the examples nor on which other
variants are built.

Names are validated (:func:`validate_variants`) before anything is built; an
unknown, malformed or negative-length name raises
``ConfigError("variants.names", ...)`` naming the variant and the reason.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ConfigError
from .records import Example

KEY = "variants.names"
SEED_KEY = "variants.seed"

#: the explanation that length and random-word variants truncate or replace
BASE = "assessment"
#: joins assessment and confidence in the ``both`` variant
BOTH_SEPARATOR = "\n\n"
#: the paper's length sweep (Fig. 6)
PAPER_LENGTHS = (0, 5, 10, 25, 50, 75, 100, 150)

TYPE_VARIANTS = ("none", "assessment", "confidence", "both")
# the two variants every comparison reads: score-only, and the paper's "(E)" (score + the merged assessment)
SCORE_ONLY = "none"
EXPLAINED = "assessment"
RANDOM_VARIANTS = ("fully_random", "shuffle", "associated", "weighted_shuffle", "weighted_associated")
LENGTH_PREFIX = "length_"

WORD_PATTERN = r"[^\W\d_]+(?:'[^\W\d_]+)*"
_WORD_RE = re.compile(WORD_PATTERN)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_NONSPACE_RE = re.compile(r"\S+")

#: pool keys: the whole split, the English dictionary, and one per label (``label_<k>``)
ALL_POOL = "all"
DICTIONARY_POOL = "dictionary"


def label_pool(label: int) -> str:
    return f"label_{label}"


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class VariantSpec:
    """A parsed variant name.

    ``kind``: ``"type"`` (none/assessment/confidence/both), ``"length"`` or
    ``"random"``. ``length``: N for ``length_<N>``. ``pool``: for random
    variants, ``"dictionary"``, ``"all"`` or ``"label"``; ``weighted``: sampled
    by word frequency.
    """

    name: str
    kind: str
    length: int | None = None
    pool: str | None = None
    weighted: bool = False

    @property
    def is_random(self) -> bool:
        return self.kind == "random"


_RANDOM_SPECS = {
    "fully_random": ("dictionary", False),
    "shuffle": ("all", False),
    "associated": ("label", False),
    "weighted_shuffle": ("all", True),
    "weighted_associated": ("label", True),
}

_KNOWN = ", ".join((*TYPE_VARIANTS, *RANDOM_VARIANTS, "length_<N>"))


def parse_variant(name: Any) -> VariantSpec:
    """Parse one variant name; ``ConfigError("variants.names", ...)`` naming it and the reason."""
    if not isinstance(name, str):
        raise ConfigError(KEY, f"variant {name!r}: a variant name must be a string, got {type(name).__name__}")
    if name in TYPE_VARIANTS:
        return VariantSpec(name=name, kind="type")
    if name in _RANDOM_SPECS:
        pool, weighted = _RANDOM_SPECS[name]
        return VariantSpec(name=name, kind="random", pool=pool, weighted=weighted)
    if name.startswith(LENGTH_PREFIX):
        n = name[len(LENGTH_PREFIX) :]
        if re.fullmatch(r"-\d+", n):
            raise ConfigError(KEY, f"variant {name!r}: negative length {n}; N in length_<N> must be >= 0 words")
        if not re.fullmatch(r"\d+", n) or not n.isascii():
            raise ConfigError(
                KEY,
                f"variant {name!r}: malformed length {n!r}; N in length_<N> must be a "
                "non-negative whole number of words, e.g. length_25",
            )
        if str(int(n)) != n:
            raise ConfigError(KEY, f"variant {name!r}: malformed length {n!r} (leading zeros); write length_{int(n)}")
        return VariantSpec(name=name, kind="length", length=int(n))
    raise ConfigError(KEY, f"unknown variant {name!r}; known: {_KNOWN}")


def validate_variants(names: Any) -> list[VariantSpec]:
    """Parse every name (a list of strings, no duplicates); raises ConfigError on the first bad one."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise ConfigError(KEY, f"must be a list of variant names, got {names!r}")
    specs = [parse_variant(n) for n in names]
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise ConfigError(KEY, f"variant {s.name!r} is listed twice")
        seen.add(s.name)
    return specs


# --------------------------------------------------------------------------- words


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """``stop_words.get_stop_words("english")``, lower-cased, apostrophes normalised."""
    from stop_words import get_stop_words

    return frozenset(w.lower().translate(_APOSTROPHES) for w in get_stop_words("english"))


@lru_cache(maxsize=1)
def dictionary_words() -> tuple[str, ...]:
    """The ``fully_random`` pool: english_words web2, lower-cased, alphabetic, sorted."""
    from english_words import get_english_words_set

    return tuple(sorted(get_english_words_set(["web2"], lower=True, alpha=True)))


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (see the module docstring)."""
    return _WORD_RE.findall(text.lower().translate(_APOSTROPHES))


def content_words(text: str) -> list[str]:
    """The tokens of ``text`` that are not stopwords, in order, with repeats."""
    stop = stopwords()
    return [w for w in tokenize(text) if w not in stop]


def pool_words(train: Iterable[Example], *, source: str = BASE) -> dict[str, Counter[str]]:
    """Non-stopword frequencies of the training explanations (field ``source``).

    Keys: ``"all"`` (every example) and ``"label_<k>"`` for each label present.
    The unique words of a counter form the unweighted pool; its counts are the
    weights of the weighted one. Built only from what is passed in.
    """
    pools: dict[str, Counter[str]] = {ALL_POOL: Counter()}
    for ex in train:
        words = content_words(getattr(ex, source))
        pools[ALL_POOL].update(words)
        pools.setdefault(label_pool(ex.label), Counter()).update(words)
    return pools


class _Sampler:
    """Maps uniforms in [0, 1) to words of a sorted pool, uniformly or by frequency."""

    def __init__(self, words: Sequence[str], counts: Sequence[int] | None):
        self.words = np.array(words, dtype=object)
        self.size = len(words)
        if counts is None:
            self.cum = None
        else:
            self.cum = np.cumsum(np.asarray(counts, dtype=np.int64))
            self.total = int(self.cum[-1]) if self.size else 0

    @classmethod
    def of(cls, counter: Counter[str], weighted: bool) -> "_Sampler":
        words = sorted(counter)
        return cls(words, [counter[w] for w in words] if weighted else None)

    def pick(self, u: np.ndarray) -> np.ndarray:
        if self.cum is None:
            idx = np.minimum((u * self.size).astype(np.int64), self.size - 1)
        else:
            idx = np.searchsorted(self.cum, u * self.total, side="right")
            idx = np.minimum(idx, self.size - 1)
        return self.words[idx]


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class VariantStats:
    """Summary of one built variant, for metrics."""

    name: str
    kind: str
    n: int
    mean_words: float  # mean whitespace words of the explanations
    n_empty: int  # examples whose explanation is ""
    pool_sizes: dict[str, int] = field(default_factory=dict)  # unique words per pool used (random variants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "n": self.n,
            "mean_words": self.mean_words,
            "n_empty": self.n_empty,
            "pool_sizes": dict(self.pool_sizes),
        }


def _seed_key(seed: int, variant: str, ex: Example) -> np.ndarray:
    """128-bit Philox key: BLAKE2b of the length-prefixed ``seed, variant, dataset, dimension, id``."""
    parts = (str(seed), variant, ex.dataset, ex.dimension, ex.id)
    material = "".join(f"{len(p)}:{p};" for p in parts).encode("utf-8", "surrogatepass")
    return np.frombuffer(hashlib.blake2b(material, digest_size=16, person=b"explainft.var").digest(), dtype="<u8")


def _rng(seed: int, variant: str, ex: Example) -> np.random.Generator:
    """The example's own Generator: Philox keyed by :func:`_seed_key`, counter 0 (no SeedSequence: cheaper)."""
    return np.random.Generator(np.random.Philox(counter=0, key=_seed_key(seed, variant, ex)))


def _truncate(text: str, n: int) -> str:
    if n <= 0:
        return ""
    end = None
    start = None
    for i, m in enumerate(_NONSPACE_RE.finditer(text)):
        if start is None:
            start = m.start()
        end = m.end()
        if i + 1 == n:
            break
    return "" if start is None else text[start:end]


def _type_text(name: str, ex: Example) -> str:
    if name == "none":
        return ""
    if name == "both":
        parts = [p for p in (ex.assessment.strip(), ex.confidence.strip()) if p]
        return BOTH_SEPARATOR.join(parts)
    return getattr(ex, name).strip()


def _pool_key(spec: VariantSpec, ex: Example) -> str:
    if spec.pool == "dictionary":
        return DICTIONARY_POOL
    if spec.pool == "all":
        return ALL_POOL
    return label_pool(ex.label)


def _samplers(spec: VariantSpec, pools: dict[str, Counter[str]], keys: Iterable[str]) -> dict[str, _Sampler]:
    out: dict[str, _Sampler] = {}
    for key in keys:
        if key == DICTIONARY_POOL:
            out[key] = _Sampler(dictionary_words(), None)
        else:
            out[key] = _Sampler.of(pools.get(key, Counter()), spec.weighted)
    return out


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(SEED_KEY, f"must be an integer, got {seed!r}")
    return int(seed)


def _check_pools(
    specs: list[VariantSpec], train: Sequence[Example], counts: list[int], pools: dict[str, Counter[str]]
) -> None:
    """Every random variant: every pool some example draws from (needs >= 1 word) is non-empty."""
    for spec in specs:
        if not spec.is_random or spec.pool == "dictionary":
            continue
        needing: dict[str, list[str]] = {}
        for ex, n in zip(train, counts):
            if n > 0:
                key = _pool_key(spec, ex)
                if not pools.get(key):
                    needing.setdefault(key, []).append(ex.id)
        if needing:
            key = sorted(needing)[0]
            ids = needing[key]
            where = (
                "all training explanations"
                if key == ALL_POOL
                else f"the training explanations with label {key.removeprefix('label_')}"
            )
            others = "" if len(needing) == 1 else f" (also empty: {', '.join(sorted(needing)[1:])})"
            raise ConfigError(
                KEY,
                f"variant {spec.name!r}: pool {key!r} is empty: {where} contain no "
                f"non-stopword, yet {len(ids)} example(s) need words from it "
                f"(e.g. id {ids[0]!r}){others}",
            )
    if any(s.pool == "dictionary" for s in specs) and not dictionary_words():
        raise ConfigError(KEY, "variant 'fully_random': the English word list is empty")


def _random_texts(
    spec: VariantSpec, train: Sequence[Example], counts: list[int], seed: int, samplers: dict[str, _Sampler]
) -> list[str]:
    # one Generator per example (order-independent); uniforms are then mapped per pool in bulk
    keys = [_pool_key(spec, ex) for ex in train]
    us: list[np.ndarray] = []
    for ex, n in zip(train, counts):
        us.append(_rng(seed, spec.name, ex).random(n) if n else np.empty(0))
    lens = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lens)))
    u_all = np.concatenate(us) if us else np.empty(0)
    words = np.empty(len(u_all), dtype=object)
    key_arr = np.asarray(keys, dtype=object)
    for key, sampler in samplers.items():
        ex_mask = (key_arr == key) & (lens > 0)
        if not ex_mask.any():
            continue
        pos_mask = np.repeat(ex_mask, lens)
        words[pos_mask] = sampler.pick(u_all[pos_mask])
    wl = words.tolist()
    return [" ".join(wl[offsets[i] : offsets[i + 1]]) for i in range(len(train))]


def build_variants_with_stats(
    train: Sequence[Example], variants: Sequence[str], *, seed: int
) -> tuple[dict[str, list[Example]], dict[str, VariantStats]]:
    """:func:`build_variants` plus a :class:`VariantStats` per variant."""
    specs = validate_variants(variants)
    seed = _check_seed(seed)
    train = list(train)
    counts = [len(getattr(ex, BASE).split()) for ex in train]
    pools = pool_words(train) if any(s.is_random for s in specs) else {}
    _check_pools(specs, train, counts, pools)

    built: dict[str, list[Example]] = {}
    stats: dict[str, VariantStats] = {}
    for spec in specs:
        pool_sizes: dict[str, int] = {}
        if spec.kind == "type":
            texts = [_type_text(spec.name, ex) for ex in train]
        elif spec.kind == "length":
            assert spec.length is not None
            texts = [_truncate(getattr(ex, BASE), spec.length) for ex in train]
        else:
            keys = sorted({_pool_key(spec, ex) for ex in train})
            samplers = _samplers(spec, pools, keys)
            pool_sizes = {k: s.size for k, s in samplers.items()}
            texts = _random_texts(spec, train, counts, seed, samplers)
        built[spec.name] = [ex.with_target(spec.name, t) for ex, t in zip(train, texts)]
        nwords = [len(t.split()) for t in texts]
        stats[spec.name] = VariantStats(
            name=spec.name,
            kind=spec.kind,
            n=len(texts),
            mean_words=float(np.mean(nwords)) if nwords else 0.0,
            n_empty=sum(1 for t in texts if not t),
            pool_sizes=pool_sizes,
        )
    return built, stats


def build_variants(train: Sequence[Example], variants: Sequence[str], *, seed: int) -> dict[str, list[Example]]:
    """For each variant name, the training examples with that variant's explanation as target.

    ``train`` is the TRAIN split only. Output lists keep the input order; each
    item is ``ex.with_target(name, explanation)``. All names are validated and
    all pools checked before anything is built (ConfigError otherwise).
    """
    return build_variants_with_stats(train, variants, seed=seed)[0]
