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

Kinds (``spec["from"]``, see ``FETCH_KINDS``) and their keys:

``hub`` -- a Hugging Face **dataset** repository.
    * ``repo_id`` (str, required): ``owner/name``.
    * ``revision`` (str, default ``"main"``): branch, tag or commit sha. It is
      resolved to a commit sha first (``HfApi.dataset_info``) and the files are
      downloaded at that commit, so the manifest's ``commit`` is exactly what
      was fetched.
    * ``files`` (list of str, required): glob patterns of repository paths,
      with huggingface_hub's matching (``fnmatch``: ``*`` also crosses ``/``;
      ``dir/`` means everything under ``dir``). Every pattern must match at
      least one file. For ``Anthropic/hh-rlhf`` a pattern that could match
      anything under ``red-team-attempts/`` (a different schema) is rejected.
    * ``token_env`` (str, default ``"HF_TOKEN"``): the *name* of the
      environment variable holding the access token (gated or private repos).
      The token itself is never written to a file or an error message; when
      the variable is unset, huggingface_hub's stored login (if any) is used.

    Identity: ``repo_id``, ``revision`` (as requested), ``commit`` (resolved),
    ``patterns``. Files keep their repository paths.

``url`` -- files published over HTTP(S).
    * ``urls`` (list of str, required): each file is saved under the last
      segment of its URL path; two URLs with the same file name are an error.
    * ``sha256`` (mapping url-or-file-name -> hex digest, optional): verified
      while streaming; a mismatch is an error and nothing is kept.
    * ``extract`` (bool, default false): unpack ``.zip`` downloads into the
      folder (keeping the archive's folders, e.g. ``cornell movie-dialogs
      corpus/``) and delete the archive. Members with absolute paths or ``..``
      (zip-slip) are an error; macOS metadata (``__MACOSX/``) is skipped and
      listed in the manifest.
    * ``timeout`` (seconds > 0, default 60): connect timeout and the longest
      wait for the next bytes of a response.
    * ``retries`` (int >= 0, default 3): further attempts after the first, on
      connection errors, timeouts, truncated bodies, HTTP 5xx and 429 (not on
      other 4xx), with exponential backoff ``backoff * 2**k``.
    * ``backoff`` (seconds >= 0, default 1.0).

    Identity: ``urls``, ``extract`` and ``downloads`` (per URL: the file name,
    bytes and sha256 of what was downloaded, plus ``skipped`` archive members).

``local`` -- files the user already has.
    * ``path`` (str, required): a file or a folder; a relative path is relative
      to the current working directory (the repository root under DVC).
    * ``patterns`` (list of str, optional, folder only): ``pathlib`` globs
      inside the folder (``*`` stays within one folder, ``**`` recurses);
      default: every file. Every pattern must match at least one file.

    Files are copied (never linked: DVC must cache real files) with their
    paths relative to the folder (a single file keeps its name). Identity:
    ``path`` (as written in params), ``patterns``.

``package`` -- data shipped inside an installed Python package.
    * ``package`` (str, required): the import name, e.g. ``chatterbot_corpus``.
      It is located with ``importlib.util.find_spec``, not imported.
    * ``files`` (list of str, required): ``pathlib`` globs inside the package
      folder, e.g. ``data/english/*.yml``; files keep these relative paths.
    * ``distribution`` (str, optional): the pip distribution providing it;
      default: found from installed metadata (``chatterbot-corpus``).

    Identity: ``package``, ``distribution``, ``version`` (installed), ``patterns``.

Atomicity: everything is built in a temporary sibling folder of ``out_dir``
(``.<name>.fetch-*``), which replaces ``out_dir`` by renames only once the
manifest is written; a failed or killed fetch leaves the previous ``out_dir``
(or none), never a half-filled one. Leftovers of killed runs are removed at
the next fetch of the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
import urllib.parse
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from ..errors import ConfigError, DownloadError
from ..fsutil import write_json

log = logging.getLogger(__name__)

FETCH_KINDS = ("hub", "url", "local", "package")
MANIFEST = "SOURCE.json"

_REQUIRED = object()
_CHUNK = 1 << 20

# Paths of a Hub repository that must never be fetched, by lower-cased repo id.
# Anthropic/hh-rlhf's red-team transcripts have another schema (DATASETS.md §2).
HUB_EXCLUDED: dict[str, tuple[str, ...]] = {"anthropic/hh-rlhf": ("red-team-attempts/",)}


# --------------------------------------------------------------------------- validation

def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_is_str(x) for x in v)


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


# kind -> key -> (type check, type description, default or _REQUIRED)
_SCHEMA: dict[str, dict[str, tuple[Callable[[Any], bool], str, Any]]] = {
    "hub": {
        "repo_id": (_is_str, "a string 'owner/name'", _REQUIRED),
        "revision": (_is_str, "a string (branch, tag or commit sha)", "main"),
        "files": (_is_str_list, "a non-empty list of glob patterns (strings)", _REQUIRED),
        "token_env": (_is_str, "the name of an environment variable (string)", "HF_TOKEN"),
    },
    "url": {
        "urls": (_is_str_list, "a non-empty list of URLs (strings)", _REQUIRED),
        "sha256": (_is_str_map, "a mapping of URL or file name to a hex digest", None),
        "extract": (_is_bool, "true or false", False),
        "timeout": (_is_number, "a number of seconds", 60),
        "retries": (_is_int, "an integer", 3),
        "backoff": (_is_number, "a number of seconds", 1.0),
    },
    "local": {
        "path": (_is_str, "a string (file or folder)", _REQUIRED),
        "patterns": (_is_str_list, "a non-empty list of glob patterns (strings)", None),
    },
    "package": {
        "package": (_is_str, "a string (the import name)", _REQUIRED),
        "files": (_is_str_list, "a non-empty list of glob patterns (strings)", _REQUIRED),
        "distribution": (_is_str, "a string (the pip distribution name)", None),
    },
}

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_HF_TOKEN_LIKE = re.compile(r"^hf_[A-Za-z0-9]{20,}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def validate_fetch(name: str, spec: Any) -> dict[str, Any]:
    """Check ``sources.<name>.fetch``; return it with defaults filled in. Raises ConfigError."""
    base = f"sources.{name}.fetch"
    if not isinstance(spec, dict):
        raise ConfigError(base, f"must be a mapping with a 'from' key (one of {', '.join(FETCH_KINDS)}), "
                                f"got {type(spec).__name__}")
    kind = spec.get("from")
    if kind is None:
        raise ConfigError(f"{base}.from", f"is required: one of {', '.join(FETCH_KINDS)}")
    if kind not in FETCH_KINDS:
        raise ConfigError(f"{base}.from", f"must be one of {', '.join(FETCH_KINDS)}, got {kind!r}")
    schema = _SCHEMA[kind]
    for key in spec:
        if key != "from" and key not in schema:
            raise ConfigError(f"{base}.{key}", f"unknown key for from: {kind}; allowed keys: "
                                               f"{', '.join(['from', *schema])}")
    cfg: dict[str, Any] = {"from": kind}
    for key, (check, desc, default) in schema.items():
        if key not in spec or spec[key] is None:
            if default is _REQUIRED:
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


def _check_relative_patterns(key: str, patterns: list[str]) -> None:
    for p in patterns:
        parts = p.replace("\\", "/").split("/")
        if p.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", p) or ".." in parts:
            raise ConfigError(key, f"pattern {p!r} must be relative and stay inside the source "
                                   f"(no leading '/', no '..')")
    if len(set(patterns)) != len(patterns):
        raise ConfigError(key, f"repeats a pattern: {patterns!r}")


def _validate_hub(base: str, cfg: dict) -> None:
    if not _REPO_ID.match(cfg["repo_id"]):
        raise ConfigError(f"{base}.repo_id", f"must look like 'owner/name', got {cfg['repo_id']!r}")
    env = cfg["token_env"]
    if not _ENV_NAME.match(env) or _HF_TOKEN_LIKE.match(env):
        raise ConfigError(f"{base}.token_env", "must be the NAME of an environment variable (e.g. HF_TOKEN) "
                                               "that holds the token, not the token itself (value not shown)")
    _check_relative_patterns(f"{base}.files", cfg["files"])
    for prefix in HUB_EXCLUDED.get(cfg["repo_id"].lower(), ()):
        for p in cfg["files"]:
            if _glob_could_match_prefix(_hub_pattern(p), prefix):
                raise ConfigError(f"{base}.files",
                                  f"pattern {p!r} could match files under {prefix} of {cfg['repo_id']}, which must "
                                  f"never be fetched (different schema); list the wanted files explicitly, e.g. "
                                  f"'harmless-base/train.jsonl.gz'")


def _validate_url(base: str, cfg: dict) -> None:
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
            raise ConfigError(f"{base}.sha256.{key}", "is neither one of the urls nor one of their file names "
                                                      f"({', '.join(sorted(names))})")
        if not _HEX64.match(digest):
            raise ConfigError(f"{base}.sha256.{key}", f"must be a 64-digit hex sha256, got {digest!r}")
    cfg["sha256"] = {k: v.lower() for k, v in sums.items()} or None
    if cfg["timeout"] <= 0:
        raise ConfigError(f"{base}.timeout", f"must be > 0 seconds, got {cfg['timeout']!r}")
    if cfg["retries"] < 0:
        raise ConfigError(f"{base}.retries", f"must be >= 0, got {cfg['retries']!r}")
    if cfg["backoff"] < 0:
        raise ConfigError(f"{base}.backoff", f"must be >= 0 seconds, got {cfg['backoff']!r}")


def _validate_local(base: str, cfg: dict) -> None:
    if cfg["patterns"] is not None:
        _check_relative_patterns(f"{base}.patterns", cfg["patterns"])


def _validate_package(base: str, cfg: dict) -> None:
    if not _MODULE.match(cfg["package"]):
        raise ConfigError(f"{base}.package", f"must be an import name like 'chatterbot_corpus', got {cfg['package']!r}")
    _check_relative_patterns(f"{base}.files", cfg["files"])


_VALIDATE_KIND = {"hub": _validate_hub, "url": _validate_url, "local": _validate_local, "package": _validate_package}


def _url_filename(url: str) -> str | None:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    return name


# Glob matching of a pattern against a prefix (could any path starting with ``prefix`` match?).
# fnmatch only answers for whole strings, so this runs the glob as a small NFA.

def _glob_tokens(p: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "*":
            if not toks or toks[-1][0] != "*":
                toks.append(("*", c))
            i += 1
        elif c == "?":
            toks.append(("?", c))
            i += 1
        elif c == "[":  # same bracket rules as fnmatch.translate
            j = i + 1
            if j < n and p[j] == "!":
                j += 1
            if j < n and p[j] == "]":
                j += 1
            while j < n and p[j] != "]":
                j += 1
            if j >= n:
                toks.append(("lit", c))
                i += 1
            else:
                toks.append(("[", p[i:j + 1]))
                i = j + 1
        else:
            toks.append(("lit", c))
            i += 1
    return toks


def _glob_could_match_prefix(pattern: str, prefix: str) -> bool:
    toks = _glob_tokens(pattern)

    def closure(states: set[int]) -> set[int]:
        out = set(states)
        for s in sorted(states):
            while s < len(toks) and toks[s][0] == "*":
                s += 1
                out.add(s)
        return out

    states = closure({0})
    for ch in prefix:
        nxt: set[int] = set()
        for s in states:
            if s >= len(toks):
                continue
            kind, val = toks[s]
            if kind == "*":
                nxt.add(s)
            elif kind == "?" or (kind == "[" and fnmatchcase(ch, val)) or (kind == "lit" and ch == val):
                nxt.add(s + 1)
        states = closure(nxt)
        if not states:
            return False
    return True


def _hub_pattern(p: str) -> str:
    """A pattern as huggingface_hub's ``filter_repo_objects`` applies it."""
    p = p.replace("\\", "/")
    return p + "*" if p.endswith("/") else p


# --------------------------------------------------------------------------- fetch

@dataclass
class _Job:
    name: str
    cfg: dict[str, Any]
    out_dir: Path
    build: Path  # the temporary folder that becomes out_dir


def fetch(name: str, spec: dict, out_dir: str | Path) -> dict[str, Any]:
    """Materialise dataset ``name``'s raw files into ``out_dir`` with a SOURCE.json manifest; returns the manifest."""
    cfg = validate_fetch(name, spec)
    out_dir = Path(out_dir)
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.fetch-", dir=parent))
    try:
        job = _Job(name, cfg, out_dir, build)
        identity, files = _KINDS[cfg["from"]](job)
        _check_tree(build, files)
        manifest = {"dataset": name, "from": cfg["from"], **identity, "files": dict(sorted(files.items()))}
        write_json(build / MANIFEST, manifest)
        _replace_dir(build, out_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    log.info("fetched %s: %d files into %s", name, len(files), out_dir)
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


def _add_file(files: dict[str, dict], rel: str, info: dict, origin: str) -> None:
    if rel == MANIFEST:
        raise DownloadError(f"{origin}: file {rel!r} would overwrite the manifest {MANIFEST}")
    if rel in files:
        raise DownloadError(f"{origin}: file {rel!r} is fetched twice (two sources give the same path)")
    files[rel] = info


def _write_hashed(src, dst: Path) -> dict[str, Any]:
    """Copy the binary stream ``src`` to a new file ``dst``, hashing it; returns {bytes, sha256}."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    n = 0
    with open(dst, "xb") as fo:
        while block := src.read(_CHUNK):
            fo.write(block)
            h.update(block)
            n += len(block)
        fo.flush()
        os.fsync(fo.fileno())
    return {"bytes": n, "sha256": h.hexdigest()}


def _hash_file(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
            n += len(block)
    return {"bytes": n, "sha256": h.hexdigest()}


# --------------------------------------------------------------------------- hub

def _fetch_hub(job: _Job) -> tuple[dict, dict]:
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    cfg = job.cfg
    repo, revision, patterns, token_env = cfg["repo_id"], cfg["revision"], cfg["files"], cfg["token_env"]
    token = os.environ.get(token_env) or None
    excluded = HUB_EXCLUDED.get(repo.lower(), ())
    where = f"Hugging Face dataset {repo} at revision {revision}"
    download_dir = Path(tempfile.mkdtemp(prefix=f".{job.out_dir.name}.fetch-hub-", dir=job.out_dir.parent))
    try:
        try:
            info = huggingface_hub.HfApi().dataset_info(repo, revision=revision, token=token)
            commit = info.sha
            if not commit:
                raise DownloadError(f"{where}: the Hub returned no commit sha for this revision")
            # Download at the resolved commit so that the manifest names exactly what was fetched,
            # even if the branch moves meanwhile. A fresh, empty local_dir matters: given a non-empty
            # one, snapshot_download returns it as is when the Hub cannot be reached.
            huggingface_hub.snapshot_download(
                repo,
                repo_type="dataset",
                revision=commit,
                allow_patterns=list(patterns),
                ignore_patterns=[p + "*" for p in excluded] or None,
                local_dir=download_dir,
                token=token,
            )
        except (DownloadError, TypeError, AttributeError, NameError, KeyError, AssertionError):
            raise  # ours, or a bug: not a download failure
        except Exception as err:  # noqa: BLE001 -- every Hub failure becomes one actionable message
            raise DownloadError(_scrub(_hub_message(err, where, repo, revision, token_env, token), token)) from err

        found = sorted(
            p.relative_to(download_dir).as_posix()
            for p in download_dir.rglob("*")
            if p.is_file() and p.relative_to(download_dir).parts[0] != ".cache"
        )
        for p in patterns:  # huggingface_hub's own matching, so "matched" means what it downloaded
            if not any(True for _ in filter_repo_objects(found, allow_patterns=[p])):
                raise DownloadError(f"{where} (commit {commit}): pattern {p!r} matched no file in the repository")
        for f in found:
            if any(f.startswith(x) for x in excluded):
                raise DownloadError(f"{where}: {f} is under an excluded folder and must not be fetched")
        files: dict[str, dict] = {}
        for rel in found:
            dst = job.build / rel
            _add_file(files, rel, _hash_file(download_dir / rel), where)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(download_dir / rel, dst)
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
    identity = {"repo_id": repo, "revision": revision, "commit": commit, "patterns": list(patterns)}
    return identity, files


def _scrub(message: str, token: str | None) -> str:
    return message.replace(token, "***") if token else message


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else '(no message)'}"


def _hub_message(err: Exception, where: str, repo: str, revision: str, token_env: str, token: str | None) -> str:
    from huggingface_hub import errors as hf

    token_state = f"${token_env} is {'set' if token else 'not set'}"
    if isinstance(err, hf.GatedRepoError):
        return (f"{where}: the dataset is gated: accept its terms at https://huggingface.co/datasets/{repo} "
                f"while logged in, then put a read token in the environment variable {token_env} "
                f"({token_state}) [{_first_line(err)}]")
    if isinstance(err, hf.RepositoryNotFoundError):
        return (f"{where}: repository not found (check repo_id; a private repository also needs a token in "
                f"{token_env}, {token_state}) [{_first_line(err)}]")
    if isinstance(err, hf.RevisionNotFoundError):
        return f"{where}: revision {revision!r} does not exist in the repository [{_first_line(err)}]"
    if isinstance(err, hf.DisabledRepoError):
        return f"{where}: the repository is disabled on the Hub [{_first_line(err)}]"
    if isinstance(err, hf.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        auth = status in (401, 403)
        hint = f" (authentication failed: check the token in {token_env}, {token_state})" if auth else ""
        return f"{where}: the Hub answered HTTP {status}{hint} [{_first_line(err)}]"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    hint = " HF_HUB_OFFLINE is set in the environment: unset it (or set HF_HUB_OFFLINE=0) to download." \
        if offline else ""
    if _is_network_error(err):
        hint = hint or " Check the network connection and retry."
        return f"{where}: cannot reach the Hugging Face Hub: {_first_line(err)}.{hint}"
    return f"{where}: download failed: {_first_line(err)}{'.' + hint if hint else ''}"


def _is_network_error(err: BaseException) -> bool:
    from huggingface_hub import errors as hf

    kinds: tuple[type, ...] = (ConnectionError, TimeoutError, hf.OfflineModeIsEnabled, hf.LocalEntryNotFoundError)
    with contextlib.suppress(ImportError):
        import httpx2

        kinds += (httpx2.TransportError,)
    return isinstance(err, kinds)


# --------------------------------------------------------------------------- url

class _Transient(Exception):
    """A failure worth retrying (connection, timeout, truncated body, 5xx); ``str`` is the cause."""


def _fetch_url(job: _Job) -> tuple[dict, dict]:
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
            info = _download(session, url, job.build / fname, expected,
                             cfg["timeout"], cfg["retries"], cfg["backoff"])
            entry: dict[str, Any] = {"file": fname, **info}
            if cfg["extract"] and fname.lower().endswith(".zip"):
                extracted, skipped = _extract_zip(job.build / fname, job.build, url, files)
                (job.build / fname).unlink()
                entry["extracted"] = len(extracted)
                entry["skipped"] = skipped
                for rel, finfo in extracted.items():
                    _add_file(files, rel, finfo, url)
            else:
                _add_file(files, fname, info, url)
            downloads[url] = entry
    identity = {"urls": list(cfg["urls"]), "extract": cfg["extract"], "downloads": downloads}
    return identity, files


def _download(session, url: str, dest: Path, expected: str | None, timeout: float, retries: int,
              backoff: float) -> dict[str, Any]:
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
                with session.get(url, stream=True, timeout=(timeout, timeout),
                                 headers={"Accept-Encoding": "identity"}) as resp:
                    code = resp.status_code
                    if code >= 500 or code == 429:
                        raise _Transient(f"HTTP {code} {resp.reason or ''}".rstrip())
                    if code >= 400:
                        raise DownloadError(f"{url}: HTTP {code} {resp.reason or ''}".rstrip())
                    if "Content-Length" in resp.headers and not resp.headers.get("Content-Encoding"):
                        with contextlib.suppress(ValueError):
                            length = int(resp.headers["Content-Length"])
                    for chunk in resp.iter_content(_CHUNK):
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
            raise DownloadError(f"{url}: sha256 mismatch: expected {expected}, got {digest} "
                                f"({received} bytes); the file was not kept")
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
        return DownloadError(f"{url}: TLS error: {_first_line(err)}")
    if isinstance(err, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return DownloadError(f"{url}: invalid URL: {_first_line(err)}")
    if any(isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED for e in chain):
        return _Transient("connection refused")
    if any(isinstance(e, u3.NameResolutionError) for e in chain):
        return _Transient(f"cannot resolve the host name: {_first_line(err)}")
    # urllib3's NewConnectionError (refused, unreachable ...) subclasses ConnectTimeoutError: exclude it
    if any(isinstance(e, requests.exceptions.ConnectTimeout)
           or (isinstance(e, u3.ConnectTimeoutError) and not isinstance(e, u3.NewConnectionError)) for e in chain):
        return _Transient(f"timed out connecting (timeout {timeout} s)")
    if any(isinstance(e, (requests.exceptions.Timeout, u3.ReadTimeoutError, TimeoutError)) for e in chain):
        return _Transient(f"timed out: no data for {timeout} s (after {received} bytes)")
    if isinstance(err, requests.exceptions.ChunkedEncodingError) or any(
            isinstance(e, (u3.ProtocolError, u3.IncompleteRead)) for e in chain):
        of = f" of {length}" if length is not None else ""
        return _Transient(f"connection closed mid-body: got {received}{of} bytes (truncated)")
    if isinstance(err, requests.exceptions.ConnectionError):
        return _Transient(f"connection error: {_first_line(err)}")
    return DownloadError(f"{url}: {_first_line(err)}")


def _safe_member(name: str) -> str | None:
    """The member's relative POSIX path, or None if it could escape the target folder (zip-slip)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return None
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _extract_zip(archive: Path, dest: Path, url: str, existing: dict) -> tuple[dict[str, dict], list[str]]:
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
                    files[rel] = _write_hashed(src, target)
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                if isinstance(err, FileExistsError):
                    raise DownloadError(f"{url}: zip member {info.filename!r} collides with another file") from err
                raise DownloadError(f"{url}: corrupt zip member {info.filename!r}: {_first_line(err)}") from err
    return files, sorted(skipped)


# --------------------------------------------------------------------------- local and package

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


def _copy_all(job: _Job, sources: list[tuple[Path, str]], what: str) -> dict[str, dict]:
    files: dict[str, dict] = {}
    for src, rel in sources:
        if rel == MANIFEST:
            raise DownloadError(f"{what}: file {rel!r} would overwrite the manifest {MANIFEST}")
        try:
            with open(src, "rb") as fh:  # follows symlinks: the copy is a real file
                _add_file(files, rel, _write_hashed(fh, job.build / rel), what)
        except OSError as err:
            raise DownloadError(f"{what}: cannot copy {src}: {_first_line(err)}") from err
    return files


def _fetch_local(job: _Job) -> tuple[dict, dict]:
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
    return {"path": given, "patterns": cfg["patterns"]}, _copy_all(job, sources, what)


def _fetch_package(job: _Job) -> tuple[dict, dict]:
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
        raise DownloadError(f"Python package {pkg!r} is importable from {locations[0]} but the distribution "
                            f"{dist!r} is not installed, so its version is unknown: `pip install {dist}` "
                            f"(or set 'distribution')") from None
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
    files = _copy_all(job, [(sources[rel], rel) for rel in sorted(sources)], what)
    identity = {"package": pkg, "distribution": dist, "version": version, "patterns": list(cfg["files"])}
    return identity, files


def _distribution_of(top: str) -> str | None:
    dists = importlib.metadata.packages_distributions().get(top) or []
    return sorted(dists)[0] if dists else None


_KINDS: dict[str, Callable[[_Job], tuple[dict, dict]]] = {
    "hub": _fetch_hub,
    "url": _fetch_url,
    "local": _fetch_local,
    "package": _fetch_package,
}
