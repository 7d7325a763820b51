"""The ``split``, ``variants`` and ``stats`` sections: the three split sizes, the training-target variants, and the
tokenizer the explanation statistics count with (and its Hub revision); and the training sets a profile has
(:func:`split_sets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .data import data_config
from .fields import integer, section

MIXED = "mixed"  # the set mixing every dataset (split.mixed)


@dataclass(frozen=True)
class Sizes:
    """Conversations per part of one set: train, validation and test are disjoint."""

    train: int
    validation: int
    test: int

    def of(self, part: str) -> int:
        return getattr(self, part)


SPLIT_KEYS = {"train", "validation", "test", "seed", "mixed", "mixed_max_words"}
VARIANTS_KEYS = {"names", "seed"}
STATS_KEYS = {"tokenizer", "tokenizer_revision", "gguf_file", "context_limit"}


@dataclass(frozen=True)
class SplitConfig:
    """The ``split`` section: three disjoint sizes (validation is added to train and test, not carved from train)."""

    train: int
    validation: int
    test: int
    seed: int
    mixed: bool
    mixed_max_words: int

    def sizes(self) -> Sizes:
        return Sizes(train=self.train, validation=self.validation, test=self.test)


def split_config(params: dict[str, Any]) -> SplitConfig:
    sec = section(params, "split", SPLIT_KEYS)
    train = integer(sec.get("train"), "split.train", positive=True)
    if "validation" not in sec:
        raise ConfigError(
            "split.validation",
            "missing: the validation split's size (added to split.train and "
            "split.test), which every choice made from data reads, e.g. 200",
        )
    validation = integer(sec.get("validation"), "split.validation", positive=True)
    test = integer(sec.get("test"), "split.test", positive=True)
    seed = integer(sec.get("seed", 0), "split.seed")
    mixed = sec.get("mixed", True)
    if not isinstance(mixed, bool):
        raise ConfigError("split.mixed", f"must be true or false, got {mixed!r}")
    max_words = integer(sec.get("mixed_max_words", 150), "split.mixed_max_words", positive=True)
    return SplitConfig(train=train, validation=validation, test=test, seed=seed, mixed=mixed, mixed_max_words=max_words)


def variants_config(params: dict[str, Any]) -> tuple[tuple[str, ...], int]:
    """(variant names, seed). That each name is a variant the variants stage can build is checked by
    :func:`explainft.stages.check.check_profile` (explainft.variants parses the names)."""
    sec = section(params, "variants", VARIANTS_KEYS)
    names = sec.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("variants.names", f"must be a non-empty list of variant names, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError("variants.names", "lists a variant twice")
    return tuple(names), integer(sec.get("seed", 0), "variants.seed")


@dataclass(frozen=True)
class StatsConfig:
    """The ``stats`` section: the tokenizer the explanation statistics count with and the student's context."""

    tokenizer: str  # smollm2, a Hub id or a local folder
    tokenizer_revision: str | None  # the Hub commit (or branch, tag) of a Hub tokenizer; None: the Hub's default
    gguf_file: str | None
    context_limit: int


def stats_config(params: dict[str, Any]) -> StatsConfig:
    """The ``stats`` section. That a replication profile pins a Hub tokenizer to a commit hash
    (``stats.tokenizer_revision``) is checked by :func:`explainft.stages.check.check_profile`."""
    sec = section(params, "stats", STATS_KEYS)
    tok = sec.get("tokenizer")
    if not isinstance(tok, str) or not tok:
        raise ConfigError("stats.tokenizer", "must name the student's tokenizer: smollm2, a Hub id or a folder")
    revision = sec.get("tokenizer_revision")
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise ConfigError(
            "stats.tokenizer_revision",
            f"must be the Hub commit hash (or a branch or tag) of stats.tokenizer, or null, got {revision!r}",
        )
    gguf = sec.get("gguf_file")
    if gguf is not None and not isinstance(gguf, str):
        raise ConfigError("stats.gguf_file", f"must be a file name or null, got {gguf!r}")
    limit = integer(sec.get("context_limit"), "stats.context_limit", positive=True)
    return StatsConfig(tokenizer=tok, tokenizer_revision=revision, gguf_file=gguf, context_limit=limit)


def split_sets(params: dict[str, Any]) -> list[str]:
    """The training (and test) sets of a profile: every dataset, then Mixed when ``split.mixed`` is on."""
    names = list(data_config(params).datasets)
    return names + ([MIXED] if split_config(params).mixed else [])
