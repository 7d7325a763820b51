"""Validation helpers shared by the fetch kinds: type checks, the schema type, relative patterns.

A kind's ``SCHEMA`` maps each key to ``(type check, type description, default)``,
the default being :data:`REQUIRED` for a key that must be given;
``validate_fetch`` in ``__init__.py`` applies it before the kind's own checks.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ...errors import ConfigError

REQUIRED = object()
"""The default of a key that has none: leaving it out is a ConfigError."""

# key -> (type check, type description, default or REQUIRED)
Schema = dict[str, tuple[Callable[[Any], bool], str, Any]]


def is_str(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_str_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(is_str(x) for x in v)


def is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def check_relative_patterns(key: str, patterns: list[str]) -> None:
    """Each glob pattern stays inside the source (no leading '/', drive letter or '..'), and none repeats."""
    for p in patterns:
        parts = p.replace("\\", "/").split("/")
        if p.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", p) or ".." in parts:
            raise ConfigError(
                key, f"pattern {p!r} must be relative and stay inside the source (no leading '/', no '..')"
            )
    if len(set(patterns)) != len(patterns):
        raise ConfigError(key, f"repeats a pattern: {patterns!r}")
