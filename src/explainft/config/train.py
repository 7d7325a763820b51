"""The ``student``, ``train`` and ``ablation`` sections: which student, how it is built, the fine-tune grid and the
training settings of one fine-tune (:class:`TrainConfig`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from .annotate import annotate_config
from .fields import integer, positive_number, str_list
from .split import split_sets, variants_config

QUANTIZATIONS = ("auto", "nf4", "none")
METHODS = ("lora", "full")
# where the explanation goes in a training target: after the score (the paper's) or before it (explainft.encode)
POSITIONS = ("after", "before")
SCORE_TARGETS = ("hard", "soft")
# The seven projections the paper adapts (Llama/Mistral module names; SmolLM2 is Llama and shares them).
PROJECTIONS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LORA_DEFAULTS: dict[str, Any] = {
    "r": 16,
    "alpha": 32,
    "dropout": 0.05,
    "target_modules": list(PROJECTIONS),
    "modules_to_save": None,
}


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` params section (validated by :func:`train_config`)."""

    epochs: int = 3
    learning_rate: float = 5e-5  # the paper's
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 512
    seed: int = 0
    eval_steps: int | None = None  # None: evaluate (and checkpoint) per epoch only
    explanation_position: str = "after"
    score_target: str = "hard"  # hard: the label's token (the paper's) | soft: two-hot on the score (see two_hot)
    score_weight: float = (
        1.0  # the score token's weight in the training loss (1: every target token alike, the paper's)
    )
    group_by_length: bool = True
    save_total_limit: int | None = 2
    logging_steps: int = 10


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def train_config(params_section: Mapping[str, Any] | None, *, allow: Iterable[str] = ()) -> TrainConfig:
    """Validate the ``train`` params section into a :class:`TrainConfig`; defaults for missing keys.

    Keys that are neither TrainConfig fields nor in ``allow`` (keys another
    module reads from the same section, e.g. ``method``, ``lora``) raise
    ConfigError, so that a typo is never ignored. Errors name ``train.<key>``.
    """
    if params_section is None:
        params_section = {}
    if not isinstance(params_section, Mapping):
        raise ConfigError("train", f"must be a mapping, got {type(params_section).__name__}")
    allowed = set(allow)
    unknown = sorted(k for k in params_section if k not in _FIELDS and k not in allowed)
    if unknown:
        raise ConfigError(f"train.{unknown[0]}", f"unknown key; known: {', '.join(sorted(_FIELDS | allowed))}")
    p = {k: v for k, v in params_section.items() if k in _FIELDS}
    d = TrainConfig()

    def integer(key: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
        v = p.get(key, getattr(d, key))
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"train.{key}", f"expected an integer{' or null' if allow_none else ''}, got {v!r}")
        if v < minimum:
            raise ConfigError(f"train.{key}", f"must be >= {minimum}, got {v!r}")
        return v

    def positive(key: str, what: str) -> float:
        v = p.get(key, getattr(d, key))
        if isinstance(v, str):  # YAML reads "5e-5" (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                raise ConfigError(f"train.{key}", f"expected a number, got {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ConfigError(f"train.{key}", f"must be a positive finite number ({what}), got {v!r}")
        return float(v)

    lr = positive("learning_rate", "the paper's is 5e-5")
    score_weight = positive("score_weight", "1 weighs the score token like every other target token, the paper's")
    position = p.get("explanation_position", d.explanation_position)
    if position not in POSITIONS:
        raise ConfigError("train.explanation_position", f"must be one of {', '.join(POSITIONS)}, got {position!r}")
    score_target = p.get("score_target", d.score_target)
    if score_target not in SCORE_TARGETS:
        raise ConfigError("train.score_target", f"must be one of {', '.join(SCORE_TARGETS)}, got {score_target!r}")
    gbl = p.get("group_by_length", d.group_by_length)
    if not isinstance(gbl, bool):
        raise ConfigError("train.group_by_length", f"expected true or false, got {gbl!r}")
    return TrainConfig(
        epochs=integer("epochs"),
        learning_rate=float(lr),
        batch_size=integer("batch_size"),
        grad_accum=integer("grad_accum"),
        max_length=integer("max_length", minimum=8),
        seed=integer("seed", minimum=0),
        eval_steps=integer("eval_steps", allow_none=True),
        explanation_position=position,
        score_target=score_target,
        score_weight=score_weight,
        group_by_length=gbl,
        save_total_limit=integer("save_total_limit", allow_none=True),
        logging_steps=integer("logging_steps"),
    )


def lora_settings(lora: dict | None) -> dict[str, Any]:
    """``train.lora`` with the defaults filled in (the paper's r 16, alpha 32, dropout 0.05 on ``PROJECTIONS``)."""
    settings = dict(LORA_DEFAULTS)
    unknown = sorted(set(lora or {}) - set(LORA_DEFAULTS))
    if unknown:
        raise ConfigError("train.lora", f"unknown key(s) {unknown}; allowed: {sorted(LORA_DEFAULTS)}")
    settings.update({k: v for k, v in (lora or {}).items() if v is not None or k == "modules_to_save"})
    tm = settings["target_modules"]
    if isinstance(tm, str):
        tm = [tm]
    if not tm:
        raise ConfigError("train.lora.target_modules", "is empty; list module names such as " + ", ".join(PROJECTIONS))
    settings["target_modules"] = list(tm)
    mts = settings["modules_to_save"]
    settings["modules_to_save"] = [mts] if isinstance(mts, str) else (list(mts) if mts else None)
    if not (isinstance(settings["r"], int) and settings["r"] > 0):
        raise ConfigError("train.lora.r", f"must be a positive integer, got {settings['r']!r}")
    if not (0 <= float(settings["dropout"]) < 1):
        raise ConfigError("train.lora.dropout", f"must be in [0, 1), got {settings['dropout']!r}")
    return settings


STUDENT_KEYS = {"tiny", "pretrain"}
TINY_KEYS = {"seed", "vocab_size", "hidden", "layers", "heads", "kv_heads", "intermediate", "max_positions"}
PRETRAIN_KEYS = {"steps", "lr", "batch_size", "seq_len", "seed"}
# keys of the train section read by finetune_config; the rest are TrainConfig fields (train_config)
TRAIN_OWN_KEYS = {
    "student",
    "student_revision",
    "sets",
    "dimensions",
    "variants",
    "seeds",
    "method",
    "quantization",
    "lora",
    "gradient_checkpointing",
    "num_processes",
    "accelerate_config",
    "device",
}


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
                v = positive_number(v, "student.pretrain.lr")
            else:
                v = integer(v, f"student.{name}.{k}", positive=(k != "seed"))
            vals[k] = v
        out[name] = vals
    return StudentBuild(tiny=out["tiny"], pretrain=out["pretrain"])


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
    train: TrainConfig
    ablation: "AblationConfig | None" = None
    # the revision of a Hub student to pin (a branch, tag or, best, a 40-hex commit sha); the student stage records
    # the commit it resolves to in models/student/STUDENT.json, which every loader passes to from_pretrained
    student_revision: str | None = None

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
            for value, allowed, key in (
                (train_set, ab.sets, "ablation.sets"),
                (dimension, ab.dimensions, "ablation.dimensions"),
            ):
                if value not in allowed:
                    raise ConfigError(key, f"{value!r} is not listed ({', '.join(allowed)})")
        for value, allowed, key in (
            (train_set, self.sets, "train.sets"),
            (dimension, self.dimensions, "train.dimensions"),
            (variant, self.variants + (ab.variants if ab else ()), "train.variants"),
        ):
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


def ablation_config(
    params: dict[str, Any], main_sets: tuple[str, ...], main_dims: tuple[str, ...], main_variants: tuple[str, ...]
) -> AblationConfig | None:
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
    variants = str_list(variants, "ablation.variants", built)
    twice = [v for v in variants if v in main_variants]
    if twice:
        raise ConfigError(
            "ablation.variants",
            f"{twice[0]!r} is already in train.variants (the main grid trains it "
            "on every set and dimension); list it in one of the two",
        )
    sets = str_list(sec.get("sets"), "ablation.sets", main_sets)
    dims = str_list(sec.get("dimensions"), "ablation.dimensions", main_dims)
    return AblationConfig(sets=sets, dimensions=dims, variants=variants)


def finetune_config(params: dict[str, Any]) -> FinetuneConfig:
    """Check the ``train`` section (every key; the sets against the split sets) before any training."""
    sec = params.get("train")
    if not isinstance(sec, dict):
        raise ConfigError("train", "section missing or not a mapping")
    if "seed" in sec:
        raise ConfigError(
            "train.seed",
            "use train.seeds, a list (one fine-tune per seed; results are averaged "
            "and intervals cover seed variance), e.g. seeds: [0]",
        )
    tc = train_config(sec, allow=TRAIN_OWN_KEYS)
    seeds = sec.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)
    ):
        raise ConfigError("train.seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError("train.seeds", "lists a seed twice")
    student = sec.get("student")
    if not isinstance(student, str) or not student.strip():
        raise ConfigError("train.student", "must name the student: tiny, smollm2, a local model folder or a Hub id")
    known = tuple(split_sets(params))
    sets = str_list(sec.get("sets"), "train.sets", known)
    all_dims = annotate_config(params).dimensions
    dims = str_list(sec.get("dimensions", list(all_dims)), "train.dimensions", tuple(all_dims))
    all_variants = variants_config(params)[0]
    variants = str_list(sec.get("variants", list(all_variants)), "train.variants", tuple(all_variants))
    method = sec.get("method", "lora")
    if method not in METHODS:
        raise ConfigError("train.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    quant = sec.get("quantization", "auto")
    if quant not in QUANTIZATIONS:
        raise ConfigError("train.quantization", f"must be one of {', '.join(QUANTIZATIONS)}, got {quant!r}")
    if quant == "nf4" and method == "full":
        raise ConfigError(
            "train.quantization",
            "nf4 weights cannot be fully fine-tuned; use method: lora (QLoRA) or quantization: none",
        )
    lora = sec.get("lora")
    if lora is not None and not isinstance(lora, dict):
        raise ConfigError(
            "train.lora", f"must be a mapping (r, alpha, dropout, target_modules, modules_to_save), got {lora!r}"
        )
    if method == "lora":
        lora_settings(lora)  # unknown keys and bad values fail here, before any stage runs
    gc = sec.get("gradient_checkpointing", False)
    if not isinstance(gc, bool):
        raise ConfigError("train.gradient_checkpointing", f"expected true or false, got {gc!r}")
    nproc = integer(sec.get("num_processes", 1), "train.num_processes", positive=True)
    acc = sec.get("accelerate_config")
    if acc is not None and (not isinstance(acc, str) or not acc):
        raise ConfigError(
            "train.accelerate_config", f"must be a path to an accelerate config file or null, got {acc!r}"
        )
    device = sec.get("device", "auto")
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ConfigError("train.device", f"must be auto, cpu, cuda or cuda:N, got {device!r}")
    revision = _check_student_revision(sec.get("student_revision"), student.strip())
    return FinetuneConfig(
        student=student.strip(),
        sets=sets,
        dimensions=dims,
        variants=variants,
        seeds=tuple(seeds),
        method=method,
        quantization=quant,
        lora=lora,
        gradient_checkpointing=gc,
        num_processes=nproc,
        accelerate_config=acc,
        device=device,
        train=tc,
        ablation=ablation_config(params, sets, dims, variants),
        student_revision=revision,
    )


def _check_student_revision(value: Any, student: str) -> str | None:
    """``train.student_revision``: null, or a non-empty string without whitespace (for a Hub id a 40-hex commit
    sha is expected: a branch or tag moves; the student stage resolves either to the commit it is now). The
    named students (tiny, smollm2) are built here and have no revisions."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise ConfigError(
            "train.student_revision",
            f"must be null or a revision (a 40-hex commit sha, a branch or tag), got {value!r}",
        )
    if student in ("tiny", "smollm2"):
        raise ConfigError(
            "train.student_revision",
            f"{student} is built by the student stage and has no revisions; set it to null (it pins a Hub student)",
        )
    return value.strip()
