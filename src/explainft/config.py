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
SECTIONS = ("profile", "data", "sources", "annotate", "merge", "golden", "split", "variants", "stats", "student",
            "train", "ablation", "evaluate", "analysis")
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

ANNOTATE_KEYS = {"dimensions", "prompts", "teachers", "max_parse_retries", "cache", "max_failed_share"}
MERGE_KEYS = {"score", "explanation", "judge", "summariser", "min_valid"}
GOLDEN_KEYS = {"path"}


@dataclass(frozen=True)
class AnnotateConfig:
    dimensions: tuple[str, ...]
    prompts: tuple[str, ...]
    teachers: tuple[Any, ...]  # annotate.base.TeacherConfig
    max_parse_retries: int
    cache: str
    # largest share of `failed` ratings allowed per teacher × prompt × dimension (annotate.engine.check_failed_share)
    max_failed_share: float = 0.02

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
    share = sec.get("max_failed_share", 0.02)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError("annotate.max_failed_share", "must be a number from 0 to 1: the largest share of a "
                                                       "teacher × prompt × dimension's requests that may fail "
                                                       f"(0.02 = 2%), got {share!r}")
    cfg = AnnotateConfig(dimensions=dims, prompts=prompts, teachers=teachers, max_parse_retries=retries, cache=cache,
                         max_failed_share=float(share))
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


SPLIT_KEYS = {"train", "validation", "test", "seed", "mixed", "mixed_max_words"}
VARIANTS_KEYS = {"names", "seed"}
STATS_KEYS = {"tokenizer", "gguf_file", "context_limit"}


@dataclass(frozen=True)
class SplitConfig:
    """The ``split`` section: three disjoint sizes (validation is added to train and test, not carved from train)."""

    train: int
    validation: int
    test: int
    seed: int
    mixed: bool
    mixed_max_words: int

    def sizes(self) -> Any:
        from .split import Sizes

        return Sizes(train=self.train, validation=self.validation, test=self.test)


def split_config(params: dict[str, Any]) -> SplitConfig:
    sec = _section(params, "split", SPLIT_KEYS)
    train = _int(sec.get("train"), "split.train", positive=True)
    if "validation" not in sec:
        raise ConfigError("split.validation", "missing: the validation split's size (added to split.train and "
                                              "split.test), which every choice made from data reads, e.g. 200")
    validation = _int(sec.get("validation"), "split.validation", positive=True)
    test = _int(sec.get("test"), "split.test", positive=True)
    seed = _int(sec.get("seed", 0), "split.seed")
    mixed = sec.get("mixed", True)
    if not isinstance(mixed, bool):
        raise ConfigError("split.mixed", f"must be true or false, got {mixed!r}")
    max_words = _int(sec.get("mixed_max_words", 150), "split.mixed_max_words", positive=True)
    return SplitConfig(train=train, validation=validation, test=test, seed=seed, mixed=mixed,
                       mixed_max_words=max_words)


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


# --------------------------------------------------------------------------- student, train

STUDENT_KEYS = {"tiny", "pretrain"}
TINY_KEYS = {"seed", "vocab_size", "hidden", "layers", "heads", "kv_heads", "intermediate", "max_positions"}
PRETRAIN_KEYS = {"steps", "lr", "batch_size", "seq_len", "seed"}
# keys of the train section read here; the rest are TrainConfig fields (explainft.train.train_config)
TRAIN_OWN_KEYS = {"student", "sets", "dimensions", "variants", "seeds", "method", "quantization", "lora", "gradient_checkpointing", "num_processes",
                  "accelerate_config", "device"}


@dataclass(frozen=True)
class StudentBuild:
    """How ``train.student: tiny`` is built (``student.tiny``) and pretrained (``student.pretrain``)."""

    tiny: dict[str, int]
    pretrain: dict[str, Any]


def student_build_config(params: dict[str, Any]) -> StudentBuild:
    sec = params.get("student") or {}
    if not isinstance(sec, dict):
        raise ConfigError("student", "must be a mapping with tiny: and pretrain:")
    unknown = sorted(set(sec) - STUDENT_KEYS)
    if unknown:
        raise ConfigError(f"student.{unknown[0]}", f"unknown key; known: {', '.join(sorted(STUDENT_KEYS))}")
    out: dict[str, dict[str, Any]] = {}
    for name, keys in (("tiny", TINY_KEYS), ("pretrain", PRETRAIN_KEYS)):
        sub = sec.get(name) or {}
        if not isinstance(sub, dict):
            raise ConfigError(f"student.{name}", "must be a mapping")
        bad = sorted(set(sub) - keys)
        if bad:
            raise ConfigError(f"student.{name}.{bad[0]}", f"unknown key; known: {', '.join(sorted(keys))}")
        vals: dict[str, Any] = {}
        for k, v in sub.items():
            if name == "pretrain" and k == "lr":
                v = _float(v, "student.pretrain.lr")
            else:
                v = _int(v, f"student.{name}.{k}", positive=(k != "seed"))
            vals[k] = v
        out[name] = vals
    return StudentBuild(tiny=out["tiny"], pretrain=out["pretrain"])


def _float(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML reads 5e-5 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ConfigError(key, f"must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FinetuneConfig:
    """The ``train`` section: the student, the grid's training sets, the method and the TrainConfig."""

    student: str
    sets: tuple[str, ...]
    dimensions: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    method: str
    quantization: str
    lora: dict[str, Any] | None
    gradient_checkpointing: bool
    num_processes: int
    accelerate_config: str | None
    device: str
    train: Any  # explainft.train.TrainConfig
    ablation: "AblationConfig | None" = None

    def cells(self) -> list[tuple[str, str, str, int]]:
        """Every (set, dimension, variant, seed) this profile fine-tunes: the main grid, then the ablation grid."""
        main = [(s, d, v, k) for s in self.sets for d in self.dimensions for v in self.variants for k in self.seeds]
        return main + (self.ablation.cells(self.seeds) if self.ablation else [])

    def check_cell(self, train_set: str, dimension: str, variant: str, seed: int) -> None:
        """ConfigError naming the key when the cell is in neither grid (train.* nor ablation.*)."""
        if (train_set, dimension, variant, seed) in self.cells():
            return
        if seed not in self.seeds:
            raise ConfigError("train.seeds", f"{seed!r} is not listed ({', '.join(map(str, self.seeds))})")
        ab = self.ablation
        if ab is not None and variant in ab.variants:
            for value, allowed, key in ((train_set, ab.sets, "ablation.sets"),
                                        (dimension, ab.dimensions, "ablation.dimensions")):
                if value not in allowed:
                    raise ConfigError(key, f"{value!r} is not listed ({', '.join(allowed)})")
        for value, allowed, key in ((train_set, self.sets, "train.sets"), (dimension, self.dimensions, "train.dimensions"),
                                    (variant, self.variants + (ab.variants if ab else ()), "train.variants")):
            if value not in allowed:
                raise ConfigError(key, f"{value!r} is not listed ({', '.join(map(str, allowed))})")
        raise ConfigError("train.variants", f"cell {train_set}/{dimension}/{variant} is not in the grid")


ABLATION_KEYS = {"sets", "dimensions", "variants"}


@dataclass(frozen=True)
class AblationConfig:
    """The ``ablation`` section: extra variants fine-tuned on a few sets x dimensions only (the paper trains the
    type, length and random-word ablations on Mixed), with the main grid's settings and seeds."""

    sets: tuple[str, ...]
    dimensions: tuple[str, ...]
    variants: tuple[str, ...]

    def cells(self, seeds: tuple[int, ...]) -> list[tuple[str, str, str, int]]:
        return [(s, d, v, k) for s in self.sets for d in self.dimensions for v in self.variants for k in seeds]


def ablation_config(params: dict[str, Any], main_sets: tuple[str, ...], main_dims: tuple[str, ...],
                    main_variants: tuple[str, ...]) -> AblationConfig | None:
    """Check the ``ablation`` section against the main grid; None when absent or when it lists no variants.

    Its sets and dimensions must be in the main grid (the ablation is read against that grid's score-only and
    explanation models); its variants must be built (variants.names) and not already in train.variants (both
    grids would write the same model).
    """
    sec = params.get("ablation")
    if sec is None:
        return None
    if not isinstance(sec, dict):
        raise ConfigError("ablation", f"must be a mapping ({', '.join(sorted(ABLATION_KEYS))}), got {sec!r}")
    unknown = sorted(set(sec) - ABLATION_KEYS)
    if unknown:
        raise ConfigError(f"ablation.{unknown[0]}", f"unknown key; known: {', '.join(sorted(ABLATION_KEYS))}")
    variants = sec.get("variants", [])
    if variants == []:
        return None
    built = variants_config(params)[0]
    variants = _str_list(variants, "ablation.variants", built)
    twice = [v for v in variants if v in main_variants]
    if twice:
        raise ConfigError("ablation.variants", f"{twice[0]!r} is already in train.variants (the main grid trains it "
                                               "on every set and dimension); list it in one of the two")
    sets = _str_list(sec.get("sets"), "ablation.sets", main_sets)
    dims = _str_list(sec.get("dimensions"), "ablation.dimensions", main_dims)
    return AblationConfig(sets=sets, dimensions=dims, variants=variants)


def finetune_config(params: dict[str, Any]) -> FinetuneConfig:
    """Check the ``train`` section (every key; the sets against the split sets) before any training."""
    from .students import METHODS, QUANTIZATIONS
    from .train import train_config

    sec = params.get("train")
    if not isinstance(sec, dict):
        raise ConfigError("train", "section missing or not a mapping")
    if "seed" in sec:
        raise ConfigError("train.seed", "use train.seeds, a list (one fine-tune per seed; results are averaged "
                                        "and intervals cover seed variance), e.g. seeds: [0]")
    tc = train_config(sec, allow=TRAIN_OWN_KEYS)
    seeds = sec.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
        raise ConfigError("train.seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("train.seeds", "lists a seed twice")
    student = sec.get("student")
    if not isinstance(student, str) or not student.strip():
        raise ConfigError("train.student", "must name the student: tiny, smollm2, a local model folder or a Hub id")
    from .pipeline import split_sets

    known = tuple(split_sets(params))
    sets = _str_list(sec.get("sets"), "train.sets", known)
    all_dims = annotate_config(params, deep=False).dimensions
    dims = _str_list(sec.get("dimensions", list(all_dims)), "train.dimensions", tuple(all_dims))
    all_variants = variants_config(params)[0]
    variants = _str_list(sec.get("variants", list(all_variants)), "train.variants", tuple(all_variants))
    method = sec.get("method", "lora")
    if method not in METHODS:
        raise ConfigError("train.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    quant = sec.get("quantization", "auto")
    if quant not in QUANTIZATIONS:
        raise ConfigError("train.quantization", f"must be one of {', '.join(QUANTIZATIONS)}, got {quant!r}")
    if quant == "nf4" and method == "full":
        raise ConfigError("train.quantization", "nf4 weights cannot be fully fine-tuned; use method: lora (QLoRA) "
                                                "or quantization: none")
    lora = sec.get("lora")
    if lora is not None and not isinstance(lora, dict):
        raise ConfigError("train.lora", f"must be a mapping (r, alpha, dropout, target_modules, modules_to_save), "
                                        f"got {lora!r}")
    if method == "lora":
        from .students import _lora_settings

        _lora_settings(lora)  # unknown keys and bad values fail here, before any stage runs
    gc = sec.get("gradient_checkpointing", False)
    if not isinstance(gc, bool):
        raise ConfigError("train.gradient_checkpointing", f"expected true or false, got {gc!r}")
    nproc = _int(sec.get("num_processes", 1), "train.num_processes", positive=True)
    acc = sec.get("accelerate_config")
    if acc is not None and (not isinstance(acc, str) or not acc):
        raise ConfigError("train.accelerate_config", f"must be a path to an accelerate config file or null, got {acc!r}")
    device = sec.get("device", "auto")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ConfigError("train.device", f"must be auto, cpu, cuda or cuda:N, got {device!r}")
    return FinetuneConfig(student=student.strip(), sets=sets, dimensions=dims, variants=variants,
                          seeds=tuple(seeds), method=method, quantization=quant, lora=lora,
                          gradient_checkpointing=gc, num_processes=nproc, accelerate_config=acc, device=device,
                          train=tc, ablation=ablation_config(params, sets, dims, variants))


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
        summary["split"] = f"{sc.train}/{sc.validation}/{sc.test}"
    if "variants" in params:
        summary["variants"] = list(variants_config(params)[0])
    if "stats" in params:
        stats_config(params)
    if "student" in params:
        student_build_config(params)
    if "train" in params:
        if "ablation" not in params:  # dvc.yaml's ablation stages interpolate ${ablation.*}
            raise ConfigError("ablation", "section missing; dvc.yaml's ablation stages read it. For no ablation "
                                          "grid: ablation: {sets: [], dimensions: [], variants: []}")
        fc = finetune_config(params)
        summary["student"] = fc.student
        summary["finetunes"] = len(fc.cells())
    if "evaluate" in params:
        from .evaluation import evaluate_config

        evaluate_config(params)
    if "analysis" in params:
        from .analyses import analysis_config

        analysis_config(params)
    return summary
