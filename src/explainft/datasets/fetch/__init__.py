"""The download stage: materialise one dataset's raw files, as published, into ``data/raw/<name>``.

``fetch(name, spec, out_dir)`` reads ``spec`` = ``sources.<name>.fetch`` from
params, downloads (or copies) the files in their original published format
into ``out_dir`` and writes ``out_dir/SOURCE.json``, a manifest::

    {"dataset": name, "from": kind, <identity of the source>,
     "files": {"<relative path>": {"bytes": n, "sha256": hex}, ...}}

with sorted keys and no timestamps, so re-fetching identical files gives a
byte-identical manifest. ``validate_fetch(name, spec)`` checks a spec without
fetching anything (for a config checker); it raises :class:`ConfigError` with
the key ``sources.<name>.fetch.<key>`` for unknown keys, missing keys, wrong
types and bad values, and returns the spec with defaults filled in.

Kinds (``spec["from"]``, see ``FETCH_KINDS``), one module each, whose
docstring documents the kind's keys and the identity it adds to the manifest:

* ``hub`` (``hub.py``) -- a Hugging Face dataset repository, pinned to a commit.
* ``url`` (``url.py``) -- files published over HTTP(S), with retries, checksums
  and optional zip extraction (``archive.py``).
* ``local`` (``local.py``) -- files the user already has.
* ``package`` (``package.py``) -- data shipped inside an installed Python package.

A kind module provides ``SCHEMA`` (key -> type check, description, default;
see ``spec.py``), ``validate_<kind>(base, cfg)`` for the checks beyond types,
and ``fetch_<kind>(job)`` returning the identity and the files it wrote.

Atomicity (``manifest.py``): the files are gathered in a temporary sibling
folder of ``out_dir``, which replaces ``out_dir`` only once the manifest is
written; a failed or killed fetch leaves the previous ``out_dir`` (or none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ...errors import ConfigError
from . import hub, local, package, url
from .manifest import MANIFEST, Fetcher, materialise
from .spec import REQUIRED, Schema

__all__ = ["FETCH_KINDS", "HUB_EXCLUDED", "MANIFEST", "fetch", "validate_fetch"]

log = logging.getLogger(__name__)

FETCH_KINDS = ("hub", "url", "local", "package")
HUB_EXCLUDED = hub.HUB_EXCLUDED

_SCHEMA: dict[str, Schema] = {"hub": hub.SCHEMA, "url": url.SCHEMA, "local": local.SCHEMA, "package": package.SCHEMA}
_VALIDATE_KIND: dict[str, Callable[[str, dict], None]] = {
    "hub": hub.validate_hub,
    "url": url.validate_url,
    "local": local.validate_local,
    "package": package.validate_package,
}
_KINDS: dict[str, Fetcher] = {
    "hub": hub.fetch_hub,
    "url": url.fetch_url,
    "local": local.fetch_local,
    "package": package.fetch_package,
}


def validate_fetch(name: str, spec: Any, base: str | None = None) -> dict[str, Any]:
    """Check ``sources.<name>.fetch`` (or the spec at params key ``base``); return it with defaults filled in.
    Raises ConfigError."""
    base = base or f"sources.{name}.fetch"
    if not isinstance(spec, dict):
        raise ConfigError(
            base, f"must be a mapping with a 'from' key (one of {', '.join(FETCH_KINDS)}), got {type(spec).__name__}"
        )
    kind = spec.get("from")
    if kind is None:
        raise ConfigError(f"{base}.from", f"is required: one of {', '.join(FETCH_KINDS)}")
    if kind not in FETCH_KINDS:
        raise ConfigError(f"{base}.from", f"must be one of {', '.join(FETCH_KINDS)}, got {kind!r}")
    schema = _SCHEMA[kind]
    for key in spec:
        if key != "from" and key not in schema:
            raise ConfigError(
                f"{base}.{key}", f"unknown key for from: {kind}; allowed keys: {', '.join(['from', *schema])}"
            )
    cfg: dict[str, Any] = {"from": kind}
    for key, (check, desc, default) in schema.items():
        if key not in spec or spec[key] is None:
            if default is REQUIRED:
                raise ConfigError(f"{base}.{key}", f"is required for from: {kind} ({desc})")
            cfg[key] = default
            continue
        value = spec[key]
        if not check(value):
            # never echo token_env's value: a user may have pasted the token itself there
            shown = "<hidden>" if key == "token_env" else repr(value)
            raise ConfigError(f"{base}.{key}", f"must be {desc}, got {shown}")
        cfg[key] = list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
    _VALIDATE_KIND[kind](base, cfg)
    return cfg


def fetch(name: str, spec: dict, out_dir: str | Path, base: str | None = None) -> dict[str, Any]:
    """Materialise dataset ``name``'s raw files into ``out_dir`` with a SOURCE.json manifest; returns the manifest.
    ``base`` is the spec's params key in error messages (default ``sources.<name>.fetch``)."""
    cfg = validate_fetch(name, spec, base)
    out_dir = Path(out_dir)
    manifest = materialise(name, cfg, out_dir, _KINDS[cfg["from"]])
    log.info("fetched %s: %d files into %s", name, len(manifest["files"]), out_dir)
    return manifest
