"""The fetch job, hashing and copying files into it, and the atomic swap of the output folder.

Atomicity: everything is built in a temporary sibling folder of ``out_dir``
(``.<name>.fetch-*``), which replaces ``out_dir`` by renames only once the
manifest (``SOURCE.json``) is written; a failed or killed fetch leaves the
previous ``out_dir`` (or none), never a half-filled one. Leftovers of killed
runs are removed at the next fetch of the same folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import DownloadError
from ...fsutil import write_json

log = logging.getLogger(__name__)

MANIFEST = "SOURCE.json"
CHUNK = 1 << 20
"""Bytes read or written at a time when copying, hashing and downloading."""


@dataclass
class Job:
    name: str
    cfg: dict[str, Any]
    out_dir: Path
    build: Path  # the temporary folder that becomes out_dir


# A kind's fetcher: fills job.build and returns (identity for the manifest, files: relative path -> {bytes, sha256}).
Fetcher = Callable[[Job], tuple[dict, dict]]


def materialise(name: str, cfg: dict[str, Any], out_dir: Path, fetcher: Fetcher) -> dict[str, Any]:
    """Run ``fetcher`` in a fresh build folder, write the manifest there and swap it in as ``out_dir``."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.fetch-", dir=parent))
    try:
        job = Job(name, cfg, out_dir, build)
        identity, files = fetcher(job)
        _check_tree(build, files)
        manifest = {"dataset": name, "from": cfg["from"], **identity, "files": dict(sorted(files.items()))}
        write_json(build / MANIFEST, manifest)
        _replace_dir(build, out_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return manifest


def _remove_leftovers(out_dir: Path) -> None:
    for pattern in (f".{out_dir.name}.fetch-*", f".{out_dir.name}.old-*"):
        for p in out_dir.parent.glob(pattern):
            log.warning("removing leftover of an interrupted fetch: %s", p)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def _replace_dir(build: Path, out_dir: Path) -> None:
    """Rename ``build`` to ``out_dir``; an existing ``out_dir`` is renamed away first, then deleted.

    POSIX has no portable atomic swap of two folders, so there is a moment with
    no ``out_dir`` at all, but never one with a half-filled ``out_dir``.
    """
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(6)}"
        os.rename(out_dir, old)
    os.rename(build, out_dir)
    with contextlib.suppress(OSError):  # make the renames durable where the platform allows it
        fd = os.open(out_dir.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def _check_tree(build: Path, files: dict[str, dict]) -> None:
    """What lies in the folder is exactly what the manifest lists (an internal consistency check)."""
    on_disk = {p.relative_to(build).as_posix() for p in build.rglob("*") if p.is_file() or p.is_symlink()}
    if on_disk != set(files):
        extra, missing = sorted(on_disk - set(files)), sorted(set(files) - on_disk)
        raise DownloadError(f"internal error: fetched files and manifest disagree (extra {extra}, missing {missing})")


def add_file(files: dict[str, dict], rel: str, info: dict, origin: str) -> None:
    """Record ``rel`` in ``files``; the manifest's own name and a path given twice are errors."""
    if rel == MANIFEST:
        raise DownloadError(f"{origin}: file {rel!r} would overwrite the manifest {MANIFEST}")
    if rel in files:
        raise DownloadError(f"{origin}: file {rel!r} is fetched twice (two sources give the same path)")
    files[rel] = info


def write_hashed(src, dst: Path) -> dict[str, Any]:
    """Copy the binary stream ``src`` to a new file ``dst``, hashing it; returns {bytes, sha256}."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    with open(dst, "xb") as fo:
        while block := src.read(CHUNK):
            fo.write(block)
            h.update(block)
            n += len(block)
        fo.flush()
        os.fsync(fo.fileno())
    return {"bytes": n, "sha256": h.hexdigest()}


def hash_file(path: Path) -> dict[str, Any]:
    """{bytes, sha256} of the file at ``path``."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            n += len(block)
    return {"bytes": n, "sha256": h.hexdigest()}


def copy_all(job: Job, sources: list[tuple[Path, str]], what: str) -> dict[str, dict]:
    """Copy each (source file, relative path) into the build folder as a real file; returns the files entries."""
    files: dict[str, dict] = {}
    for src, rel in sources:
        if rel == MANIFEST:
            raise DownloadError(f"{what}: file {rel!r} would overwrite the manifest {MANIFEST}")
        try:
            with open(src, "rb") as fh:  # follows symlinks: the copy is a real file
                add_file(files, rel, write_hashed(fh, job.build / rel), what)
        except OSError as err:
            raise DownloadError(f"{what}: cannot copy {src}: {first_line(err)}") from err
    return files


def first_line(err: BaseException) -> str:
    """``Type: first line of the message``, for one-line error messages."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else '(no message)'}"
