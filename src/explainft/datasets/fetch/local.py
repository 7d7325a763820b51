"""The ``local`` fetch kind: files the user already has.

Keys of ``sources.<name>.fetch`` with ``from: local``:

* ``path`` (str, required): a file or a folder; a relative path is relative
  to the current working directory (the repository root under DVC).
* ``patterns`` (list of str, optional, folder only): ``pathlib`` globs
  inside the folder (``*`` stays within one folder, ``**`` recurses);
  default: every file. Every pattern must match at least one file.

Files are copied (never linked: DVC must cache real files) with their
paths relative to the folder (a single file keeps its name). Identity:
``path`` (as written in params), ``patterns``.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DownloadError
from .manifest import Job, copy_all
from .spec import REQUIRED, Schema, check_relative_patterns, is_str, is_str_list

SCHEMA: Schema = {
    "path": (is_str, "a string (file or folder)", REQUIRED),
    "patterns": (is_str_list, "a non-empty list of glob patterns (strings)", None),
}


def validate_local(base: str, cfg: dict) -> None:
    if cfg["patterns"] is not None:
        check_relative_patterns(f"{base}.patterns", cfg["patterns"])


def _glob_files(folder: Path, patterns: list[str], what: str) -> list[tuple[Path, str]]:
    """(source file, relative path) for every file matching a pattern; each pattern must match one."""
    out: dict[str, Path] = {}
    for p in patterns:
        matched = [m for m in folder.glob(p) if m.is_file()]
        if not matched:
            raise DownloadError(f"{what}: pattern {p!r} matched no file in {folder}")
        for m in matched:
            out.setdefault(m.relative_to(folder).as_posix(), m)
    return [(out[rel], rel) for rel in sorted(out)]


def fetch_local(job: Job) -> tuple[dict, dict]:
    cfg = job.cfg
    given = cfg["path"]
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    what = f"local path {given!r}"
    if not path.exists():
        raise DownloadError(f"{what} does not exist (resolved to {path}; relative paths are relative to {Path.cwd()})")
    if path.is_dir():
        real = path.resolve()
        if job.out_dir.resolve() == real or job.out_dir.resolve().is_relative_to(real):
            raise DownloadError(f"{what} contains the output folder {job.out_dir}; point it at the source files only")
        sources = _glob_files(path, cfg["patterns"] or ["**/*"], what)
    elif cfg["patterns"] is not None:
        raise DownloadError(f"{what} is a file; 'patterns' only applies to a folder")
    else:
        sources = [(path, path.name)]
    return {"path": given, "patterns": cfg["patterns"]}, copy_all(job, sources, what)
