"""The ``human`` section: the human-rated sets every run measures its raters against (README, "Agreement with
people"), and how the agreement is bootstrapped.

::

    human:
      bootstrap: 1000        # group-bootstrap resamples for every interval (0: no intervals)
      ci: 0.95
      seed: 0
      sets:
        helpsteer:                                   # the set's name: data/raw/human/<name>, metrics/human/<name>.json
          format: helpsteer                          # a loader of explainft.human.FORMATS
          fetch: {from: local, path: human/helpsteer}   # any fetch kind of sources.<name>.fetch (url with sha256 …)
          options: {}                                # the format's own options (files, …)
          on_error: raise                            # raise | skip (counted in the metrics)
          map: {naturalness: coherence, comprehensiveness: helpfulness}
          design_share: 0.3                          # share of prompt groups set aside (see below)
          max_items: null                            # a stable sample of this many items (a large set, LLM teachers)

``map`` names, per rated dimension, the human quality that stands for it (a preference set's only quality is
``preference``: the human's pairwise choice); a dimension left out is not measured on that set, and the qualities
are checked against the format when the set is loaded. ``design_share`` sets aside that share of the set's prompt
groups, chosen by a hash of the group (``explainft.human_eval.design_part``), for designing stand-in raters (the
heuristic teachers' evidence was looked at there only); every reported number reads the other groups, so a rater
is never scored on what it was tuned on. 0 reports every group. ``max_items`` keeps the first items by a hash of
their group (whole groups; a large published set rated by paid teachers), after the design part and the leak guard
(:func:`explainft.human_eval.prepare`: items asking what a training or validation example asked are left out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from .fields import integer

HUMAN_KEYS = {"bootstrap", "ci", "seed", "sets"}
SET_KEYS = {"format", "fetch", "options", "on_error", "map", "design_share", "max_items"}
ON_ERROR = ("raise", "skip")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class HumanSetConfig:
    name: str
    format: str
    fetch: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    on_error: str = "raise"
    map: dict[str, str] = field(default_factory=dict)  # dimension -> human quality
    design_share: float = 0.0
    max_items: int | None = None  # a stable sample of this many items (by group hash); None: every item

    def key(self, k: str) -> str:
        return f"human.sets.{self.name}.{k}"


@dataclass(frozen=True)
class HumanConfig:
    sets: dict[str, HumanSetConfig] = field(default_factory=dict)
    bootstrap: int = 1000
    ci: float = 0.95
    seed: int = 0

    def set(self, name: str) -> HumanSetConfig:
        if name not in self.sets:
            known = ", ".join(self.sets) or "none"
            raise ConfigError("human.sets", f"no human-rated set named {name!r}; this profile has: {known}")
        return self.sets[name]


def _set_config(name: str, raw: Any, dimensions: tuple[str, ...] | None) -> HumanSetConfig:
    base = f"human.sets.{name}"
    if not NAME_RE.match(name):
        raise ConfigError(base, "a set's name is lower-case letters, digits and '_' (it names folders and stages)")
    if not isinstance(raw, dict):
        raise ConfigError(base, f"must be a mapping ({', '.join(sorted(SET_KEYS))}), got {raw!r}")
    unknown = sorted(set(raw) - SET_KEYS)
    if unknown:
        raise ConfigError(f"{base}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(SET_KEYS))}")
    for k in ("format", "fetch", "map"):
        if k not in raw:
            raise ConfigError(f"{base}.{k}", "required key is missing")
    fmt = raw["format"]
    if not isinstance(fmt, str) or not fmt:
        raise ConfigError(f"{base}.format", f"must be a format name, got {fmt!r}")
    fetch = raw["fetch"]
    if not isinstance(fetch, dict):
        raise ConfigError(
            f"{base}.fetch", f"must be a mapping (a fetch spec, like sources.<name>.fetch), got {fetch!r}"
        )
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{base}.options", f"must be a mapping, got {options!r}")
    on_error = raw.get("on_error", "raise")
    if on_error not in ON_ERROR:
        raise ConfigError(f"{base}.on_error", f"must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    mapping = raw["map"]
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigError(f"{base}.map", "must map at least one dimension to a human quality")
    for dim, quality in mapping.items():
        if dimensions is not None and dim not in dimensions:
            raise ConfigError(
                f"{base}.map.{dim}", f"not a rated dimension (annotate.dimensions: {', '.join(dimensions)})"
            )
        if not isinstance(quality, str) or not quality:
            raise ConfigError(f"{base}.map.{dim}", f"must name a human quality of the set, got {quality!r}")
    share = raw.get("design_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise ConfigError(f"{base}.design_share", f"must be a share in [0, 1), got {share!r}")
    max_items = integer(raw.get("max_items"), f"{base}.max_items", positive=True, allow_none=True)
    return HumanSetConfig(
        name=name,
        max_items=max_items,
        format=fmt,
        fetch=dict(fetch),
        options=dict(options),
        on_error=on_error,
        map={str(d): q for d, q in mapping.items()},
        design_share=float(share),
    )


def human_config(params: Mapping[str, Any], dimensions: tuple[str, ...] | None = None) -> HumanConfig:
    """The ``human`` section (absent: no sets). ``dimensions`` (``annotate.dimensions``) checks each ``map``."""
    sec = params.get("human")
    if sec is None:
        return HumanConfig()
    if not isinstance(sec, dict):
        raise ConfigError("human", f"must be a mapping ({', '.join(sorted(HUMAN_KEYS))})")
    unknown = sorted(set(sec) - HUMAN_KEYS)
    if unknown:
        raise ConfigError(f"human.{unknown[0]}", f"unknown key; known: {', '.join(sorted(HUMAN_KEYS))}")
    d = HumanConfig()
    boot = integer(sec.get("bootstrap", d.bootstrap), "human.bootstrap")
    if boot != 0 and boot < 100:
        raise ConfigError("human.bootstrap", f"use 0 (no intervals) or at least 100 resamples, got {boot}")
    ci = sec.get("ci", d.ci)
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0.5 <= ci < 1:
        raise ConfigError("human.ci", f"must be a coverage in [0.5, 1), e.g. 0.95, got {ci!r}")
    raw_sets = sec.get("sets") or {}
    if not isinstance(raw_sets, dict):
        raise ConfigError("human.sets", "must be a mapping of set name -> {format, fetch, map, …}")
    sets = {str(n): _set_config(str(n), raw, dimensions) for n, raw in raw_sets.items()}
    return HumanConfig(sets=sets, bootstrap=boot, ci=float(ci), seed=integer(sec.get("seed", d.seed), "human.seed"))
