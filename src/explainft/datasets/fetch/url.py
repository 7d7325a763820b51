"""The ``url`` fetch kind: files published over HTTP(S).

Keys of ``sources.<name>.fetch`` with ``from: url``:

* ``urls`` (list of str, required): each file is saved under the last
  segment of its URL path; two URLs with the same file name are an error.
* ``sha256`` (mapping url-or-file-name -> hex digest, optional): verified
  while streaming; a mismatch is an error and nothing is kept.
* ``extract`` (bool, default false): unpack ``.zip`` downloads into the
  folder (keeping the archive's folders, e.g. ``cornell movie-dialogs
  corpus/``) and delete the archive (``archive.py``). Members with absolute
  paths or ``..`` (zip-slip) are an error; macOS metadata (``__MACOSX/``) is
  skipped and listed in the manifest.
* ``timeout`` (seconds > 0, default 60): connect timeout and the longest
  wait for the next bytes of a response.
* ``retries`` (int >= 0, default 3): further attempts after the first, on
  connection errors, timeouts, truncated bodies, HTTP 5xx and 429 (not on
  other 4xx), with exponential backoff ``backoff * 2**k``.
* ``backoff`` (seconds >= 0, default 1.0).

Identity: ``urls``, ``extract`` and ``downloads`` (per URL: the file name,
bytes and sha256 of what was downloaded, plus ``skipped`` archive members).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DownloadError
from .archive import extract_zip
from .manifest import CHUNK, MANIFEST, Job, add_file, first_line
from .spec import REQUIRED, Schema, is_bool, is_int, is_number, is_str_list, is_str_map

log = logging.getLogger(__name__)

SCHEMA: Schema = {
    "urls": (is_str_list, "a non-empty list of URLs (strings)", REQUIRED),
    "sha256": (is_str_map, "a mapping of URL or file name to a hex digest", None),
    "extract": (is_bool, "true or false", False),
    "timeout": (is_number, "a number of seconds", 60),
    "retries": (is_int, "an integer", 3),
    "backoff": (is_number, "a number of seconds", 1.0),
}

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def validate_url(base: str, cfg: dict) -> None:
    names: dict[str, str] = {}
    for url in cfg["urls"]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{base}.urls", f"{url!r} is not an http(s) URL")
        fname = _url_filename(url)
        if fname is None:
            raise ConfigError(f"{base}.urls", f"{url!r} does not end in a usable file name")
        if fname == MANIFEST:
            raise ConfigError(f"{base}.urls", f"{url!r} would overwrite the manifest {MANIFEST}")
        if fname in names:
            raise ConfigError(f"{base}.urls", f"{names[fname]!r} and {url!r} would both be saved as {fname!r}")
        names[fname] = url
    if len(set(cfg["urls"])) != len(cfg["urls"]):
        raise ConfigError(f"{base}.urls", "repeats a URL")
    sums = cfg["sha256"] or {}
    for key, digest in sums.items():
        if key not in names and key not in names.values():
            raise ConfigError(
                f"{base}.sha256.{key}",
                f"is neither one of the urls nor one of their file names ({', '.join(sorted(names))})",
            )
        if not _HEX64.match(digest):
            raise ConfigError(f"{base}.sha256.{key}", f"must be a 64-digit hex sha256, got {digest!r}")
    cfg["sha256"] = {k: v.lower() for k, v in sums.items()} or None
    if cfg["timeout"] <= 0:
        raise ConfigError(f"{base}.timeout", f"must be > 0 seconds, got {cfg['timeout']!r}")
    if cfg["retries"] < 0:
        raise ConfigError(f"{base}.retries", f"must be >= 0, got {cfg['retries']!r}")
    if cfg["backoff"] < 0:
        raise ConfigError(f"{base}.backoff", f"must be >= 0 seconds, got {cfg['backoff']!r}")


def _url_filename(url: str) -> str | None:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


class _Transient(Exception):
    """A failure worth retrying (connection, timeout, truncated body, 5xx); ``str`` is the cause."""


def fetch_url(job: Job) -> tuple[dict, dict]:
    import requests

    cfg = job.cfg
    sums = cfg["sha256"] or {}
    files: dict[str, dict] = {}
    downloads: dict[str, dict] = {}
    with requests.Session() as session:
        session.headers["User-Agent"] = "explainft-fetch"
        for url in cfg["urls"]:
            fname = _url_filename(url)
            assert fname is not None  # validated
            if fname in files:
                raise DownloadError(f"{url}: file {fname!r} is already provided by an earlier source")
            expected = sums.get(url) or sums.get(fname)
            info = _download(session, url, job.build / fname, expected, cfg["timeout"], cfg["retries"], cfg["backoff"])
            entry: dict[str, Any] = {"file": fname, **info}
            if cfg["extract"] and fname.lower().endswith(".zip"):
                extracted, skipped = extract_zip(job.build / fname, job.build, url, files)
                (job.build / fname).unlink()
                entry["extracted"] = len(extracted)
                entry["skipped"] = skipped
                for rel, finfo in extracted.items():
                    add_file(files, rel, finfo, url)
            else:
                add_file(files, fname, info, url)
            downloads[url] = entry
    identity = {"urls": list(cfg["urls"]), "extract": cfg["extract"], "downloads": downloads}
    return identity, files


def _download(
    session, url: str, dest: Path, expected: str | None, timeout: float, retries: int, backoff: float
) -> dict[str, Any]:
    # Hand-written retry loop: urllib3's Retry covers connecting and status codes, but not a body that
    # breaks off or stalls mid-stream, where the whole file must be fetched again.
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return _download_once(session, url, dest, expected, timeout)
        except _Transient as err:
            if attempt == attempts:
                tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
                raise DownloadError(f"{url}: {err} (gave up after {tries})") from err
            delay = backoff * 2 ** (attempt - 1)
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", url, err, delay, attempt + 1, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _download_once(session, url: str, dest: Path, expected: str | None, timeout: float) -> dict[str, Any]:
    import requests

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    received, length = 0, None
    try:
        with os.fdopen(fd, "wb") as fh:
            h = hashlib.sha256()
            try:
                # identity: the bytes as published, not a transport-compressed variant
                with session.get(
                    url, stream=True, timeout=(timeout, timeout), headers={"Accept-Encoding": "identity"}
                ) as resp:
                    code = resp.status_code
                    if code >= 500 or code == 429:
                        raise _Transient(f"HTTP {code} {resp.reason or ''}".rstrip())
                    if code >= 400:
                        raise DownloadError(f"{url}: HTTP {code} {resp.reason or ''}".rstrip())
                    if "Content-Length" in resp.headers and not resp.headers.get("Content-Encoding"):
                        with contextlib.suppress(ValueError):
                            length = int(resp.headers["Content-Length"])
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
                        h.update(chunk)
                        received += len(chunk)
            except requests.RequestException as err:
                raise _classify(err, url, timeout, received, length) from err
            if length is not None and received != length:
                raise _Transient(f"connection closed mid-body: got {received} of {length} bytes (truncated)")
            fh.flush()
            os.fsync(fh.fileno())
        digest = h.hexdigest()
        if expected and digest != expected:
            raise DownloadError(
                f"{url}: sha256 mismatch: expected {expected}, got {digest} ({received} bytes); the file was not kept. "
                "If the publisher changed the file and you have checked the new one, pin it: set the digest "
                f"for {dest.name} under the profile's fetch.sha256 to {digest}"
            )
        os.replace(tmp, dest)
        return {"bytes": received, "sha256": digest}
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _causes(err: BaseException):
    """``err`` and everything it wraps (requests -> urllib3 -> socket)."""
    seen: set[int] = set()
    stack = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        yield e
        stack.extend([e.__cause__, e.__context__, getattr(e, "reason", None), *e.args])


def _classify(err: Exception, url: str, timeout: float, received: int, length: int | None) -> Exception:
    """The cause of a failed request as a retryable _Transient, or a DownloadError that is final."""
    import requests
    import urllib3.exceptions as u3

    chain = list(_causes(err))
    if isinstance(err, requests.exceptions.SSLError):
        return DownloadError(f"{url}: TLS error: {first_line(err)}")
    if isinstance(err, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return DownloadError(f"{url}: invalid URL: {first_line(err)}")
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return _Transient("connection refused")
    if any(isinstance(e, u3.NameResolutionError) for e in chain):
        return _Transient(f"cannot resolve the host name: {first_line(err)}")
    # urllib3's NewConnectionError (refused, unreachable ...) subclasses ConnectTimeoutError: exclude it
    if any(
        isinstance(e, requests.exceptions.ConnectTimeout)
        or (isinstance(e, u3.ConnectTimeoutError) and not isinstance(e, u3.NewConnectionError))
        for e in chain
    ):
        return _Transient(f"timed out connecting (timeout {timeout} s)")
    if any(isinstance(e, (requests.exceptions.Timeout, u3.ReadTimeoutError, TimeoutError)) for e in chain):
        return _Transient(f"timed out: no data for {timeout} s (after {received} bytes)")
    if isinstance(err, requests.exceptions.ChunkedEncodingError) or any(
        isinstance(e, (u3.ProtocolError, u3.IncompleteRead)) for e in chain
    ):
        of = f" of {length}" if length is not None else ""
        return _Transient(f"connection closed mid-body: got {received}{of} bytes (truncated)")
    if isinstance(err, requests.exceptions.ConnectionError):
        return _Transient(f"connection error: {first_line(err)}")
    return DownloadError(f"{url}: {first_line(err)}")
