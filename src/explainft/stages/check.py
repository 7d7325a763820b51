"""The profile check ``explainft check`` and ``make repro`` run before any stage: every section of a profile,
deeply, so that a bad key fails naming it before work starts.

:mod:`explainft.config` checks each section's shape; here the library checks what only it knows: that each
dataset is registered, its fetch spec is valid for its kind and its loader accepts its options; that each
teacher's backend can be built with its options; and that each variant name parses.
"""

from __future__ import annotations

from typing import Any

from .. import datasets as registry
from ..annotate.backends import make_backend
from ..config import (
    analysis_config,
    annotate_config,
    check_sections,
    data_config,
    evaluate_config,
    finetune_config,
    golden_path,
    merge_config,
    split_config,
    stats_config,
    student_build_config,
    variants_config,
)
from ..datasets.fetch import validate_fetch
from ..datasets.prepare import resolve_options
from ..errors import ConfigError
from ..variants import validate_variants


def check_profile(params: dict[str, Any]) -> dict[str, Any]:
    """Check every section of a profile, deeply (loaders' options, fetch specs, teachers' backends, variant
    names); returns a short summary."""
    check_sections(params)
    data = data_config(params, check_name=registry.get)  # unknown name: an error listing the known ones
    for name in data.datasets:
        validate_fetch(name, data.sources[name]["fetch"])
        resolve_options(name, data.sources[name]["options"])
    summary: dict[str, Any] = {"datasets": list(data.datasets)}
    acfg = None
    if "annotate" in params:
        acfg = annotate_config(params)
        for t in acfg.teachers:
            make_backend(t)
        summary["teachers"] = [t.name for t in acfg.teachers]
    if "merge" in params:
        summary["merge"] = merge_config(params, acfg).score
    if "golden" in params:
        summary["golden"] = golden_path(params)
    if "split" in params:
        sc = split_config(params)
        summary["split"] = f"{sc.train}/{sc.validation}/{sc.test}"
    if "variants" in params:
        names = variants_config(params)[0]
        validate_variants(list(names))
        summary["variants"] = list(names)
    if "stats" in params:
        stats_config(params)
    if "student" in params:
        student_build_config(params)
    if "train" in params:
        if "ablation" not in params:  # dvc.yaml's ablation stages interpolate ${ablation.*}
            raise ConfigError(
                "ablation",
                "section missing; dvc.yaml's ablation stages read it. For no ablation "
                "grid: ablation: {sets: [], dimensions: [], variants: []}",
            )
        fc = finetune_config(params)
        summary["student"] = fc.student
        summary["finetunes"] = len(fc.cells())
    if "evaluate" in params:
        evaluate_config(params)
    if "analysis" in params:
        analysis_config(params)
    return summary
