"""Timings: how long a stage took, kept out of every DVC output.

A DVC output must be a function of the stage's inputs, so that a fresh clone's
``dvc repro`` reproduces the committed dvc.lock and ``dvc metrics diff`` between
two runs of the same code lists nothing. Wall-clock figures (seconds, steps or
tokens per second, the logit lens's cost relative to scoring, a teacher model's
load time) change from run to run, so the stages write them here instead:
``timings/<path>.json`` mirrors the metrics file it belongs to
(``timings/train/<cell>.json`` beside ``metrics/train/<cell>.json``,
``timings/student.json``, ``timings/analysis.json``,
``timings/annotate/<dataset>.json``). The folder is git-ignored and declared
nowhere in dvc.yaml; the stages print the same figures on the console.

The library functions that measure time (:func:`explainft.train.finetune`,
:func:`explainft.students.pretrain`) return their timings with their metrics;
the stage bodies split them off with :func:`split_timings` and write them with
:func:`write_timings`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from .fsutil import write_json

TIMINGS_DIR = "timings"


def timings_path(root: Path, rel: str) -> Path:
    """``<root>/timings/<rel>.json``; ``rel`` is the metrics file's path under metrics/, without ``.json``."""
    if not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise ValueError(f"timings path {rel!r} must be a relative path inside {TIMINGS_DIR}/ (e.g. 'train/<cell>')")
    return Path(root) / TIMINGS_DIR / f"{rel}.json"


def split_timings(metrics: Mapping[str, Any], keys: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics without keys, {key: value} of those present)``."""
    keys = set(keys)
    return ({k: v for k, v in metrics.items() if k not in keys}, {k: v for k, v in metrics.items() if k in keys})


def write_timings(root: Path, rel: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``values`` (floats rounded to microseconds, nested mappings alike) to :func:`timings_path`; returns
    what was written."""
    out = _rounded(values)
    write_json(timings_path(root, rel), out)
    return out


def read_timings(root: Path, rel: str) -> dict[str, Any]:
    """What :func:`write_timings` wrote for ``rel``; ``{}`` when there is no such file (e.g. another process wrote
    it, or the stage ran before timings were kept)."""
    path = timings_path(root, rel)
    return json.loads(path.read_text()) if path.is_file() else {}


def _rounded(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _rounded(v) if isinstance(v, Mapping) else round(v, 6) if isinstance(v, float) else v
        for k, v in values.items()
    }
