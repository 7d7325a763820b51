"""The ``data`` and ``sources`` sections: which datasets, how many conversations, where the raw files come from.

Only the shape is checked here; that each name is a registered dataset, each fetch spec is valid for its kind and
each loader accepts its options is checked by :func:`explainft.stages.check.check_profile`, which knows the
dataset library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from .fields import check_sections, integer

DATA_KEYS = {"datasets", "per_dataset", "seed", "on_error"}
SOURCE_KEYS = {"fetch", "options"}
# what a loader does with a malformed record: stop naming it, or count it and go on (data.on_error)
ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class DataConfig:
    datasets: tuple[str, ...]
    per_dataset: int | None
    seed: int
    on_error: str
    sources: dict[str, dict[str, Any]]

    def source(self, name: str) -> dict[str, Any]:
        if name not in self.datasets:
            raise ConfigError(
                "data.datasets", f"dataset {name!r} is not listed in data.datasets ({', '.join(self.datasets)})"
            )
        return self.sources[name]


def data_config(params: dict[str, Any], *, check_name: Callable[[str], object] | None = None) -> DataConfig:
    """Check the ``data`` and ``sources`` sections; ``check_name`` (the dataset registry's lookup, which raises
    naming the known datasets) is called on each name before the sources are read."""
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
    for n in names if check_name is not None else ():
        check_name(n)
    per = integer(data.get("per_dataset"), "data.per_dataset", positive=True, allow_none=True)
    seed = integer(data.get("seed", 0), "data.seed")
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
            raise ConfigError(
                f"sources.{n}",
                "missing: every dataset in data.datasets needs a sources entry "
                "with 'fetch' (where its raw files come from) and 'options'",
            )
        bad = sorted(set(src) - SOURCE_KEYS)
        if bad:
            raise ConfigError(f"sources.{n}.{bad[0]}", f"unknown key; known: {', '.join(sorted(SOURCE_KEYS))}")
        if not isinstance(src.get("fetch"), dict):
            raise ConfigError(f"sources.{n}.fetch", "missing or not a mapping")
        options = src.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"sources.{n}.options", "must be a mapping")
        out[n] = {"fetch": src["fetch"], "options": options}
    return DataConfig(datasets=tuple(names), per_dataset=per, seed=seed, on_error=on_error, sources=out)
