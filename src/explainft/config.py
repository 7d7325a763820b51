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
SECTIONS = ("profile", "data", "sources")
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
