"""The ``package`` fetch kind: data shipped inside an installed Python package.

Keys of ``sources.<name>.fetch`` with ``from: package``:

* ``package`` (str, required): the import name, e.g. ``chatterbot_corpus``.
  It is located with ``importlib.util.find_spec``, not imported.
* ``files`` (list of str, required): ``pathlib`` globs inside the package
  folder, e.g. ``data/english/*.yml``; files keep these relative paths.
* ``distribution`` (str, optional): the pip distribution providing it;
  default: found from installed metadata (``chatterbot-corpus``).

Identity: ``package``, ``distribution``, ``version`` (installed), ``patterns``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

from ...errors import ConfigError, DownloadError
from .manifest import Job, copy_all
from .spec import REQUIRED, Schema, check_relative_patterns, is_str, is_str_list

SCHEMA: Schema = {
    "package": (is_str, "a string (the import name)", REQUIRED),
    "files": (is_str_list, "a non-empty list of glob patterns (strings)", REQUIRED),
    "distribution": (is_str, "a string (the pip distribution name)", None),
}

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def validate_package(base: str, cfg: dict) -> None:
    if not _MODULE.match(cfg["package"]):
        raise ConfigError(f"{base}.package", f"must be an import name like 'chatterbot_corpus', got {cfg['package']!r}")
    check_relative_patterns(f"{base}.files", cfg["files"])


def fetch_package(job: Job) -> tuple[dict, dict]:
    cfg = job.cfg
    pkg = cfg["package"]
    top = pkg.split(".")[0]
    dist = cfg["distribution"] or _distribution_of(top) or top.replace("_", "-")
    try:
        spec = importlib.util.find_spec(pkg)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise DownloadError(f"Python package {pkg!r} is not installed: install it with `pip install {dist}`")
    locations = list(spec.submodule_search_locations or [])
    if not locations:
        raise DownloadError(f"{pkg!r} is a module ({spec.origin}), not a package folder with data files")
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise DownloadError(
            f"Python package {pkg!r} is importable from {locations[0]} but the distribution "
            f"{dist!r} is not installed, so its version is unknown: `pip install {dist}` "
            f"(or set 'distribution')"
        ) from None
    what = f"package {pkg} ({dist} {version})"
    sources: dict[str, Path] = {}
    for p in cfg["files"]:
        found = False
        for loc in locations:
            for m in Path(loc).glob(p):
                if m.is_file():
                    found = True
                    sources.setdefault(m.relative_to(loc).as_posix(), m)
        if not found:
            raise DownloadError(f"{what}: pattern {p!r} matched no file in {', '.join(locations)}")
    files = copy_all(job, [(sources[rel], rel) for rel in sorted(sources)], what)
    identity = {"package": pkg, "distribution": dist, "version": version, "patterns": list(cfg["files"])}
    return identity, files


def _distribution_of(top: str) -> str | None:
    dists = importlib.metadata.packages_distributions().get(top) or []
    return sorted(dists)[0] if dists else None
