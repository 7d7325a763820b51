"""The ``evaluate`` and ``analysis`` sections: how test sets are scored and bootstrapped, and how the analyse
stage reads the trained pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .fields import integer

EVALUATE_KEYS = {"batch_size", "bootstrap", "ci", "seed"}


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 32
    bootstrap: int = 2000  # resamples for the paired bootstrap intervals (report)
    ci: float = 0.95
    seed: int = 0


def evaluate_config(params: dict[str, Any]) -> EvaluateConfig:
    sec = params.get("evaluate") or {}
    if not isinstance(sec, dict):
        raise ConfigError("evaluate", "must be a mapping (batch_size, bootstrap, ci, seed)")
    unknown = sorted(set(sec) - EVALUATE_KEYS)
    if unknown:
        raise ConfigError(f"evaluate.{unknown[0]}", f"unknown key; known: {', '.join(sorted(EVALUATE_KEYS))}")
    d = EvaluateConfig()
    ci = sec.get("ci", d.ci)
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0.5 <= ci < 1:
        raise ConfigError("evaluate.ci", f"must be a coverage in [0.5, 1), e.g. 0.95, got {ci!r}")
    boot = integer(sec.get("bootstrap", d.bootstrap), "evaluate.bootstrap", positive=True)
    if boot < 100:
        raise ConfigError("evaluate.bootstrap", f"use at least 100 resamples (2000 is usual), got {boot}")
    return EvaluateConfig(
        batch_size=integer(sec.get("batch_size", d.batch_size), "evaluate.batch_size", positive=True),
        bootstrap=boot,
        ci=float(ci),
        seed=integer(sec.get("seed", d.seed), "evaluate.seed"),
    )


ANALYSIS_KEYS = {"lens_items", "batch_size", "heatmaps"}


@dataclass(frozen=True)
class AnalysisConfig:
    lens_items: int = 200
    batch_size: int = 16
    heatmaps: str = "mixed"  # the training set whose per-cell heatmaps are drawn ("all" for every set)


def analysis_config(params: dict[str, Any]) -> AnalysisConfig:
    sec = params.get("analysis") or {}
    if not isinstance(sec, dict):
        raise ConfigError("analysis", "must be a mapping (lens_items, batch_size, heatmaps)")
    unknown = sorted(set(sec) - ANALYSIS_KEYS)
    if unknown:
        raise ConfigError(f"analysis.{unknown[0]}", f"unknown key; known: {', '.join(sorted(ANALYSIS_KEYS))}")
    d = AnalysisConfig()
    heat = sec.get("heatmaps", d.heatmaps)
    if not isinstance(heat, str) or not heat:
        raise ConfigError("analysis.heatmaps", f"must name a training set or 'all', got {heat!r}")
    return AnalysisConfig(
        lens_items=integer(sec.get("lens_items", d.lens_items), "analysis.lens_items", positive=True),
        batch_size=integer(sec.get("batch_size", d.batch_size), "analysis.batch_size", positive=True),
        heatmaps=heat,
    )
