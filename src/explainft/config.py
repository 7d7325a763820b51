"""Profiles: params.yaml (the embedded default) and configs/*.yaml, read and checked once.

A profile is checked as a whole before any stage does work: an unknown key, a
wrong type or an unknown dataset fails naming the key (``data.per_dataset``,
``sources.coqa.options.items``). Stages build their config objects from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

# Sections a profile may hold. Later stages add theirs here.
SECTIONS = ("profile", "data", "sources", "annotate", "merge", "golden", "split", "variants", "stats")
DATA_KEYS = {"datasets", "per_dataset", "seed", "on_error"}
SOURCE_KEYS = {"fetch", "options"}


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "profile file not found") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(str(path), f"not valid YAML: {e}") from None
    if not isinstance(params, dict):
        raise ConfigError(str(path), "a profile must be a YAML mapping")
    check_sections(params, str(path))
    return params


def check_sections(params: dict[str, Any], where: str = "the profile") -> None:
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown section in {where}; known sections: {', '.join(SECTIONS)}")
    if "profile" in params and not isinstance(params["profile"], str):
        raise ConfigError("profile", f"must be the profile's name (a string), got {params['profile']!r}")


@dataclass(frozen=True)
class DataConfig:
    datasets: tuple[str, ...]
    per_dataset: int | None
    seed: int
    on_error: str
    sources: dict[str, dict[str, Any]]

    def source(self, name: str) -> dict[str, Any]:
        if name not in self.datasets:
            raise ConfigError("data.datasets", f"dataset {name!r} is not listed in data.datasets ({', '.join(self.datasets)})")
        return self.sources[name]


def _int(value: Any, key: str, *, positive: bool = False, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer{' or null' if allow_none else ''}, got {value!r}")
    if positive and value < 1:
        raise ConfigError(key, f"must be a positive integer, got {value!r}")
    return value


def data_config(params: dict[str, Any], *, deep: bool = True) -> DataConfig:
    """Check the ``data`` and ``sources`` sections; with ``deep`` also each dataset's fetch spec and options."""
    from . import datasets as registry
    from .datasets.base import ON_ERROR

    check_sections(params)
    data = params.get("data")
    if not isinstance(data, dict):
        raise ConfigError("data", "section missing or not a mapping")
    unknown = sorted(set(data) - DATA_KEYS)
    if unknown:
        raise ConfigError(f"data.{unknown[0]}", f"unknown key; known: {', '.join(sorted(DATA_KEYS))}")
    names = data.get("datasets")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("data.datasets", f"must be a non-empty list of dataset names, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError("data.datasets", "lists a dataset twice")
    for n in names:
        registry.get(n)  # unknown name: error listing the known ones
    per = _int(data.get("per_dataset"), "data.per_dataset", positive=True, allow_none=True)
    seed = _int(data.get("seed", 0), "data.seed")
    on_error = data.get("on_error", "raise")
    if on_error not in ON_ERROR:
        raise ConfigError("data.on_error", f"must be one of {', '.join(ON_ERROR)}, got {on_error!r}")

    sources = params.get("sources")
    if not isinstance(sources, dict):
        raise ConfigError("sources", "section missing or not a mapping")
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        src = sources.get(n)
        if not isinstance(src, dict):
            raise ConfigError(f"sources.{n}", "missing: every dataset in data.datasets needs a sources entry "
                                              "with 'fetch' (where its raw files come from) and 'options'")
        bad = sorted(set(src) - SOURCE_KEYS)
        if bad:
            raise ConfigError(f"sources.{n}.{bad[0]}", f"unknown key; known: {', '.join(sorted(SOURCE_KEYS))}")
        if not isinstance(src.get("fetch"), dict):
            raise ConfigError(f"sources.{n}.fetch", "missing or not a mapping")
        options = src.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"sources.{n}.options", "must be a mapping")
        out[n] = {"fetch": src["fetch"], "options": options}
        if deep:
            from .datasets.fetch import validate_fetch
            from .datasets.prepare import resolve_options

            validate_fetch(n, src["fetch"])
            resolve_options(n, options)
    return DataConfig(datasets=tuple(names), per_dataset=per, seed=seed, on_error=on_error, sources=out)


# --------------------------------------------------------------------------- annotate, merge, golden

ANNOTATE_KEYS = {"dimensions", "prompts", "teachers", "max_parse_retries", "cache"}
MERGE_KEYS = {"score", "explanation", "judge", "summariser", "min_valid"}
GOLDEN_KEYS = {"path"}


@dataclass(frozen=True)
class AnnotateConfig:
    dimensions: tuple[str, ...]
    prompts: tuple[str, ...]
    teachers: tuple[Any, ...]  # annotate.base.TeacherConfig
    max_parse_retries: int
    cache: str

    def teacher(self, name: str, key: str) -> Any:
        for t in self.teachers:
            if t.name == name:
                return t
        raise ConfigError(key, f"no teacher named {name!r} in annotate.teachers "
                               f"({', '.join(t.name for t in self.teachers)})")


@dataclass(frozen=True)
class MergeConfig:
    score: str
    explanation: str
    judge: str | None
    summariser: str | None
    min_valid: int


def _section(params: dict[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    check_sections(params)
    sec = params.get(name)
    if not isinstance(sec, dict):
        raise ConfigError(name, "section missing or not a mapping")
    unknown = sorted(set(sec) - keys)
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(keys))}")
    return sec


def _str_list(value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"must be a non-empty list of names from {', '.join(allowed)}, got {value!r}")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise ConfigError(key, f"unknown {bad[0]!r}; known: {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ConfigError(key, "lists a name twice")
    return tuple(value)


def annotate_config(params: dict[str, Any], *, deep: bool = True) -> AnnotateConfig:
    """Check the ``annotate`` section; with ``deep`` also build each teacher's backend (validates its options)."""
    from .annotate.base import PROMPT_VARIANTS, TeacherConfig
    from .records import DIMENSIONS

    sec = _section(params, "annotate", ANNOTATE_KEYS)
    dims = _str_list(sec.get("dimensions", list(DIMENSIONS)), "annotate.dimensions", DIMENSIONS)
    prompts = _str_list(sec.get("prompts", list(PROMPT_VARIANTS)), "annotate.prompts", PROMPT_VARIANTS)
    raw = sec.get("teachers")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("annotate.teachers", "must be a non-empty list of teachers")
    teachers = tuple(TeacherConfig.from_params(t, f"annotate.teachers[{i}]") for i, t in enumerate(raw))
    names = [t.name for t in teachers]
    if len(set(names)) != len(names):
        raise ConfigError("annotate.teachers", f"teacher names must be unique, got {names}")
    retries = _int(sec.get("max_parse_retries", 2), "annotate.max_parse_retries")
    if retries < 0:
        raise ConfigError("annotate.max_parse_retries", "must be >= 0")
    cache = sec.get("cache", "cache/annotate.sqlite")
    if not isinstance(cache, str) or not cache:
        raise ConfigError("annotate.cache", "must be a file path")
    if Path(cache).parts and Path(cache).parts[0] == "data":
        raise ConfigError("annotate.cache", "must lie outside data/ (DVC outputs), or dvc repro would delete it")
    cfg = AnnotateConfig(dimensions=dims, prompts=prompts, teachers=teachers, max_parse_retries=retries, cache=cache)
    if deep:
        from .annotate.backends import make_backend

        for t in teachers:
            make_backend(t)
    return cfg


def merge_config(params: dict[str, Any], annotate: AnnotateConfig | None = None) -> MergeConfig:
    from .merge import EXPLANATION_METHODS, SCORE_METHODS

    sec = _section(params, "merge", MERGE_KEYS)
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
    min_valid = _int(sec.get("min_valid", 1), "merge.min_valid", positive=True)
    return MergeConfig(score=score, explanation=expl, judge=judge, summariser=summariser, min_valid=min_valid)


def golden_path(params: dict[str, Any]) -> str | None:
    sec = _section(params, "golden", GOLDEN_KEYS)
    path = sec.get("path")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ConfigError("golden.path", f"must be a path to a golden JSONL file or null, got {path!r}")
        if Path(path).is_absolute() or not Path(path).parts or Path(path).parts[0] != "golden" or ".." in Path(path).parts:
            # the golden stage depends on the golden/ folder, so DVC reruns it when the file changes
            raise ConfigError("golden.path", f"must be a file inside golden/ (a dependency of the golden stage), got {path!r}")
    return path


SPLIT_KEYS = {"train", "test", "seed", "mixed", "mixed_max_words"}
VARIANTS_KEYS = {"names", "seed"}
STATS_KEYS = {"tokenizer", "gguf_file", "context_limit"}


@dataclass(frozen=True)
class SplitConfig:
    train: int
    test: int
    seed: int
    mixed: bool
    mixed_max_words: int


def split_config(params: dict[str, Any]) -> SplitConfig:
    sec = _section(params, "split", SPLIT_KEYS)
    train = _int(sec.get("train"), "split.train", positive=True)
    test = _int(sec.get("test"), "split.test", positive=True)
    seed = _int(sec.get("seed", 0), "split.seed")
    mixed = sec.get("mixed", True)
    if not isinstance(mixed, bool):
        raise ConfigError("split.mixed", f"must be true or false, got {mixed!r}")
    max_words = _int(sec.get("mixed_max_words", 150), "split.mixed_max_words", positive=True)
    return SplitConfig(train=train, test=test, seed=seed, mixed=mixed, mixed_max_words=max_words)


def variants_config(params: dict[str, Any]) -> tuple[tuple[str, ...], int]:
    """(variant names, seed); every name is checked before any stage runs."""
    from .variants import validate_variants

    sec = _section(params, "variants", VARIANTS_KEYS)
    names = sec.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError("variants.names", f"must be a non-empty list of variant names, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError("variants.names", "lists a variant twice")
    validate_variants(names)
    return tuple(names), _int(sec.get("seed", 0), "variants.seed")


def stats_config(params: dict[str, Any]) -> tuple[str, str | None, int]:
    """(tokenizer: 'smollm2', a Hub id or a local folder; gguf_file or None; the student's context limit)."""
    sec = _section(params, "stats", STATS_KEYS)
    tok = sec.get("tokenizer")
    if not isinstance(tok, str) or not tok:
        raise ConfigError("stats.tokenizer", "must name the student's tokenizer: smollm2, a Hub id or a folder")
    gguf = sec.get("gguf_file")
    if gguf is not None and not isinstance(gguf, str):
        raise ConfigError("stats.gguf_file", f"must be a file name or null, got {gguf!r}")
    return tok, gguf, _int(sec.get("context_limit"), "stats.context_limit", positive=True)


def check_profile(params: dict[str, Any]) -> dict[str, Any]:
    """Check every section of a profile, deeply (loaders' options, fetch specs, teachers' backends).

    Returns a short summary. This is what ``explainft check`` and ``make repro`` run
    before any stage, so a bad key fails before work starts.
    """
    check_sections(params)
    data = data_config(params, deep=True)
    summary: dict[str, Any] = {"datasets": list(data.datasets)}
    acfg = None
    if "annotate" in params:
        acfg = annotate_config(params, deep=True)
        summary["teachers"] = [t.name for t in acfg.teachers]
    if "merge" in params:
        summary["merge"] = merge_config(params, acfg).score
    if "golden" in params:
        summary["golden"] = golden_path(params)
    if "split" in params:
        sc = split_config(params)
        summary["split"] = f"{sc.train}/{sc.test}"
    if "variants" in params:
        summary["variants"] = list(variants_config(params)[0])
    if "stats" in params:
        stats_config(params)
    return summary
