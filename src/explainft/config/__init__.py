"""Profiles: params.yaml (the embedded default) and configs/*.yaml, read once and checked section by section.

Every params section has its schema here, one typed object per section with its validators: a stage parses the
sections it reads at its entry (``load_params`` then e.g. :func:`finetune_config`) and passes those objects down.
An unknown key, a wrong type or a bad value fails naming the key (``data.per_dataset``, ``train.lora.r``).
Checks that need the library (a dataset's loader options, a teacher's backend, a variant's name) are made by
:func:`explainft.stages.check.check_profile`, which ``explainft check`` and ``make repro`` run before any stage.

This package imports nothing from the library above it (see the import contracts in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .annotate import AnnotateConfig, MergeConfig, TeacherConfig, annotate_config, golden_path, merge_config  # noqa: F401
from .data import DataConfig, data_config  # noqa: F401
from .evaluate import AnalysisConfig, EvaluateConfig, analysis_config, evaluate_config  # noqa: F401
from .fields import SECTIONS, check_sections, is_replication  # noqa: F401
from .human import HumanConfig, HumanSetConfig, human_config  # noqa: F401
from .split import (  # noqa: F401
    MIXED,
    Sizes,
    SplitConfig,
    StatsConfig,
    split_config,
    split_sets,
    stats_config,
    variants_config,
)
from .train import (  # noqa: F401
    TRAIN_OWN_KEYS,
    AblationConfig,
    FinetuneConfig,
    StudentBuild,
    TrainConfig,
    finetune_config,
    student_build_config,
    train_config,
)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The profile at ``path`` as a mapping whose sections are all known (each section is checked by its parser)."""
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
