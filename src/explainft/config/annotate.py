"""The ``annotate``, ``merge`` and ``golden`` sections: the teacher ensemble, its prompts, how ratings merge.

A teacher's ``options`` are its backend's (base URL, concurrency, region); they are checked when the backend is
built (:func:`explainft.annotate.backends.make_backend`), which :func:`explainft.stages.check.check_profile` does
for every teacher before any stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from ..records import DIMENSIONS
from .fields import integer, section, str_list

PROMPT_VARIANTS = ("scale4", "scale4_examples", "scale5", "scale5_examples")
BACKENDS = ("openai", "bedrock", "transformers", "heuristic")
# merge.score and merge.explanation (explainft.merge)
SCORE_METHODS = ("average", "most_frequent", "llm")
EXPLANATION_METHODS = ("extractive", "llm")

# keys every teacher has; backend-specific keys live under ``options``
TEACHER_KEYS = {"name", "backend", "model", "sampling", "options"}
SAMPLING_KEYS = {"temperature", "top_p", "max_tokens", "seed"}


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher of the ensemble, from ``annotate.teachers[i]`` in params.

    ``sampling`` (temperature, top_p, max_tokens, seed) is part of the cache key;
    ``options`` holds backend settings (base URL, concurrency, …) that do not
    change the answer and so are not.
    """

    name: str
    backend: str
    model: str
    sampling: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def options_key(self) -> str:
        """The params key of this teacher's options, for error messages."""
        return f"annotate.teachers[{self.name}].options"

    def check_option_keys(self, known: Iterable[str]) -> str:
        """Raise ConfigError naming the first unknown option key; returns :attr:`options_key`."""
        known = sorted(known)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(
                f"{self.options_key}.{unknown[0]}",
                f"unknown option for the {self.backend} backend; known: {', '.join(known)}",
            )
        return self.options_key

    @classmethod
    def from_params(cls, raw: Any, key: str) -> "TeacherConfig":
        if not isinstance(raw, dict):
            raise ConfigError(key, f"a teacher must be a mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - TEACHER_KEYS)
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(TEACHER_KEYS))}")
        for k in ("name", "backend", "model"):
            if not isinstance(raw.get(k), str) or not raw[k]:
                raise ConfigError(f"{key}.{k}", "required, a non-empty string")
        if raw["backend"] not in BACKENDS:
            raise ConfigError(f"{key}.backend", f"must be one of {', '.join(BACKENDS)}, got {raw['backend']!r}")
        sampling = raw.get("sampling") or {}
        if not isinstance(sampling, dict):
            raise ConfigError(f"{key}.sampling", "must be a mapping")
        bad = sorted(set(sampling) - SAMPLING_KEYS)
        if bad:
            raise ConfigError(f"{key}.sampling.{bad[0]}", f"unknown key; known: {', '.join(sorted(SAMPLING_KEYS))}")
        for k, v in sampling.items():
            ok = isinstance(v, int) if k in ("max_tokens", "seed") else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok:
                raise ConfigError(f"{key}.sampling.{k}", f"must be a number, got {v!r}")
        options = raw.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{key}.options", "must be a mapping")
        return cls(
            name=raw["name"], backend=raw["backend"], model=raw["model"], sampling=dict(sampling), options=dict(options)
        )


ANNOTATE_KEYS = {"dimensions", "prompts", "teachers", "max_parse_retries", "cache", "max_failed_share"}
MERGE_KEYS = {"score", "explanation", "judge", "summariser", "min_valid"}
GOLDEN_KEYS = {"path"}


@dataclass(frozen=True)
class AnnotateConfig:
    dimensions: tuple[str, ...]
    prompts: tuple[str, ...]
    teachers: tuple[TeacherConfig, ...]
    max_parse_retries: int
    cache: str
    # largest share of `failed` ratings allowed per teacher × prompt × dimension (annotate.engine.check_failed_share)
    max_failed_share: float = 0.02

    def teacher(self, name: str, key: str) -> TeacherConfig:
        for t in self.teachers:
            if t.name == name:
                return t
        raise ConfigError(
            key, f"no teacher named {name!r} in annotate.teachers ({', '.join(t.name for t in self.teachers)})"
        )


@dataclass(frozen=True)
class MergeConfig:
    score: str
    explanation: str
    judge: str | None
    summariser: str | None
    min_valid: int


def annotate_config(params: dict[str, Any]) -> AnnotateConfig:
    """Check the ``annotate`` section (each teacher's backend options are checked when the backend is built:
    :func:`explainft.stages.check.check_profile`)."""
    sec = section(params, "annotate", ANNOTATE_KEYS)
    dims = str_list(sec.get("dimensions", list(DIMENSIONS)), "annotate.dimensions", DIMENSIONS)
    prompts = str_list(sec.get("prompts", list(PROMPT_VARIANTS)), "annotate.prompts", PROMPT_VARIANTS)
    raw = sec.get("teachers")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("annotate.teachers", "must be a non-empty list of teachers")
    teachers = tuple(TeacherConfig.from_params(t, f"annotate.teachers[{i}]") for i, t in enumerate(raw))
    names = [t.name for t in teachers]
    if len(set(names)) != len(names):
        raise ConfigError("annotate.teachers", f"teacher names must be unique, got {names}")
    retries = integer(sec.get("max_parse_retries", 2), "annotate.max_parse_retries")
    if retries < 0:
        raise ConfigError("annotate.max_parse_retries", "must be >= 0")
    cache = sec.get("cache", "cache/annotate.sqlite")
    if not isinstance(cache, str) or not cache:
        raise ConfigError("annotate.cache", "must be a file path")
    if Path(cache).parts and Path(cache).parts[0] == "data":
        raise ConfigError("annotate.cache", "must lie outside data/ (DVC outputs), or dvc repro would delete it")
    share = sec.get("max_failed_share", 0.02)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError(
            "annotate.max_failed_share",
            "must be a number from 0 to 1: the largest share of a "
            "teacher × prompt × dimension's requests that may fail "
            f"(0.02 = 2%), got {share!r}",
        )
    cfg = AnnotateConfig(
        dimensions=dims,
        prompts=prompts,
        teachers=teachers,
        max_parse_retries=retries,
        cache=cache,
        max_failed_share=float(share),
    )
    return cfg


def merge_config(params: dict[str, Any], annotate: AnnotateConfig | None = None) -> MergeConfig:
    sec = section(params, "merge", MERGE_KEYS)
    score = sec.get("score", "average")
    if score not in SCORE_METHODS:
        raise ConfigError("merge.score", f"must be one of {', '.join(SCORE_METHODS)}, got {score!r}")
    expl = sec.get("explanation", "extractive")
    if expl not in EXPLANATION_METHODS:
        raise ConfigError("merge.explanation", f"must be one of {', '.join(EXPLANATION_METHODS)}, got {expl!r}")
    judge, summariser = sec.get("judge"), sec.get("summariser")
    if score == "llm" and not judge:
        raise ConfigError("merge.judge", "merge.score: llm needs a judge (the name of a teacher in annotate.teachers)")
    if expl == "llm" and not summariser:
        raise ConfigError("merge.summariser", "merge.explanation: llm needs a summariser (a teacher name)")
    for key, name in (("merge.judge", judge), ("merge.summariser", summariser)):
        if name is not None:
            if not isinstance(name, str):
                raise ConfigError(key, f"must be a teacher name, got {name!r}")
            if annotate is not None:
                annotate.teacher(name, key)
    min_valid = integer(sec.get("min_valid", 1), "merge.min_valid", positive=True)
    return MergeConfig(score=score, explanation=expl, judge=judge, summariser=summariser, min_valid=min_valid)


def golden_path(params: dict[str, Any]) -> str | None:
    sec = section(params, "golden", GOLDEN_KEYS)
    path = sec.get("path")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ConfigError("golden.path", f"must be a path to a golden JSONL file or null, got {path!r}")
        if (
            Path(path).is_absolute()
            or not Path(path).parts
            or Path(path).parts[0] != "golden"
            or ".." in Path(path).parts
        ):
            # the golden stage depends on the golden/ folder, so DVC reruns it when the file changes
            raise ConfigError(
                "golden.path", f"must be a file inside golden/ (a dependency of the golden stage), got {path!r}"
            )
    return path
