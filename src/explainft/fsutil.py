"""Atomic file output: write to a temporary name in the same folder, then rename.

A crash (or ``kill -9``) mid-write leaves the old file or no file, never a
half-written one that DVC would cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on clean exit fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps(obj: Any) -> str:
    """The one JSON encoding used for records and metrics: UTF-8, sorted keys, stable."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write a small JSON document (metrics, manifests), sorted keys, indented."""
    with atomic_open(path) as fh:
        fh.write(json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2, allow_nan=False))
        fh.write("\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
