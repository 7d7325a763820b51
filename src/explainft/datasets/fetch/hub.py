"""The ``hub`` fetch kind: a Hugging Face **dataset** repository.

Keys of ``sources.<name>.fetch`` with ``from: hub``:

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
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

from ...errors import ConfigError, DownloadError
from .manifest import Job, add_file, first_line, hash_file
from .spec import REQUIRED, Schema, check_relative_patterns, is_str, is_str_list

SCHEMA: Schema = {
    "repo_id": (is_str, "a string 'owner/name'", REQUIRED),
    "revision": (is_str, "a string (branch, tag or commit sha)", "main"),
    "files": (is_str_list, "a non-empty list of glob patterns (strings)", REQUIRED),
    "token_env": (is_str, "the name of an environment variable (string)", "HF_TOKEN"),
}

# Paths of a Hub repository that must never be fetched, by lower-cased repo id.
# Anthropic/hh-rlhf's red-team transcripts have another schema than its preference pairs
# (see the dataset card, https://huggingface.co/datasets/Anthropic/hh-rlhf).
HUB_EXCLUDED: dict[str, tuple[str, ...]] = {"anthropic/hh-rlhf": ("red-team-attempts/",)}

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HF_TOKEN_LIKE = re.compile(r"^hf_[A-Za-z0-9]{20,}$")


def validate_hub(base: str, cfg: dict) -> None:
    if not _REPO_ID.match(cfg["repo_id"]):
        raise ConfigError(f"{base}.repo_id", f"must look like 'owner/name', got {cfg['repo_id']!r}")
    env = cfg["token_env"]
    if not _ENV_NAME.match(env) or _HF_TOKEN_LIKE.match(env):
        raise ConfigError(
            f"{base}.token_env",
            "must be the NAME of an environment variable (e.g. HF_TOKEN) "
            "that holds the token, not the token itself (value not shown)",
        )
    check_relative_patterns(f"{base}.files", cfg["files"])
    for prefix in HUB_EXCLUDED.get(cfg["repo_id"].lower(), ()):
        for p in cfg["files"]:
            if _glob_could_match_prefix(_hub_pattern(p), prefix):
                raise ConfigError(
                    f"{base}.files",
                    f"pattern {p!r} could match files under {prefix} of {cfg['repo_id']}, which must "
                    f"never be fetched (different schema); list the wanted files explicitly, e.g. "
                    f"'harmless-base/train.jsonl.gz'",
                )


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
                toks.append(("[", p[i : j + 1]))
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


def fetch_hub(job: Job) -> tuple[dict, dict]:
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
            add_file(files, rel, hash_file(download_dir / rel), where)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(download_dir / rel, dst)
    finally:
        shutil.rmtree(download_dir, ignore_errors=True)
    identity = {"repo_id": repo, "revision": revision, "commit": commit, "patterns": list(patterns)}
    return identity, files


def _scrub(message: str, token: str | None) -> str:
    return message.replace(token, "***") if token else message


def _hub_message(err: Exception, where: str, repo: str, revision: str, token_env: str, token: str | None) -> str:
    from huggingface_hub import errors as hf

    token_state = f"${token_env} is {'set' if token else 'not set'}"
    if isinstance(err, hf.GatedRepoError):
        return (
            f"{where}: the dataset is gated: accept its terms at https://huggingface.co/datasets/{repo} "
            f"while logged in, then put a read token in the environment variable {token_env} "
            f"({token_state}) [{first_line(err)}]"
        )
    if isinstance(err, hf.RepositoryNotFoundError):
        return (
            f"{where}: repository not found (check repo_id; a private repository also needs a token in "
            f"{token_env}, {token_state}) [{first_line(err)}]"
        )
    if isinstance(err, hf.RevisionNotFoundError):
        return f"{where}: revision {revision!r} does not exist in the repository [{first_line(err)}]"
    if isinstance(err, hf.DisabledRepoError):
        return f"{where}: the repository is disabled on the Hub [{first_line(err)}]"
    if isinstance(err, hf.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        auth = status in (401, 403)
        hint = f" (authentication failed: check the token in {token_env}, {token_state})" if auth else ""
        return f"{where}: the Hub answered HTTP {status}{hint} [{first_line(err)}]"
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    hint = (
        " HF_HUB_OFFLINE is set in the environment: unset it (or set HF_HUB_OFFLINE=0) to download." if offline else ""
    )
    if _is_network_error(err):
        hint = hint or " Check the network connection and retry."
        return f"{where}: cannot reach the Hugging Face Hub: {first_line(err)}.{hint}"
    return f"{where}: download failed: {first_line(err)}{'.' + hint if hint else ''}"


def _is_network_error(err: BaseException) -> bool:
    from huggingface_hub import errors as hf

    kinds: tuple[type, ...] = (ConnectionError, TimeoutError, hf.OfflineModeIsEnabled, hf.LocalEntryNotFoundError)
    with contextlib.suppress(ImportError):
        import httpx2

        kinds += (httpx2.TransportError,)
    return isinstance(err, kinds)
