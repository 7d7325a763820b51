"""Field checks shared by every section's schema: each failure is a ConfigError naming the params key."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

# Sections a profile may hold.
SECTIONS = (
    "profile",
    "replication",
    "data",
    "sources",
    "annotate",
    "merge",
    "golden",
    "human",
    "split",
    "variants",
    "stats",
    "student",
    "train",
    "ablation",
    "evaluate",
    "analysis",
)


def check_sections(params: dict[str, Any], where: str = "the profile") -> None:
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(unknown[0], f"unknown section in {where}; known sections: {', '.join(SECTIONS)}")
    if "profile" in params and not isinstance(params["profile"], str):
        raise ConfigError("profile", f"must be the profile's name (a string), got {params['profile']!r}")
    if "replication" in params and not isinstance(params["replication"], bool):
        raise ConfigError(
            "replication",
            f"must be true (this profile claims to replicate the paper: every Hub download, tokenizer and "
            f"student pinned to a commit) or false, got {params['replication']!r}",
        )


def is_replication(params: dict[str, Any]) -> bool:
    """``replication: true``: the profile claims to be a replication, so :func:`explainft.stages.check.check_profile`
    requires every Hub revision it names to be a commit hash (default false)."""
    check_sections(params)
    return params.get("replication", False) is True


def integer(value: Any, key: str, *, positive: bool = False, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer{' or null' if allow_none else ''}, got {value!r}")
    if positive and value < 1:
        raise ConfigError(key, f"must be a positive integer, got {value!r}")
    return value


def positive_number(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML reads 5e-5 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(key, f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ConfigError(key, f"must be a positive number, got {value!r}")
    return float(value)


def section(params: dict[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    """``params[name]``, a mapping whose keys are all in ``keys``."""
    check_sections(params)
    sec = params.get(name)
    if not isinstance(sec, dict):
        raise ConfigError(name, "section missing or not a mapping")
    unknown = sorted(set(sec) - keys)
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", f"unknown key; known: {', '.join(sorted(keys))}")
    return sec


def str_list(value: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"must be a non-empty list of names from {', '.join(allowed)}, got {value!r}")
    bad = [v for v in value if v not in allowed]
    if bad:
        raise ConfigError(key, f"unknown {bad[0]!r}; known: {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ConfigError(key, "lists a name twice")
    return tuple(value)
