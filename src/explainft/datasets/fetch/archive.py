"""Zip extraction for the ``url`` kind's ``extract: true``: every member checked, hashed while written.

Members with absolute paths or ``..`` (zip-slip) and symbolic links are errors;
macOS metadata (``__MACOSX/``, ``.DS_Store``) is skipped and reported, so the
manifest can list it.
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ...errors import DownloadError
from .manifest import MANIFEST, first_line, write_hashed


def _safe_member(name: str) -> str | None:
    """The member's relative POSIX path, or None if it could escape the target folder (zip-slip)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return None
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def extract_zip(archive: Path, dest: Path, url: str, existing: dict) -> tuple[dict[str, dict], list[str]]:
    """Unpack ``archive`` into ``dest``; returns (relative path -> {bytes, sha256}, sorted skipped members).

    ``existing`` holds the files already fetched, which a member must not collide with.
    """
    # Hand-written instead of ZipFile.extractall: extractall silently rewrites unsafe names, whereas a
    # zip-slip member here is an error; and each member is hashed while it is written.
    files: dict[str, dict] = {}
    skipped: list[str] = []
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{url}: not a valid zip archive ({err})") from err
    with zf:
        infos = zf.infolist()
        for info in infos:  # check every name before writing anything
            if _safe_member(info.filename) is None:
                raise DownloadError(f"{url}: unsafe path in zip archive (zip-slip): {info.filename!r}")
        for info in infos:
            rel = _safe_member(info.filename)
            assert rel is not None
            if info.is_dir():
                continue
            if rel.split("/")[0] == "__MACOSX" or PurePosixPath(rel).name == ".DS_Store":
                skipped.append(rel)
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DownloadError(f"{url}: zip member {info.filename!r} is a symbolic link, which is not extracted")
            if rel in files or rel in existing or rel == MANIFEST:
                raise DownloadError(f"{url}: zip member {info.filename!r} collides with another file")
            target = dest / rel
            if not target.resolve().is_relative_to(dest.resolve()):
                raise DownloadError(f"{url}: unsafe path in zip archive (zip-slip): {info.filename!r}")
            try:
                with zf.open(info) as src:
                    files[rel] = write_hashed(src, target)
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                if isinstance(err, FileExistsError):
                    raise DownloadError(f"{url}: zip member {info.filename!r} collides with another file") from err
                raise DownloadError(f"{url}: corrupt zip member {info.filename!r}: {first_line(err)}") from err
    return files, sorted(skipped)
